"""Golden tests: the citation block in exactly the seed's form, for every source type."""

from srekb.retrieval.answer.citations import SRECitationFormatter
from srekb.retrieval.types import Chunk, SourceType

RULE = Chunk("prometheus.yml", SourceType.CONFIG, "Prometheus Alert Rules", "CPU Usage Monitoring", "- alert: HighCPU", 45, 52)
DOC = Chunk("k8s-docs/deployment.md", SourceType.DOC, "K8s Deployment Guide", "Rolling Update Strategy", "maxSurge: 25%", 10, 30)
INCIDENT = Chunk("incidents/12345.md", SourceType.INCIDENT, "Similar CPU Spike Resolution", "Summary", "CPU spiked", 1, 20,
                 meta={"incident_id": "12345", "date": "2024-08-20"})
RUNBOOK = Chunk("runbooks/etcd-no-leader.md", SourceType.RUNBOOK, "Etcd no leader", "Diagnosis > Member health", "etcdctl", 12, 30)


def test_seed_block_exactly():
    f = SRECitationFormatter()
    block = f.format(f.cite([RULE, DOC, INCIDENT]))
    assert block == (
        "Citations:\n"
        "1) Prometheus Alert Rules: CPU Usage Monitoring (prometheus.yml:L45)\n"
        "2) K8s Deployment Guide: Rolling Update Strategy (k8s-docs/deployment.md)\n"
        "3) Incident #12345: Similar CPU Spike Resolution (2024-08-20)"
    )


def test_runbook_label_and_structured_fields():
    f = SRECitationFormatter()
    (c,) = f.cite([RUNBOOK])
    assert c.label == "Etcd no leader: Diagnosis > Member health (runbooks/etcd-no-leader.md)"
    d = c.to_dict()
    assert d == {
        "n": 1, "source_type": "runbook", "path": "runbooks/etcd-no-leader.md", "lines": [12, 30], "incident_id": None, "date": None,
        "title": "Etcd no leader", "section": "Diagnosis > Member health", "text": "etcdctl", "label": c.label,
    }
    (i,) = f.cite([INCIDENT])
    assert (i.incident_id, i.date, i.lines) == ("12345", "2024-08-20", (1, 20))


def test_each_source_once_numbered_in_answer_order():
    f = SRECitationFormatter()
    cites = f.cite([DOC, RULE, DOC, INCIDENT, RULE])
    assert [c.n for c in cites] == [1, 2, 3]
    assert [c.path for c in cites] == ["k8s-docs/deployment.md", "prometheus.yml", "incidents/12345.md"]


def test_incident_title_repeating_its_id_is_not_doubled():
    chunk = Chunk("incidents/p.md", SourceType.INCIDENT, "INC-2025-014: Checkout TLS outage", "Root cause", "x", 5, 9,
                  meta={"incident_id": "INC-2025-014", "date": "2025-03-14"})
    assert SRECitationFormatter().label(chunk) == "Incident #INC-2025-014: Checkout TLS outage (2025-03-14)"


def test_nothing_to_cite_gives_empty_block():
    assert SRECitationFormatter().format([]) == ""
