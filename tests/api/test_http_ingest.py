"""Ingest jobs, sources, metrics and streaming over real HTTP, on a fresh embedded store."""

import json
import shutil
import time

import httpx
import pytest
from srekb.retrieval.kb import KnowledgeBase
from srekb.retrieval.store import EdgeStore

from tests.api.test_http import Server, app_with
from tests.conftest import SHIPPED

RUNBOOK = "# Disk full\n\n## Mitigation\n\nDelete old WAL segments with pg_archivecleanup.\n"


@pytest.fixture
def app_url(tmp_path, real_embedder, settings):
    root = tmp_path / "allowed"
    (root / "runbooks").mkdir(parents=True)
    (root / "runbooks" / "disk.md").write_text(RUNBOOK)
    store_dir = tmp_path / "store"
    store = EdgeStore(store_dir, real_embedder.dim, real_embedder.name)
    s = settings.model_copy(update={"store": store_dir, "model_cache": tmp_path / "cache", "allowed_roots": [root]})
    kb = KnowledgeBase(s, store=store, embedder=real_embedder)
    with Server(app_with(s, kb)) as url:
        yield url, root, tmp_path
    store.close()


def _wait(url: str, job_id: str) -> dict:
    deadline = time.time() + 120
    while time.time() < deadline:
        job = httpx.get(f"{url}/v1/jobs/{job_id}", timeout=10).json()
        if job["status"] in ("succeeded", "failed"):
            return job
        time.sleep(0.2)
    raise AssertionError("job did not finish")


def test_ingest_job_sources_and_delete(app_url):
    url, root, tmp = app_url
    r = httpx.post(f"{url}/v1/ingest", json={"paths": [str(root)]}, timeout=10)
    assert r.status_code == 202, r.text
    job = _wait(url, r.json()["id"])
    assert job["status"] == "succeeded" and job["report"]["added"] == ["runbooks/disk.md"]
    page = httpx.get(f"{url}/v1/sources", params={"limit": 10}, timeout=10).json()
    assert page["total"] == 1 and page["items"][0]["id"] == "runbooks/disk.md" and page["items"][0]["chunks"] == 1
    text = httpx.get(f"{url}/v1/sources/runbooks/disk.md", timeout=10).json()
    assert text["from_file"] and not text["changed_since_ingest"]
    assert text["lines"][4] == {"n": 5, "text": "Delete old WAL segments with pg_archivecleanup."}
    # Bug: after the file was replaced on disk, the current text was served, so line numbers no longer matched the citations.
    (root / "runbooks" / "disk.md").write_text("# Disk full\n\nInserted line.\n\n## Mitigation\n\nSomething else now.\n")
    text = httpx.get(f"{url}/v1/sources/runbooks/disk.md", timeout=10).json()
    assert not text["from_file"] and text["changed_since_ingest"]
    assert {"n": 5, "text": "Delete old WAL segments with pg_archivecleanup."} in text["lines"]
    (root / "runbooks" / "disk.md").write_text(RUNBOOK)
    ans = httpx.post(f"{url}/v1/ask", json={"question": "How do I clean up WAL segments when the disk is full?"}, timeout=30).json()
    assert ans["citations"][0]["path"] == "runbooks/disk.md"
    assert httpx.delete(f"{url}/v1/sources/runbooks/disk.md", timeout=10).json() == {"deleted": "runbooks/disk.md"}
    assert httpx.get(f"{url}/v1/sources", timeout=10).json()["total"] == 0
    assert httpx.get(f"{url}/v1/sources/runbooks/disk.md", timeout=10).status_code == 404


def test_queries_keep_working_while_a_job_runs(app_url):
    url, root, _ = app_url
    httpx.post(f"{url}/v1/ingest", json={"paths": [str(root)]}, timeout=10)
    shutil.copytree(SHIPPED, root / "shipped")  # a bigger tree: ~1,000 chunks to embed
    job_id = httpx.post(f"{url}/v1/ingest", json={"paths": [str(root / "shipped")]}, timeout=10).json()["id"]
    answered = 0
    while httpx.get(f"{url}/v1/jobs/{job_id}", timeout=10).json()["status"] in ("queued", "running"):
        r = httpx.post(f"{url}/v1/search", json={"question": "disk full WAL", "k": 3}, timeout=30)
        assert r.status_code == 200
        answered += 1
    assert answered >= 3
    assert _wait(url, job_id)["status"] == "succeeded"


def test_upload_and_bad_ingest_requests(app_url):
    url, root, tmp = app_url
    files = [("files", ("etcd.md", b"# etcd\n\n## Defrag\n\nRun etcdctl defrag on each member.\n", "text/markdown"))]
    r = httpx.post(f"{url}/v1/ingest/upload", files=files, timeout=10)
    assert r.status_code == 202, r.text
    assert _wait(url, r.json()["id"])["report"]["added"] == ["etcd.md"]
    outside = tmp / "outside"
    outside.mkdir()
    r = httpx.post(f"{url}/v1/ingest", json={"paths": [str(outside)]}, timeout=10)
    assert r.status_code == 403 and "outside the allowed roots" in r.json()["error"]["message"]
    r = httpx.post(f"{url}/v1/ingest", json={"paths": [str(root / ".." / "outside")]}, timeout=10)
    assert r.status_code == 403
    (root / "escape").symlink_to(outside)
    assert httpx.post(f"{url}/v1/ingest", json={"paths": [str(root / "escape")]}, timeout=10).status_code == 403
    assert httpx.get(f"{url}/v1/jobs/nope", timeout=10).status_code == 404
    r = httpx.post(f"{url}/v1/ingest/upload", files=[("files", (".hidden", b"x", "text/plain"))], timeout=10)
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_upload"


def test_streaming_and_metrics(app_url):
    url, root, _ = app_url
    _wait(url, httpx.post(f"{url}/v1/ingest", json={"paths": [str(root)]}, timeout=10).json()["id"])
    with httpx.stream("POST", f"{url}/v1/ask", json={"question": "How do I clean up WAL segments?", "stream": True}, timeout=30) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        events = [line.removeprefix("event: ") for line in r.iter_lines() if line.startswith("event: ")]
    assert events[0] == "intent" and events[1] == "hits" and "delta" in events and events[-2:] == ["citations", "done"]
    with httpx.stream("POST", f"{url}/v1/ask", json={"question": "   "}, headers={"Accept": "text/event-stream"}, timeout=30) as r:
        body = "".join(r.iter_text())
    assert "event: error" in body and "question is empty" in body
    metrics = httpx.get(f"{url}/metrics", timeout=10).text
    assert 'srekb_http_requests_total{method="POST",route="/v1/ask",status="200"}' in metrics
    assert "srekb_index_chunks 1.0" in metrics and 'srekb_ingest_jobs_total{status="succeeded"}' in metrics
    json.loads(httpx.get(f"{url}/openapi.json", timeout=10).text)


def test_uploads_never_collide_and_refused_files_are_not_kept(app_url):
    """Bugs: two uploaded files of one name (the last won, the report said "added" twice); an
    upload replacing an ingested folder's file of the same name; refused upload files left on disk."""
    url, root, tmp = app_url
    (root / "disk.md").write_text(RUNBOOK)  # a top-level file of the allowed root, ingested by path
    r = httpx.post(f"{url}/v1/ingest", json={"paths": [str(root)]}, timeout=10)
    assert _wait(url, r.json()["id"])["status"] == "succeeded"
    doc = ("files", ("notes.md", b"# Notes\n\nRotate the logs weekly.\n", "text/markdown"))
    r = httpx.post(f"{url}/v1/ingest/upload", files=[doc, doc], timeout=10)
    assert r.status_code == 400 and "two files named notes.md" in r.json()["error"]["message"]
    r = httpx.post(f"{url}/v1/ingest/upload", files=[("files", ("disk.md", b"# Replaced\n\nNothing useful.\n", "text/markdown"))], timeout=10)
    assert r.status_code == 409 and str(root) in r.json()["error"]["message"]
    text = httpx.get(f"{url}/v1/sources/disk.md", timeout=10).json()
    assert any("pg_archivecleanup" in line["text"] for line in text["lines"])  # the folder's file is intact
    binary = ("files", ("blob.md", b"\x00\x01\x02 binary \x00" * 50, "text/markdown"))
    r = httpx.post(f"{url}/v1/ingest/upload", files=[doc, binary], timeout=10)
    job = _wait(url, r.json()["id"])
    assert job["report"]["added"] == ["notes.md"] and [s["path"] for s in job["report"]["skipped"]] == ["blob.md"]
    uploads = tmp / "store" / "uploads"
    assert (uploads / "notes.md").is_file() and not (uploads / "blob.md").exists()


def test_concurrent_writers_over_http_lose_and_duplicate_nothing(app_url):
    """Fault suite: eight clients post ingests of overlapping trees at once (and one deletes a
    file meanwhile). Every request is accepted, the jobs run one at a time, and the store ends
    with each file's chunks exactly once."""
    from concurrent.futures import ThreadPoolExecutor

    url, root, _ = app_url
    for i in range(3):
        (root / "runbooks" / f"svc-{i}.md").write_text(f"# Service {i} down\n\n## Mitigation\n\nRestart svc-{i} pods.\n")
    bodies = [{"paths": [str(root)]}, {"paths": [str(root / "runbooks")]}] * 4
    with ThreadPoolExecutor(8) as pool:
        posted = list(pool.map(lambda b: httpx.post(f"{url}/v1/ingest", json=b, timeout=30), bodies))
    assert [r.status_code for r in posted] == [202] * 8
    jobs = [_wait(url, r.json()["id"]) for r in posted]
    assert [j["status"] for j in jobs] == ["succeeded"] * 8
    added = [p for j in jobs for p in j["report"]["added"]]
    assert sorted(added) == sorted({*added})  # each file added by one job; the others found it unchanged
    sources = httpx.get(f"{url}/v1/sources", params={"limit": 100}, timeout=10).json()
    assert sources["total"] == 4 and sum(s["chunks"] for s in sources["items"]) == int(
        httpx.get(f"{url}/health", timeout=10).json()["components"]["store"]["detail"].split()[0]
    )
