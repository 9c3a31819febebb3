"""The Store contract, run on both backends (embedded qdrant-edge and the qdrant-client path)."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest
from srekb.retrieval.errors import ConfigError, StoreLockedError, StoreNotFoundError
from srekb.retrieval.models.sparse import default_bm25
from srekb.retrieval.store import EdgeStore, HybridQuery, SearchFilters, point_id, point_number
from srekb.retrieval.store.migrate import POINT_IDS
from srekb.retrieval.types import Chunk, SourceRecord, SourceType

DOCS = [
    ("runbooks/etcd.md", SourceType.RUNBOOK, "etcd has no leader: check member health with etcdctl endpoint status", {"service": "etcd"}),
    ("runbooks/disk.md", SourceType.RUNBOOK, "node disk full: clean /var/log and journal", {"service": "node"}),
    ("incidents/a.md", SourceType.INCIDENT, "INC-2024-001 disk full on payments-db WAL volume", {"date": "2024-03-01", "service": "payments-db"}),
    ("incidents/b.md", SourceType.INCIDENT, "INC-2025-007 disk full on orders-db WAL volume", {"date": "2025-06-01", "service": "orders-db"}),
    ("configs/rules.yml", SourceType.CONFIG, "alert: KubePodCrashLooping expr: restarts > 3", {"alert": "KubePodCrashLooping"}),
]


def _chunks():
    return [Chunk(p, t, p, "s", text, 1, 3, key="k", meta=m) for p, t, text, m in DOCS]


def _fill(store, embedder):
    chunks = _chunks()
    dense = embedder.embed_batch([c.embed_text() for c in chunks])
    bm25 = default_bm25()
    for i, c in enumerate(chunks):
        store.upsert([c], dense[i : i + 1], [bm25.document(c.embed_text())], file_hash=f"h{i}")
    return chunks


def _query(embedder, text, **kw):
    return HybridQuery(dense=embedder.embed_batch([text])[0], sparse=default_bm25().query(text), **kw)


def test_hybrid_search_finds_exact_identifier_and_meaning(make_store, embedder):
    store = make_store(embedder.dim, embedder.name)
    _fill(store, embedder)
    assert store.count() == len(DOCS)
    hits = store.hybrid(_query(embedder, "KubePodCrashLooping", limit=3))
    assert hits[0].chunk.path == "configs/rules.yml"
    hits = store.hybrid(_query(embedder, "the etcd cluster lost its leader", limit=3))
    assert hits[0].chunk.path == "runbooks/etcd.md"
    # The embedded store numbers its points (cheaper than UUIDs in Python); the server keeps UUIDs.
    assert hits[0].id == (str(point_number("runbooks/etcd.md", "k")) if isinstance(store, EdgeStore) else point_id("runbooks/etcd.md", "k"))


def test_hybrid_hits_carry_each_channels_score(make_store, embedder):
    """The reranker reads every candidate's dense cosine and BM25 score beside the fused score."""
    store = make_store(embedder.dim, embedder.name)
    _fill(store, embedder)
    q = _query(embedder, "disk full WAL volume", limit=5, prefetch=5)
    hits = store.hybrid(q)
    assert len(hits) == len(DOCS)
    for h in hits:
        cosine = float(np.dot(q.dense, embedder.embed_batch([h.chunk.embed_text()])[0]))
        assert h.scores.dense == pytest.approx(cosine, abs=1e-3)
    bm25 = {h.chunk.path: h.scores.bm25 for h in hits}
    assert bm25["incidents/a.md"] > 0 and bm25["incidents/b.md"] > 0  # they share the words
    assert bm25["configs/rules.yml"] == 0.0  # no word in common


def test_search_sees_every_write(make_store, embedder):
    """Searches read chunks through the embedded store's cache: a rewrite or delete must show at once."""
    store = make_store(embedder.dim, embedder.name)
    chunks = _fill(store, embedder)
    assert store.hybrid(_query(embedder, "etcd leader", limit=1))[0].chunk.text.startswith("etcd has no leader")
    changed = Chunk("runbooks/etcd.md", SourceType.RUNBOOK, "etcd", "s", "etcd leader lost: restart the stale member", 1, 3, key="k")
    bm25 = default_bm25()
    store.upsert([changed], embedder.embed_batch([changed.embed_text()]), [bm25.document(changed.embed_text())], file_hash="new")
    assert store.hybrid(_query(embedder, "etcd leader", limit=1))[0].chunk.text == "etcd leader lost: restart the stale member"
    store.delete_path("runbooks/etcd.md")
    assert "runbooks/etcd.md" not in {h.chunk.path for h in store.hybrid(_query(embedder, "etcd leader", limit=10))}
    assert len(chunks) == len(DOCS)


def test_filters_by_type_service_and_date(make_store, embedder):
    store = make_store(embedder.dim, embedder.name)
    _fill(store, embedder)
    q = _query(embedder, "disk full", limit=10, filters=SearchFilters(source_types=[SourceType.INCIDENT]))
    assert {h.chunk.path for h in store.hybrid(q)} == {"incidents/a.md", "incidents/b.md"}
    q = _query(embedder, "disk full", limit=10, filters=SearchFilters(services=["orders-db"]))
    assert [h.chunk.path for h in store.hybrid(q)] == ["incidents/b.md"]
    q = _query(embedder, "disk full", limit=10, filters=SearchFilters(date_from="2025-01-01"))
    assert [h.chunk.path for h in store.hybrid(q)] == ["incidents/b.md"]
    dense = store.dense_search(embedder.embed_batch(["disk"])[0], 10, SearchFilters(paths=["runbooks/disk.md"]))
    assert [h.chunk.path for h in dense] == ["runbooks/disk.md"]
    sparse = store.sparse_search(default_bm25().query("KubePodCrashLooping"), 10)
    assert [h.chunk.path for h in sparse] == ["configs/rules.yml"]


def test_delete_path_keeps_the_new_version(make_store, fake_embedder):
    store = make_store(fake_embedder.dim, fake_embedder.name)
    bm25 = default_bm25()
    old = [Chunk("a.md", SourceType.DOC, "A", f"s{i}", f"old text {i}", i, i, key=f"k{i}") for i in range(3)]
    store.upsert(old, fake_embedder.embed_batch([c.text for c in old]), [bm25.document(c.text) for c in old], "v1")
    new = [Chunk("a.md", SourceType.DOC, "A", "s0", "new text", 1, 1, key="k0")]
    store.upsert(new, fake_embedder.embed_batch(["new text"]), [bm25.document("new text")], "v2")
    assert store.count() == 3
    store.delete_path("a.md", keep_hash="v2")
    assert [c.text for c in store.chunks("a.md")] == ["new text"]
    store.delete_path("a.md")
    assert store.count() == 0


def test_source_records_roundtrip(make_store, fake_embedder):
    store = make_store(fake_embedder.dim, fake_embedder.name)
    rec = SourceRecord("a.md", "/root", SourceType.DOC, "abc", 10, 2, "2026-01-01T00:00:00+00:00", "A", "v1")
    store.put_source(rec)
    assert store.sources() == {"a.md": rec}
    store.drop_source("a.md")
    assert store.sources() == {}


def test_edge_store_reopens_with_its_data(tmp_path, fake_embedder):
    s = EdgeStore(tmp_path / "s", fake_embedder.dim, fake_embedder.name)
    c = Chunk("a.md", SourceType.DOC, "A", "s", "hello world", 1, 1, key="k")
    s.upsert([c], fake_embedder.embed_batch(["hello world"]), [default_bm25().document("hello world")], "h")
    s.optimize()
    s.close()
    s = EdgeStore(tmp_path / "s", fake_embedder.dim, fake_embedder.name, create=False)
    assert [x.text for x in s.chunks()] == ["hello world"]
    s.close()


def test_edge_store_gives_an_old_stores_uuid_points_integer_ids(tmp_path, fake_embedder):
    """A store written before integer ids is converted when opened: same chunks, no duplicates."""
    import json

    s = EdgeStore(tmp_path / "s", fake_embedder.dim, fake_embedder.name)
    chunks = _chunks()
    qe = s._qe
    dense = fake_embedder.embed_batch([c.embed_text() for c in chunks])
    bm25 = default_bm25()
    vectors = [{"dense": dense[i].tolist(), "bm25": qe.SparseVector(*bm25.document(c.embed_text()))} for i, c in enumerate(chunks)]
    s._shard.update(qe.UpdateOperation.upsert_points([
        qe.Point(point_id(c.path, c.key), vectors[i], {**c.to_payload(), "file_hash": "h"}) for i, c in enumerate(chunks)
    ]))
    s.close()
    meta = tmp_path / "s" / "store.json"
    meta.write_text(json.dumps({k: v for k, v in json.loads(meta.read_text()).items() if k != "point_ids"}))
    s = EdgeStore(tmp_path / "s", fake_embedder.dim, fake_embedder.name, create=False)
    assert s.count() == len(DOCS)
    assert json.loads(meta.read_text())["point_ids"] == POINT_IDS
    hits = s.hybrid(HybridQuery(dense=fake_embedder.embed_batch(["etcd leader"])[0], sparse=bm25.query("etcd leader"), limit=10))
    assert sorted(h.chunk.path for h in hits) == sorted(c.path for c in chunks)
    assert {h.id for h in hits} == {str(point_number(c.path, c.key)) for c in chunks}
    # Re-ingesting a chunk overwrites its converted point instead of adding one.
    s.upsert(chunks[:1], dense[:1], [bm25.document(chunks[0].embed_text())], "h2")
    assert s.count() == len(DOCS)
    s.close()


def test_edge_store_refuses_another_model(tmp_path, fake_embedder):
    EdgeStore(tmp_path / "s", fake_embedder.dim, fake_embedder.name).close()
    with pytest.raises(ConfigError, match="was built with model"):
        EdgeStore(tmp_path / "s", 384, "all-MiniLM-L6-v2")


def test_missing_store_says_how_to_fix(tmp_path):
    with pytest.raises(StoreNotFoundError, match="srekb ingest"):
        EdgeStore(tmp_path / "nope", 384, "m", create=False)


def test_second_process_gets_a_clear_lock_message(tmp_path, fake_embedder):
    """Regression: a second opener used to get a raw WAL 'WouldBlock' stack trace."""
    store = EdgeStore(tmp_path / "s", fake_embedder.dim, fake_embedder.name)
    code = textwrap.dedent(
        f"""
        from srekb.retrieval.store import EdgeStore
        from srekb.retrieval.errors import StoreLockedError
        try:
            EdgeStore({str(tmp_path / "s")!r}, {fake_embedder.dim}, {fake_embedder.name!r})
        except StoreLockedError as exc:
            print("LOCKED:", exc)
        """
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "LOCKED:" in res.stdout and "in use by another process" in res.stdout, res.stderr
    store.close()
    with pytest.raises(StoreLockedError):  # and in-process too, while open
        s1 = EdgeStore(tmp_path / "t", fake_embedder.dim, fake_embedder.name)
        try:
            EdgeStore(tmp_path / "t", fake_embedder.dim, fake_embedder.name)
        finally:
            s1.close()


def test_vectors_are_unit_norm(real_embedder):
    v = real_embedder.embed_batch(["etcd has no leader", "x"])
    assert v.shape == (2, 384)
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
