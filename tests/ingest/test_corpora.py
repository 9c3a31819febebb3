"""The shipped corpus and the real third-party corpus ingest completely, on both backends,
with every citation field filled and every line range pointing at the right lines."""

from pathlib import Path

import pytest
from srekb.ingest.pipeline import Ingestor
from srekb.retrieval.settings import Settings
from srekb.retrieval.types import SourceType

from tests.conftest import REAL, REAL_EXCLUDE, SHIPPED


def _check_citation_fields(store, root: Path) -> None:
    by_path: dict[str, list[str]] = {}
    for chunk in store.chunks():
        assert chunk.path and chunk.title.strip() and chunk.section.strip(), chunk
        lines = by_path.setdefault(chunk.path, (root / chunk.path).read_text(encoding="utf-8-sig").splitlines())
        assert 1 <= chunk.line_start <= chunk.line_end <= len(lines), (chunk.path, chunk.line_start, chunk.line_end)
        text_lines = [ln for ln in chunk.text.splitlines() if ln.strip()]
        if not chunk.path.endswith((".html", ".htm")) and not chunk.key.startswith("s:Overview#") or chunk.line_start > 1:
            # the cited lines are the chunk's own first and last lines
            assert lines[chunk.line_start - 1].strip() == text_lines[0].strip() or text_lines[0].strip() in lines[chunk.line_start - 1], chunk
            assert text_lines[-1].strip() in lines[chunk.line_end - 1], chunk
        if chunk.source_type is SourceType.INCIDENT:
            assert chunk.meta.get("incident_id") and chunk.meta.get("date"), chunk
        if chunk.title.startswith("Prometheus Alert Rules"):
            assert chunk.meta.get("alert") and chunk.meta.get("expr"), chunk


@pytest.mark.parametrize("corpus", ["shipped", "real"])
def test_corpus_ingests_without_skips(make_store, embedder, corpus):
    root = SHIPPED if corpus == "shipped" else REAL
    store = make_store(embedder.dim, embedder.name)
    report = Ingestor(store, embedder, Settings()).run([root], exclude=REAL_EXCLUDE if corpus == "real" else None)
    assert report.skipped == [], report.skipped
    files = [p for p in root.rglob("*") if p.is_file() and "LICENSES" not in p.parts and p.name not in ("SOURCES.md",)]
    files = [p for p in files if not p.name.startswith("questions")]
    assert len(report.added) == len(files)
    if corpus == "real":
        assert len(files) == 187
    _check_citation_fields(store, root)
    types = {r.source_type for r in store.sources().values()}
    assert types == {SourceType.RUNBOOK, SourceType.INCIDENT, SourceType.CONFIG, SourceType.DOC}
