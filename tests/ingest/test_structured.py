import json

import pytest
from srekb.ingest.loaders import detect_type
from srekb.ingest.structured import chunk_braces, chunk_ini, chunk_json, chunk_toml, chunk_yaml
from srekb.ingest.text import approx_counter
from srekb.retrieval.errors import SkippedFile
from srekb.retrieval.types import SourceType

RULES = """groups:
  - name: checkout.rules
    rules:
      - record: job:http_5xx:ratio5m
        expr: sum(rate(http_requests_total{code=~"5.."}[5m])) / sum(rate(http_requests_total[5m]))
      - alert: CheckoutHighErrorRate
        expr: job:http_5xx:ratio5m > 0.02
        for: 5m
        labels:
          severity: critical
          team: team-checkout
        annotations:
          summary: Checkout 5xx above 2 %
          runbook_url: https://runbooks.lark.internal/checkout-high-error-rate
      - alert: CheckoutLatencyHigh
        expr: histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket[5m]))) > 1.2
        for: 10m
        labels:
          severity: warning
"""


def _chunks(fn, text, path="configs/x.yml", st=SourceType.CONFIG, budget=256):
    chunks, notes = fn(path, text, st, budget, approx_counter)
    return chunks, notes


def test_prometheus_rule_per_chunk_with_exact_lines():
    chunks, _ = _chunks(chunk_yaml, RULES)
    assert [c.section for c in chunks] == ["job:http_5xx:ratio5m", "CheckoutHighErrorRate", "CheckoutLatencyHigh"]
    lines = RULES.splitlines()
    alert = chunks[1]
    assert lines[alert.line_start - 1].strip() == "- alert: CheckoutHighErrorRate"
    assert lines[alert.line_end - 1].strip().startswith("runbook_url:")  # not the next rule's first line
    assert alert.title == "Prometheus Alert Rules" and chunks[0].title == "Prometheus Recording Rules"
    assert alert.meta["expr"] == "job:http_5xx:ratio5m > 0.02"
    assert alert.meta["for"] == "5m" and alert.meta["severity"] == "critical" and alert.meta["team"] == "team-checkout"
    assert alert.meta["runbook_url"].endswith("checkout-high-error-rate")
    assert chunks[2].line_end == len(lines)


def test_prometheusrule_crd_and_k8s_objects():
    text = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: checkout-api
  namespace: checkout
  labels:
    app: checkout-api
spec:
  replicas: 6
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: checkout-api
  namespace: checkout
spec:
  maxReplicas: 30
---
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: rules
spec:
  groups:
  - name: apps
    rules:
    - alert: KubePodCrashLooping
      expr: x > 1
      for: 15m
"""
    chunks, _ = _chunks(chunk_yaml, text)
    kinds = [(c.title, c.section) for c in chunks]
    assert kinds == [
        ("Kubernetes Deployment", "checkout/checkout-api"),
        ("Kubernetes HorizontalPodAutoscaler", "checkout/checkout-api"),
        ("Prometheus Alert Rules", "KubePodCrashLooping"),
    ]
    assert (chunks[0].line_start, chunks[0].line_end) == (1, 9)
    assert (chunks[1].line_start, chunks[1].line_end) == (11, 17)
    assert chunks[0].meta == {"kind": "Deployment", "name": "checkout-api", "namespace": "checkout", "service": "checkout-api"}
    assert text.splitlines()[chunks[2].line_start - 1].strip() == "- alert: KubePodCrashLooping"
    assert len({c.key for c in chunks}) == 3


def test_alertmanager_routes_and_receivers():
    text = """global:
  resolve_timeout: 5m
route:
  receiver: pd-sre-primary
  group_by: [alertname]
  routes:
    - matchers: ['team="team-payments"']
      receiver: pd-payments
    - matchers: ['severity="warning"']
      receiver: slack-sre
receivers:
  - name: pd-sre-primary
    pagerduty_configs:
      - routing_key: abc
  - name: pd-payments
  - name: slack-sre
inhibit_rules:
  - source_matchers: ['severity="critical"']
    target_matchers: ['severity="warning"']
"""
    chunks, _ = _chunks(chunk_yaml, text)
    sections = [c.section for c in chunks]
    assert "route receiver=pd-sre-primary" in sections
    assert 'route.0 receiver=pd-payments matchers=team="team-payments"' in sections
    assert "receiver pd-payments" in sections and "inhibit rule 1" in sections
    top = next(c for c in chunks if c.section == "route receiver=pd-sre-primary")
    assert (top.line_start, top.line_end) == (3, 5)  # its own lines; child routes are their own chunks
    assert all(c.title == "Alertmanager Config" for c in chunks)


def test_incident_yaml_record():
    text = (
        "id: INC-2024-017\ntitle: Orders DB connection pool exhausted\ndate: 2024-09-12\nseverity: SEV2\n"
        "service: checkout-api\nroot_cause: pool too small\nresolution: raised pool\n"
    )
    chunks, _ = _chunks(chunk_yaml, text, "incidents/records/INC-2024-017.yaml", SourceType.INCIDENT)
    (c,) = chunks
    assert c.source_type is SourceType.INCIDENT
    assert c.meta == {"incident_id": "INC-2024-017", "date": "2024-09-12", "severity": "SEV2", "service": "checkout-api"}
    assert c.title == "Orders DB connection pool exhausted" and (c.line_start, c.line_end) == (1, 7)


def test_github_issues_export_keeps_only_labelled_incidents():
    issues = [
        {"number": 41, "title": "Checkout 502s", "labels": [{"name": "sre-incident"}, {"name": "sev2"}, {"name": "service/checkout-api"}],
         "created_at": "2025-01-05T10:00:00Z", "body": "Incident ID: INC-2025-002\nRoot cause: bad config"},
        {"number": 42, "title": "Add dark mode", "labels": [{"name": "feature"}], "created_at": "2025-01-06T10:00:00Z", "body": "pls"},
    ]
    text = json.dumps(issues, indent=2)
    chunks, notes = _chunks(chunk_json, text, "incidents/github-issues-export.json", SourceType.INCIDENT)
    (c,) = chunks
    assert c.meta["incident_id"] == "INC-2025-002" and c.meta["date"] == "2025-01-05"
    assert c.meta["severity"] == "SEV2" and c.meta["service"] == "checkout-api"
    lines = text.splitlines()
    assert lines[c.line_start - 1].strip() == "{" and '"number": 41' in "\n".join(lines[c.line_start - 1 : c.line_end])
    assert '"number": 42' not in "\n".join(lines[c.line_start - 1 : c.line_end])
    assert notes == ["1 issue(s) without the 'sre-incident' label ignored"]


def test_generic_json_config_by_top_level_key():
    text = '{\n  "timeout": 30,\n  "pools": {\n    "orders": 40\n  }\n}\n'
    chunks, _ = _chunks(chunk_json, text, "configs/app.json")
    assert [(c.section, c.line_start, c.line_end) for c in chunks] == [("timeout", 2, 2), ("pools", 3, 5)]


def test_ini_and_toml_sections():
    ini = "[databases]\norders = host=orders-db port=5432\n\n[pgbouncer]\ndefault_pool_size = 40\nmax_client_conn = 2000\n"
    chunks, _ = _chunks(chunk_ini, ini, "configs/pgbouncer.ini")
    assert [(c.section, c.line_start, c.line_end) for c in chunks] == [("[databases]", 1, 2), ("[pgbouncer]", 4, 6)]
    toml = 'title = "x"\n\n[server]\nport = 8080\n'
    chunks, _ = _chunks(chunk_toml, toml, "configs/app.toml")
    assert [(c.section, c.line_start) for c in chunks] == [("(top level)", 1), ("[server]", 3)]


def test_nginx_blocks():
    conf = (
        "worker_processes 4;\nhttp {\n  client_max_body_size 8m;\n  server {\n    listen 443;\n"
        "    location /api {\n      proxy_read_timeout 30s;\n    }\n  }\n}\n"
    )
    chunks, _ = _chunks(chunk_braces, conf, "configs/nginx.conf", budget=256)
    assert any(c.section == "http" and c.line_start == 2 and c.line_end == 10 for c in chunks)
    assert any(c.section == "(top level)" and c.line_start == 1 for c in chunks)


@pytest.mark.parametrize(
    ("fn", "text", "fragment"),
    [
        (chunk_yaml, "a: [1, 2\nb: 3\n", "malformed YAML at line"),
        (chunk_json, '{"a": 1,,}', "malformed JSON at line 1"),
        (chunk_toml, "[x\ny=1", "malformed TOML"),
        (chunk_ini, "[a]\n=value without a key\n", "malformed INI"),
        (chunk_braces, "http {\n server {\n", "unbalanced braces"),
    ],
)
def test_malformed_files_raise_a_clear_skip(fn, text, fragment):
    with pytest.raises(SkippedFile) as err:
        fn("configs/bad", text, SourceType.CONFIG, 256, approx_counter)
    assert fragment in err.value.reason


@pytest.mark.parametrize(
    ("path", "text", "expected"),
    [
        ("runbooks/x.md", "# X", SourceType.RUNBOOK),
        ("prometheus-operator-runbooks/node/NodeRAIDDiskFailure.md", "# NodeRAIDDiskFailure\n## Impact\n", SourceType.RUNBOOK),
        ("sre_playbooks/disk-full.md", "# Disk full", SourceType.RUNBOOK),
        ("docs/runbook-conventions.md", "# x", SourceType.DOC),
        ("runbookish/x.md", "# x", SourceType.DOC),
        ("team/incidents/2024.md", "# x", SourceType.INCIDENT),
        ("post-mortems/2019-01-23.md", "# x", SourceType.INCIDENT),
        ("docs/guide.md", "# Guide\n## Install\n", SourceType.DOC),
        ("notes/x.md", "# X\n## Symptoms\n## Mitigation\n", SourceType.RUNBOOK),
        ("notes/y.md", "# Y\n## Timeline\n## Root cause\n", SourceType.INCIDENT),
        ("configs/rules.yml", "groups: []", SourceType.CONFIG),
        ("export.json", '[{"labels": [{"name": "sre-incident"}]}]', SourceType.INCIDENT),
        ("records/a.yaml", "id: 1\ntitle: x\nroot_cause: y\n", SourceType.INCIDENT),
        ("pgbouncer.ini", "[a]", SourceType.CONFIG),
    ],
)
def test_detect_type(path, text, expected):
    assert detect_type(path, text) is expected
