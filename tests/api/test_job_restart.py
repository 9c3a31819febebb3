"""Ingest jobs survive a ``kill -9`` of ``srekb serve`` (issue 17): a real server process, real HTTP."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from srekb.retrieval.store import EdgeStore

from tests.conftest import SHIPPED


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(store: Path, root: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "SRE_KB_ALLOWED_ROOTS": json.dumps([str(root)])}
    env.pop("GOOGLE_API_KEY", None)
    env.pop("GEMINI_API_KEY", None)
    proc = subprocess.Popen([sys.executable, "-m", "srekb.api.cli", "serve", "--store", str(store), "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.3)
    proc.kill()
    raise AssertionError("srekb serve did not start")


def _job(url: str, job_id: str) -> dict:
    r = httpx.get(f"{url}/v1/jobs/{job_id}", timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def test_job_killed_mid_ingest_is_interrupted_and_a_repost_finishes_it(tmp_path, shipped_kb):
    """Bug: after kill -9 mid-job, GET /v1/jobs/{id} said 404, with no sign the job was interrupted."""
    store = tmp_path / "store"
    EdgeStore(store, shipped_kb.embedder.dim, shipped_kb.embedder.name).close()  # serve opens an existing store: an empty one
    port = _port()
    url = f"http://127.0.0.1:{port}"
    proc = _serve(store, SHIPPED, port)
    try:
        job_id = httpx.post(f"{url}/v1/ingest", json={"paths": [str(SHIPPED)]}, timeout=30).json()["id"]
        deadline = time.time() + 120
        while time.time() < deadline:  # kill it once some chunks are embedded, before the end
            job = _job(url, job_id)
            if (job["progress"]["phase"] == "embed" and job["progress"]["done"] > 0) or job["status"] not in ("queued", "running"):
                break
            time.sleep(0.1)
        assert job["status"] == "running", job
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    proc = _serve(store, SHIPPED, port)
    try:
        job = _job(url, job_id)
        assert job["status"] == "interrupted" and "re-post the same request" in job["error"] and job["finished_at"]
        again = httpx.post(f"{url}/v1/ingest", json={"paths": [str(SHIPPED)]}, timeout=30).json()["id"]
        deadline = time.time() + 600
        while (job := _job(url, again))["status"] in ("queued", "running") and time.time() < deadline:
            time.sleep(0.5)
        assert job["status"] == "succeeded", job
        health = httpx.get(f"{url}/health", timeout=30).json()
        # Exactly the clean ingest's chunks: none lost, none duplicated.
        assert health["components"]["store"]["detail"] == f"{shipped_kb.store.count()} chunks"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
