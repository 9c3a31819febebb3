from srekb.ingest.markdown import chunk_html, chunk_markdown, front_matter
from srekb.ingest.text import approx_counter, split_lines
from srekb.retrieval.types import SourceType

RUNBOOK = """---
title: Disk filling up
---

# NodeDiskFillingUp

Service: platform
Owner team: team-sre

## Symptoms

The node's root filesystem is above 85 %.

## Diagnosis

```bash
# this is a comment, not a heading
df -h /
```

### Check the log volume

du -sh /var/log

## Mitigation

Rotate logs.
"""


def test_one_chunk_per_section_with_heading_path_and_lines():
    chunks = chunk_markdown("runbooks/node-disk-full.md", RUNBOOK, SourceType.RUNBOOK, 256, approx_counter)
    by_section = {c.section: c for c in chunks}
    assert set(by_section) == {"Overview", "Symptoms", "Diagnosis", "Diagnosis > Check the log volume", "Mitigation"}
    assert all(c.title == "NodeDiskFillingUp" for c in chunks)
    diag = by_section["Diagnosis"]
    lines = RUNBOOK.splitlines()
    assert lines[diag.line_start - 1] == "## Diagnosis"
    assert "# this is a comment" in diag.text  # a '#' inside a code fence is not a heading
    assert lines[diag.line_end - 1] == "```"
    sub = by_section["Diagnosis > Check the log volume"]
    assert lines[sub.line_start - 1] == "### Check the log volume"
    assert by_section["Symptoms"].meta["service"] == "platform"
    assert by_section["Symptoms"].meta["alert"] == "NodeDiskFillingUp"
    assert by_section["Symptoms"].meta["aliases"] == ["Disk filling up"]


def test_front_matter_only_page_still_indexed():
    text = "---\ntitle: Operations guide\ndescription: How to run etcd in production\n---\n"
    chunks = chunk_markdown("op-guide/_index.md", text, SourceType.DOC, 256, approx_counter)
    assert len(chunks) == 1 and "How to run etcd" in chunks[0].text and chunks[0].title == "Operations guide"


def test_long_section_split_within_budget_keeping_line_ranges():
    body = "\n\n".join(f"Paragraph {i} " + "word " * 40 for i in range(12))
    text = f"# Guide\n\n## Long\n\n{body}\n"
    chunks = chunk_markdown("docs/guide.md", text, SourceType.DOC, 128, approx_counter)
    assert len(chunks) > 3
    assert all(approx_counter(c.text) <= 128 for c in chunks)
    lines = text.splitlines()
    for c in chunks:
        assert c.text.splitlines()[0] == lines[c.line_start - 1]
        assert c.text.splitlines()[-1] == lines[c.line_end - 1]
    assert len({c.key for c in chunks}) == len(chunks)


def test_incident_markdown_metadata():
    text = "# INC-2025-014: Checkout TLS outage\n\n**Date:** 2025-03-14\n**Severity:** SEV1\n**Service:** checkout-api\n\n## Root cause\n\nExpired cert.\n"
    chunks = chunk_markdown("incidents/postmortems/x.md", text, SourceType.INCIDENT, 256, approx_counter)
    meta = chunks[-1].meta
    assert meta["incident_id"] == "INC-2025-014" and meta["date"] == "2025-03-14"
    assert meta["severity"] == "SEV1" and meta["service"] == "checkout-api"


def test_incident_date_from_prose_title():
    text = "# May 30th, 2019 Prow Flakiness\n\n## Summary\n\nIO throttling.\n"
    chunks = chunk_markdown("post-mortems/flaky.md", text, SourceType.INCIDENT, 256, approx_counter)
    assert chunks[0].meta["date"] == "2019-05-30"


def test_html_sections_map_to_html_lines():
    html = "<html><body>\n<h1>Deploy guide</h1>\n<p>Intro text.</p>\n<h2>Rollback</h2>\n<p>Run argocd app rollback.</p>\n</body></html>\n"
    chunks = chunk_html("docs/deploy.html", html, SourceType.DOC, 256, approx_counter)
    rollback = next(c for c in chunks if c.section == "Rollback")
    assert "argocd app rollback" in rollback.text
    assert rollback.line_start == 4 and rollback.line_end == 5


def test_front_matter_toml():
    fm, used = front_matter(["+++", 'title = "X"', "+++", "body"])
    assert fm == {"title": "X"} and used == 3


def test_split_lines_cuts_an_overlong_line():
    spans = split_lines(["a " * 500], 7, 50, approx_counter)
    assert len(spans) > 1 and all(s.start == 7 == s.end for s in spans)
    assert all(approx_counter(s.text) <= 50 for s in spans)
