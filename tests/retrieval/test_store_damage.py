"""A damaged store (issue 17): one clear line and how to rebuild it, a degraded /health, a 503.

Each case truncates one kind of file of a real embedded store ingested by the real CLI.
"""

import shutil
from pathlib import Path

import httpx
import pytest
from srekb.api.app import create_app
from srekb.retrieval.kb import KnowledgeBase
from srekb.retrieval.store import EdgeStore

from tests.api.test_http import Server
from tests.retrieval.test_cli_query import srekb

RUNBOOK = "# Disk full\n\n## Mitigation\n\nDelete old WAL segments with pg_archivecleanup, then check the disk.\n"


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> tuple[Path, Path]:
    docs = tmp_path_factory.mktemp("docs")
    (docs / "disk.md").write_text(RUNBOOK)
    store = tmp_path_factory.mktemp("template") / "store"
    res = srekb("ingest", str(docs), "--store", str(store), "--json")
    assert res.returncode == 0, res.stderr
    return docs, store


def _damage(store: Path, kind: str) -> None:
    targets = {
        "store.json": [store / "store.json"],
        "sources.sqlite": [store / "sources.sqlite"],
        "vectors": list(store.glob("shard/segments/*/vector_storage-dense/vectors/chunk_*.mmap")),
        "payload": list(store.glob("shard/segments/*/payload_storage/page_*.dat")),
    }[kind]
    assert targets, f"no {kind} file in the store"
    for t in targets:
        with open(t, "r+b") as f:
            f.truncate(5)


@pytest.mark.parametrize("kind", ["store.json", "sources.sqlite", "vectors", "payload"])
def test_damaged_store_gives_one_line_and_the_rebuild_command(template, tmp_path, kind):
    """Bug: with a store file truncated, `srekb ask` printed a 43-54-line traceback."""
    docs, good = template
    store = tmp_path / "store"
    shutil.copytree(good, store)
    _damage(store, kind)
    res = srekb("ask", "the disk is full, what do I do?", "--store", str(store))
    assert res.returncode == 1 and "Traceback" not in res.stderr + res.stdout
    assert "is damaged" in res.stderr and f"--store {store} --rebuild" in res.stderr
    # The command it names rebuilds the store from its sources, and answers again.
    res = srekb("ingest", str(docs), "--store", str(store), "--rebuild", "--json")
    assert res.returncode == 0, res.stderr
    res = srekb("ask", "the disk is full, what do I do?", "--store", str(store), "--json")
    assert res.returncode == 0 and "disk.md" in res.stdout


def test_rebuild_refuses_without_its_sources(template, tmp_path):
    """--rebuild deletes nothing when the paths to rebuild from are missing."""
    _, good = template
    store = tmp_path / "store"
    shutil.copytree(good, store)
    res = srekb("ingest", str(tmp_path / "nowhere"), "--store", str(store), "--rebuild")
    assert res.returncode == 2 and "needs the sources" in res.stderr and (store / "store.json").exists()


def test_health_is_degraded_and_search_is_503_on_a_damaged_store(template, tmp_path, real_embedder, settings):
    """Bug: with a vector file truncated, /health said healthy and every search was a 500."""
    _, good = template
    store_dir = tmp_path / "store"
    shutil.copytree(good, store_dir)
    _damage(store_dir, "vectors")
    store = EdgeStore(store_dir, real_embedder.dim, real_embedder.name, create=False)  # opened as it was before the probe existed
    s = settings.model_copy(update={"store": store_dir, "model_cache": tmp_path / "cache"})
    kb = KnowledgeBase(s, store=store, embedder=real_embedder)
    try:
        with Server(create_app(s, kb)) as url:
            health = httpx.get(f"{url}/health", timeout=30).json()
            assert health["status"] == "unhealthy" and health["components"]["store"]["status"] == "degraded"
            assert "--rebuild" in health["components"]["store"]["detail"]
            r = httpx.post(f"{url}/v1/search", json={"question": "disk full"}, timeout=30)
            assert r.status_code == 503 and r.json()["error"]["type"] == "store_unavailable" and "--rebuild" in r.json()["error"]["message"]
    finally:
        store.close()
