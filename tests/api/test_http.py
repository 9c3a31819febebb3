"""The real FastAPI app served by uvicorn on loopback, spoken to over HTTP with httpx."""

import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from srekb.api.app import create_app
from srekb.api.deps import get_kb
from srekb.retrieval import KnowledgeBase, Settings


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, app) -> None:
        self.port = _free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.time() + 30
        while not self.server.started and time.time() < deadline:
            time.sleep(0.05)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def app_with(settings: Settings, kb: KnowledgeBase) -> FastAPI:
    """The real app with the test's knowledge base swapped in for ``get_kb``: routes and ingest
    jobs use it, and the app neither opens nor closes a store of its own."""
    app = create_app(settings)
    app.dependency_overrides[get_kb] = lambda: kb
    return app


@pytest.fixture(scope="module")
def served(shipped_kb) -> Iterator[tuple[str, KnowledgeBase]]:
    with Server(app_with(shipped_kb.settings, shipped_kb)) as url:
        yield url, shipped_kb


def test_ask_over_http(served):
    url, _ = served
    r = httpx.post(f"{url}/v1/ask", json={"question": "PatroniNoLeader is firing, what should I check?"}, timeout=30)
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["mode"] == "extractive" and d["citations"] and d["citation_block"].startswith("Citations:\n1) ")


def test_search_with_filters_over_http(served):
    url, _ = served
    r = httpx.post(f"{url}/v1/search", json={"question": "disk full", "k": 5, "filters": {"source_types": ["incident"]}}, timeout=30)
    assert r.status_code == 200, r.text
    hits = r.json()["hits"]
    assert len(hits) == 5 and {h["source_type"] for h in hits} == {"incident"}


@pytest.mark.parametrize(
    ("body", "status", "kind"),
    [
        ({"question": ""}, 422, "validation_error"),
        ({"question": "x", "k": 0}, 422, "validation_error"),
        ({"question": "x", "filters": {"team": "a"}}, 422, "validation_error"),
        ({"question": "   "}, 400, "invalid_query"),
        ({"question": "y" * 3000}, 400, "invalid_query"),
    ],
)
def test_bad_requests_get_one_error_shape(served, body, status, kind):
    url, _ = served
    r = httpx.post(f"{url}/v1/ask", json=body, timeout=30)
    assert r.status_code == status and r.json()["error"]["type"] == kind and r.json()["error"]["message"]


def test_malformed_json_and_unknown_route(served):
    url, _ = served
    r = httpx.post(f"{url}/v1/ask", content=b"{not json", headers={"content-type": "application/json"}, timeout=30)
    assert r.status_code == 422 and r.json()["error"]["type"] == "validation_error"
    r = httpx.get(f"{url}/v1/nope", timeout=30)
    assert r.status_code == 404 and r.json()["error"]["type"] == "http_error"


def test_health(served):
    url, _ = served
    assert httpx.get(f"{url}/healthz", timeout=10).json() == {"status": "ok"}
    h = httpx.get(f"{url}/health", timeout=30).json()
    assert h["status"] == "healthy" and h["components"]["store"]["status"] == "ok"
    assert h["components"]["embedding"]["latency_ms"] >= 0 and h["components"]["llm"]["status"] == "off"


def test_api_keys_when_configured(shipped_kb):
    s = shipped_kb.settings.model_copy(update={"api_keys": ["s3cret"]})
    with Server(app_with(s, shipped_kb)) as url:
        r = httpx.post(f"{url}/v1/search", json={"question": "disk"}, timeout=30)
        assert r.status_code == 401 and "Bearer" in r.json()["error"]["message"]
        r = httpx.post(f"{url}/v1/search", json={"question": "disk"}, headers={"Authorization": "Bearer wrong"}, timeout=30)
        assert r.status_code == 401
        r = httpx.post(f"{url}/v1/search", json={"question": "disk"}, headers={"Authorization": "Bearer s3cret"}, timeout=30)
        assert r.status_code == 200
        assert httpx.get(f"{url}/healthz", timeout=10).status_code == 200  # health needs no key
