"""Load shedding (issue 17): overloaded, the server queued every question without bound, clients
gave up while it still worked through their abandoned requests, and its answered rate fell
from ~80/s to 26/s (bench/http_load.py --rate 200 --unique). Beyond SRE_KB_MAX_INFLIGHT
questions in progress, a new one now gets an immediate 503 with Retry-After."""

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.api.test_http import Server, app_with


def test_questions_beyond_the_limit_get_an_immediate_503(shipped_kb, monkeypatch):
    release = threading.Event()
    entered = threading.Semaphore(0)
    search = shipped_kb.search

    def slow_search(*args, **kwargs):  # holds its place until released: two questions in progress
        entered.release()
        release.wait(30)
        return search(*args, **kwargs)

    monkeypatch.setattr(shipped_kb, "search", slow_search)
    settings = shipped_kb.settings.model_copy(update={"max_inflight": 2})
    with Server(app_with(settings, shipped_kb)) as url, ThreadPoolExecutor(2) as pool:
        held = [pool.submit(httpx.post, f"{url}/v1/search", json={"question": "disk full"}, timeout=60) for _ in range(2)]
        assert entered.acquire(timeout=30) and entered.acquire(timeout=30)
        shed = httpx.post(f"{url}/v1/search", json={"question": "etcd has no leader"}, timeout=5)
        also = httpx.post(f"{url}/v1/ask", json={"question": "etcd has no leader"}, timeout=5)
        health = httpx.get(f"{url}/health", timeout=30)  # not a question: never shed
        release.set()
        assert [f.result().status_code for f in held] == [200, 200]
        after = httpx.post(f"{url}/v1/search", json={"question": "etcd has no leader"}, timeout=30)
    for r in (shed, also):
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        assert r.json()["error"]["type"] == "overloaded" and "SRE_KB_MAX_INFLIGHT" in r.json()["error"]["message"]
    assert health.status_code == 200 and after.status_code == 200  # the places were given back
