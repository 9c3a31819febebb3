"""A generative answer end to end: the real app over HTTP, the real openai SDK, the local model
stub (127.0.0.1 only). JSON and SSE answers name their backend and carry checked [n] markers;
the SSE deltas are the stub's own tokens; /health probes the model."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from srekb.retrieval import KnowledgeBase

from tests.api.test_http import Server, app_with
from tests.llm_stub import LLMStub, cited_answer, words
from tests.retrieval.test_llm_backends import ERRORS, QUESTION, kb_with, llm_settings


@pytest.fixture
def stubs() -> Iterator[dict[str, LLMStub]]:
    with LLMStub() as gemini, LLMStub() as openai:
        gemini.behave("ok", cited_answer)
        openai.behave("ok", cited_answer)
        yield {"gemini": gemini, "openai": openai}


def served_kb(shipped_kb: KnowledgeBase, stubs: dict[str, LLMStub], order: list[str]) -> tuple[Server, KnowledgeBase]:
    """A fresh knowledge base (its own chains, breakers and probe cache) behind a fresh app."""
    kb = kb_with(shipped_kb, llm_settings(shipped_kb.settings, stubs, order))
    return Server(app_with(kb.settings, kb)), kb


def sse_events(url: str, body: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    events: list[tuple[str, dict[str, Any]]] = []
    name = None
    with httpx.stream("POST", f"{url}/v1/ask", json={**body, "stream": True}, timeout=30) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                assert name is not None
                events.append((name, json.loads(line.removeprefix("data: "))))
    return events


def assert_markers_point_at_their_sources(answer: str, citations: list[dict[str, Any]]) -> None:
    """Every marked sentence is written in the source its [n] names."""
    marked = re.findall(r"(?:^|(?<=\.)\s+)(.+?)\s*\[(\d+)\]", answer)
    assert marked, answer
    for sentence, n in marked:
        assert 1 <= int(n) <= len(citations), (n, answer)
        source = " ".join(citations[int(n) - 1]["text"].split())
        assert " ".join(sentence.split()) in source, (sentence, citations[int(n) - 1]["path"])


def test_a_generative_answer_over_http_names_its_backend_and_cites_checked_sources(shipped_kb, stubs):
    server, kb = served_kb(shipped_kb, stubs, ["openai"])
    with server as url:
        r = httpx.post(f"{url}/v1/ask", json={"question": QUESTION}, timeout=30)
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["mode"] == "generative" and d["backend"] == "openai:stub-model" and d["llm_error"] is None and d["unsupported"] == 0
    assert stubs["openai"].requests[-1].prompt.count("\n[") >= 2  # the numbered sources went to the model
    assert_markers_point_at_their_sources(d["answer"], d["citations"])
    assert [p["kind"] for p in d["parts"]] == ["generated"] and d["citation_block"].startswith("Citations:\n1) ")
    assert stubs["gemini"].requests == []
    kb.close()


@pytest.mark.parametrize("openai", ["ok", "429"])
def test_sse_streams_the_models_tokens_then_done_names_the_backend(shipped_kb, stubs, openai):
    stubs["openai"].behave(openai)
    server, kb = served_kb(shipped_kb, stubs, ["openai", "gemini"])
    with server as url:
        events = sse_events(url, {"question": QUESTION})
    names = [n for n, _ in events]
    assert names[:2] == ["intent", "hits"] and names[-2:] == ["citations", "done"]
    deltas = [d["text"] for n, d in events if n == "delta"]
    assert names[2:-2] == ["delta"] * len(deltas) and len(deltas) >= 3
    writer = "openai" if openai == "ok" else "gemini"
    # The deltas are the stub's streamed tokens, in order, as they came.
    assert deltas == words(cited_answer(stubs[writer].requests[-1].prompt))
    assert stubs[writer].requests[-1].stream
    done = events[-1][1]
    assert done["mode"] == "generative" and done["backend"] == f"{writer}:" + ("stub-model" if writer == "openai" else "gemini-stub")
    if openai == "ok":
        assert done["llm_error"] is None and stubs["gemini"].requests == []
    else:
        assert done["llm_error"].startswith(f"openai:stub-model: {ERRORS['openai', '429']}")
    assert_markers_point_at_their_sources(done["answer"], done["citations"])
    assert events[-2][1]["citations"] == done["citations"]
    kb.close()


@pytest.mark.parametrize("behaviour", ["ok", "500"])
def test_health_probes_the_answer_model(shipped_kb, stubs, behaviour):
    stubs["openai"].behave(behaviour)
    server, kb = served_kb(shipped_kb, stubs, ["openai"])
    with server as url:
        h = httpx.get(f"{url}/health", timeout=30).json()
    llm = h["components"]["llm"]
    assert h["status"] == "healthy"  # a model down degrades answers to extractive, not the service
    if behaviour == "ok":
        assert llm["status"] == "ok" and llm["latency_ms"] is not None and llm["latency_ms"] >= 0
        assert llm["detail"] == "openai:stub-model: ok (answered)"
    else:
        assert llm["status"] == "down" and llm["latency_ms"] is None
        assert llm["detail"].startswith(f"openai:stub-model: down ({ERRORS['openai', '500']}") and "server had an error" in llm["detail"]
    assert len(stubs["openai"].requests) == 1 and not stubs["openai"].requests[0].stream
    kb.close()
