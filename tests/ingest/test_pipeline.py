"""Incremental ingestion through the real model and both real store backends."""

import os
from pathlib import Path

import pytest
from srekb.ingest.pipeline import Ingestor
from srekb.retrieval.models.sparse import default_bm25
from srekb.retrieval.settings import Settings
from srekb.retrieval.store import HybridQuery

RUNBOOK = "# Etcd no leader\n\n## Symptoms\n\netcd_server_has_leader is 0.\n\n## Mitigation\n\nRestart the member with the stale WAL.\n"
RULES = "groups:\n  - name: etcd\n    rules:\n      - alert: EtcdNoLeader\n        expr: etcd_server_has_leader == 0\n        for: 1m\n"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "kb"
    (root / "runbooks").mkdir(parents=True)
    (root / "configs").mkdir()
    (root / "runbooks" / "etcd-no-leader.md").write_text(RUNBOOK)
    (root / "configs" / "rules.yml").write_text(RULES)
    (root / "docs").mkdir()
    (root / "docs" / "oncall.md").write_text("# On-call\n\n## Paging\n\nSEV1 pages are acknowledged within 5 minutes.\n")
    return root


def _ingestor(store, embedder):
    return Ingestor(store, embedder, Settings(max_chunk_tokens=256))


def _texts(store, path):
    return sorted(c.text for c in store.chunks(path))


def test_first_ingest_then_unchanged_costs_nothing(make_store, embedder, tree):
    store = make_store(embedder.dim, embedder.name)
    report = _ingestor(store, embedder).run([tree])
    assert sorted(report.added) == ["configs/rules.yml", "docs/oncall.md", "runbooks/etcd-no-leader.md"]
    assert report.chunks_written == store.count() == 4
    assert embedder.texts == report.chunks_embedded == 4
    embedder.reset()
    again = _ingestor(store, embedder).run([tree])
    assert sorted(again.unchanged) == sorted(report.added)
    assert again.added == again.updated == again.deleted == [] and again.chunks_written == 0
    assert embedder.calls == 0  # nothing embedded
    assert store.count() == 4


def test_edit_replaces_chunks_and_delete_removes(make_store, embedder, tree):
    store = make_store(embedder.dim, embedder.name)
    ing = _ingestor(store, embedder)
    ing.run([tree])
    rb = tree / "runbooks" / "etcd-no-leader.md"
    rb.write_text(RUNBOOK.replace("## Mitigation\n\nRestart the member with the stale WAL.\n", "## Diagnosis\n\nRun etcdctl endpoint status.\n"))
    (tree / "docs" / "oncall.md").unlink()
    report = ing.run([tree])
    assert report.updated == ["runbooks/etcd-no-leader.md"] and report.deleted == ["docs/oncall.md"]
    assert report.unchanged == ["configs/rules.yml"]
    texts = _texts(store, "runbooks/etcd-no-leader.md")
    assert any("etcdctl endpoint status" in t for t in texts)
    assert not any("stale WAL" in t for t in texts)  # the removed section is gone
    assert list(store.chunks("docs/oncall.md")) == []
    assert set(store.sources()) == {"runbooks/etcd-no-leader.md", "configs/rules.yml"}
    hits = store.hybrid(HybridQuery(embedder.embed_batch(["stale WAL"])[0], default_bm25().query("stale WAL"), limit=10))
    assert all("stale WAL" not in h.chunk.text for h in hits)


class _Boom(Exception):
    pass


class FailingEmbedder:
    """Embeds the first ``ok`` calls, then fails: a crash in the middle of a run."""

    def __init__(self, inner, ok: int) -> None:
        self.inner, self.ok = inner, ok
        self.name, self.dim, self.max_tokens = inner.name, inner.dim, 256

    def embed_batch(self, texts):
        if self.ok <= 0:
            raise _Boom("encoder crashed")
        self.ok -= 1
        return self.inner.embed_batch(texts)


def test_failed_run_leaves_previous_version_queryable(make_store, embedder, tree):
    store = make_store(embedder.dim, embedder.name)
    _ingestor(store, embedder).run([tree])
    before = {p: _texts(store, p) for p in store.sources()}
    hashes = {p: r.sha256 for p, r in store.sources().items()}
    (tree / "runbooks" / "etcd-no-leader.md").write_text(RUNBOOK + "\n## Escalation\n\nPage team-platform.\n")
    with pytest.raises(_Boom):
        _ingestor(store, FailingEmbedder(embedder, ok=0)).run([tree])
    assert {p: _texts(store, p) for p in store.sources()} == before  # nothing half-written
    assert {p: r.sha256 for p, r in store.sources().items()} == hashes  # hash not recorded
    report = _ingestor(store, embedder).run([tree])  # the next run redoes the file
    assert report.updated == ["runbooks/etcd-no-leader.md"]
    assert any("team-platform" in t for t in _texts(store, "runbooks/etcd-no-leader.md"))


def test_bad_files_are_skipped_with_reasons_and_the_rest_ingests(make_store, embedder, tree, monkeypatch):
    bad = tree / "bad"
    bad.mkdir()
    (bad / "broken.yml").write_text("groups:\n  - name: x\n    rules: [\n")
    (bad / "broken.json").write_text('{"a": 1,,}')
    (bad / "image.md").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00binary")
    (bad / "empty.md").write_text("")
    (bad / "blank.md").write_text("   \n\n")
    (bad / "latin1.md").write_bytes("# Caf\xe9\n\nna\xefve text\n".encode("latin-1"))
    (bad / "huge.md").write_text("# Huge\n\n" + "x " * 600_000)
    (bad / "tool.exe").write_text("MZ")
    (bad / "loop").symlink_to(bad)  # a symlink loop
    (bad / "dangling.md").symlink_to(bad / "nowhere.md")
    secret = tree.parent / "secret.md"
    secret.write_text("# outside\n\ntext\n")
    (bad / "escape.md").symlink_to(secret)
    (bad / "locked.md").write_text("# Locked\n\ntext\n")
    real_open = open

    def fake_open(path, *a, **kw):
        if str(path).endswith("locked.md"):
            raise PermissionError(13, "Permission denied")
        return real_open(path, *a, **kw)

    monkeypatch.setattr("builtins.open", fake_open)  # root can read anything; simulate an unreadable file
    store = make_store(embedder.dim, embedder.name)
    report = Ingestor(store, embedder, Settings(max_file_bytes=1_000_000)).run([tree])
    reasons = {s.path: s.reason for s in report.skipped}
    assert "malformed YAML at line" in reasons["bad/broken.yml"]
    assert "malformed JSON at line 1" in reasons["bad/broken.json"]
    assert "binary file" in reasons["bad/image.md"]
    assert reasons["bad/empty.md"] == "empty file"
    assert "only whitespace" in reasons["bad/blank.md"]
    assert "not UTF-8 (byte 0xe9 on line 1)" in reasons["bad/latin1.md"]
    assert "over the 1,000,000-byte limit" in reasons["bad/huge.md"]
    assert "unknown file type '.exe'" in reasons["bad/tool.exe"]
    assert "symlink loop" in reasons["bad/loop"]
    assert "broken or looping symlink" in reasons["bad/dangling.md"]
    assert "outside the ingested tree" in reasons["bad/escape.md"]
    assert "permission denied" in reasons["bad/locked.md"]
    assert len(report.skipped) == 12
    assert sorted(report.added) == ["configs/rules.yml", "docs/oncall.md", "runbooks/etcd-no-leader.md"]
    assert all(not c.path.startswith("bad/") for c in store.chunks())


def test_a_file_that_turns_malformed_keeps_its_previous_version(make_store, embedder, tree):
    store = make_store(embedder.dim, embedder.name)
    ing = _ingestor(store, embedder)
    ing.run([tree])
    before = _texts(store, "configs/rules.yml")
    (tree / "configs" / "rules.yml").write_text("groups:\n  - name: [\n")
    report = ing.run([tree])
    assert [s.path for s in report.skipped] == ["configs/rules.yml"]
    assert report.deleted == []
    assert _texts(store, "configs/rules.yml") == before


def test_forced_type_and_exclude(make_store, embedder, tree):
    (tree / "notes.jsonl").write_text('{"a": 1}\n')
    store = make_store(embedder.dim, embedder.name)
    report = _ingestor(store, embedder).run([tree], exclude=["*.jsonl"])
    assert report.skipped == [] and "notes.jsonl" not in report.added
    from srekb.retrieval.types import SourceType

    forced = _ingestor(store, embedder).run([tree / "docs" / "oncall.md"], SourceType.RUNBOOK)
    assert forced.updated == ["docs/oncall.md"]  # one file inside the ingested root keeps its key
    assert {c.source_type for c in store.chunks("docs/oncall.md")} == {SourceType.RUNBOOK}
    assert "oncall.md" not in store.sources()


def test_outside_allowed_roots_is_refused(make_store, embedder, tree, tmp_path):
    from srekb.retrieval.errors import IngestError

    store = make_store(embedder.dim, embedder.name)
    with pytest.raises(IngestError, match="outside the allowed roots"):
        _ingestor(store, embedder).run([tree / ".." / ".." ], allowed_roots=[tree])
    with pytest.raises(IngestError, match="no such file"):
        _ingestor(store, embedder).run([tree / "missing"])
    assert os.path.isdir(tree)


def test_markdown_erb_pages_ingest_as_markdown(make_store, embedder, tmp_path):
    """`.html.md.erb` pages (Markdown with an ERB helper line) were skipped as an unknown type."""
    root = tmp_path / "manual"
    (root / "alerts").mkdir(parents=True)
    (root / "alerts" / "queue-latency.html.md.erb").write_text(
        "---\ntitle: Queue latency\n---\n\n<%= render 'note' %>\n\n## Check the workers\n\nRestart the Sidekiq workers if the queue backs up.\n")
    store = make_store(embedder.dim, embedder.name)
    rep = Ingestor(store, embedder, Settings()).run([root])
    assert rep.added == ["alerts/queue-latency.html.md.erb"] and not rep.skipped
    assert any("Sidekiq" in c.text for c in store.chunks("alerts/queue-latency.html.md.erb"))


def test_a_folder_inside_an_ingested_root_is_not_indexed_twice(make_store, embedder, tree):
    """Bug: ingesting `kb/runbooks` after `kb` keyed its file `etcd-no-leader.md` beside the
    existing `runbooks/etcd-no-leader.md`: the same runbook twice, cited under two names. And
    ingesting `kb` after `kb/runbooks` kept the old key beside the new one."""
    store = make_store(embedder.dim, embedder.name)
    ing = _ingestor(store, embedder)
    ing.run([tree])
    before = {p: (r.root, r.chunks) for p, r in store.sources().items()}
    report = ing.run([tree / "runbooks"])
    assert report.unchanged == ["runbooks/etcd-no-leader.md"] and report.added == report.deleted == []
    (tree / "runbooks" / "etcd-no-leader.md").unlink()
    (tree / "runbooks" / "disk.md").write_text("# Disk full\n\n## Mitigation\n\nDelete old WAL segments.\n")
    report = ing.run([tree / "runbooks"])  # a missing file goes from the sub-folder only
    assert report.added == ["runbooks/disk.md"] and report.deleted == ["runbooks/etcd-no-leader.md"]
    assert set(store.sources()) == {"runbooks/disk.md", "configs/rules.yml", "docs/oncall.md"}
    assert before["docs/oncall.md"] == (str(tree), 1)

    sub = tree.parent / "kb2"
    (sub / "runbooks").mkdir(parents=True)
    (sub / "runbooks" / "etcd-no-leader.md").write_text(RUNBOOK)
    ing.run([sub / "runbooks"])
    assert "etcd-no-leader.md" in store.sources()
    report = ing.run([sub])  # the parent after the child: the file is re-keyed, the old key removed
    assert report.added == ["runbooks/etcd-no-leader.md"] and report.deleted == ["etcd-no-leader.md"]
    assert not list(store.chunks("etcd-no-leader.md")) and store.sources()["runbooks/etcd-no-leader.md"].root == str(sub)
