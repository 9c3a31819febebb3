"""Gemini and OpenAI-compatible backends pass one suite through their real SDKs (google-genai,
openai) against the local stub (``tests/llm_stub.py``, 127.0.0.1 only): completion, JSON mode,
streaming, errors, timeouts with fallback in both orders, the circuit breaker, and the offline
answer when every backend fails."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from srekb.retrieval.answer.draft import NOT_ENOUGH
from srekb.retrieval.kb import KnowledgeBase
from srekb.retrieval.models.llm import LLM, FakeLLM, GeminiLLM, OpenAILLM
from srekb.retrieval.models.routing import CircuitBreaker, FallbackLLM, Guarded, LLMRouter, LLMUnavailable
from srekb.retrieval.settings import Settings

from tests.llm_stub import LLMStub, cited_answer

BACKENDS = ["gemini", "openai"]
NAMES = {"gemini": "gemini:gemini-stub", "openai": "openai:stub-model"}
QUESTION = "PatroniNoLeader is firing, what should I check?"
# How each API's errors read in llm_error: the SDK's exception, its status, the API's own message.
ERRORS = {
    ("gemini", "429"): "ClientError: 429 RESOURCE_EXHAUSTED",
    ("gemini", "500"): "ServerError: 500 INTERNAL",
    ("openai", "429"): "RateLimitError: Error code: 429",
    ("openai", "500"): "InternalServerError: Error code: 500",
}
TIMED_OUT = {"gemini": "ReadTimeout: timed out", "openai": "APITimeoutError: Request timed out."}


class Clock:
    """A settable monotonic clock for the circuit breakers: cool-downs pass without sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def stubs() -> Iterator[dict[str, LLMStub]]:
    """One stub server per backend (each its own endpoint, so each has its own breaker)."""
    with LLMStub() as gemini, LLMStub() as openai:
        yield {"gemini": gemini, "openai": openai}


def llm_settings(base: Settings, stubs: dict[str, LLMStub], order: list[str], **update: object) -> Settings:
    """Both backends configured against their stubs, tried in ``order``, with a 1 s timeout."""
    return base.model_copy(update={
        "google_api_key": "stub-key", "gemini_model": "gemini-stub", "gemini_base_url": stubs["gemini"].url,
        "openai_base_url": stubs["openai"].openai_url, "openai_model": "stub-model", "openai_api_key": None,
        "llm_order": order, "llm_timeout_s": 1.0, "reranker": "features", "intent_classifier": "embedding", **update,
    })


def direct(backend: str, stub: LLMStub, timeout_s: float = 1.0) -> LLM:
    if backend == "gemini":
        return GeminiLLM("stub-key", "gemini-stub", timeout_s, stub.url)
    return OpenAILLM("stub-model", stub.openai_url, None, timeout_s)


def kb_with(shipped_kb: KnowledgeBase, settings: Settings) -> KnowledgeBase:
    return KnowledgeBase(settings, store=shipped_kb.store, embedder=shipped_kb.embedder)


@pytest.mark.parametrize("backend", BACKENDS)
def test_complete_and_json_mode_reach_the_api(backend, stubs):
    stub, llm = stubs[backend], direct(backend, stubs[backend])
    assert isinstance(llm, LLM) and llm.name == NAMES[backend]
    assert llm.complete("etcd has no leader") == "echo: etcd has no leader"
    req = stub.requests[-1]
    assert req.api == backend and not req.stream and req.prompt == "etcd has no leader"
    assert llm.complete("rank these as JSON", json=True, temperature=0.0) == "echo: rank these as JSON"
    body = stub.requests[-1].body
    if backend == "gemini":
        assert stub.requests[-1].path.endswith("/models/gemini-stub:generateContent")
        assert body["generationConfig"] == {"responseMimeType": "application/json", "temperature": 0.0}
    else:
        assert body["model"] == "stub-model" and body["response_format"] == {"type": "json_object"} and body["temperature"] == 0.0


@pytest.mark.parametrize("backend", BACKENDS)
def test_stream_delivers_the_deltas_in_order(backend, stubs):
    stub = stubs[backend].behave("ok", "Restart the member.", tokens=["Restart ", "the ", "mem", "ber", "."])
    assert list(direct(backend, stub).stream("what now?")) == ["Restart ", "the ", "mem", "ber", "."]
    assert stub.requests[-1].stream and stub.requests[-1].prompt == "what now?"
    if backend == "gemini":
        assert ":streamGenerateContent" in stub.requests[-1].path and "alt=sse" in stub.requests[-1].path
    chain = LLMRouter(llm_settings(Settings(), stubs, [backend])).for_task("answer")
    assert chain is not None
    streamed = chain.stream_reply("what now?")
    assert list(streamed) == ["Restart ", "the ", "mem", "ber", "."]
    assert streamed.backend == NAMES[backend] and streamed.failures == []


@pytest.mark.parametrize("status", ["429", "500"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_api_errors_raise_and_are_reported(backend, status, stubs, shipped_kb):
    stubs[backend].behave(status)
    llm = direct(backend, stubs[backend])
    with pytest.raises(Exception, match=status):
        llm.complete("hello")
    with pytest.raises(Exception, match=status):
        list(llm.stream("hello"))
    s = llm_settings(shipped_kb.settings, stubs, [backend], llm_breaker_failures=100)
    chain = LLMRouter(s).for_task("answer")
    assert chain is not None
    with pytest.raises(LLMUnavailable) as caught:
        chain.reply("hello")
    assert len(caught.value.failures) == 1 and caught.value.failures[0].startswith(f"{NAMES[backend]}: {ERRORS[backend, status]}")
    kb = kb_with(shipped_kb, s)
    ans = kb.ask(QUESTION)
    assert ans.mode == "extractive" and ans.citations and ans.backend is None
    assert ans.llm_error is not None and ans.llm_error.startswith(f"{NAMES[backend]}: {ERRORS[backend, status]}")
    assert ERRORS[backend, status].split(": ", 1)[1] in ans.to_dict()["llm_error"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_empty_reply_is_a_failure_and_the_next_backend_answers(backend, stubs):
    other = next(b for b in BACKENDS if b != backend)
    stubs[backend].behave("empty")
    chain = LLMRouter(llm_settings(Settings(), stubs, [backend, other])).for_task("answer")
    assert chain is not None
    reply = chain.reply("hello")
    assert reply.text == "echo: hello" and reply.backend == NAMES[other]
    assert reply.failures == [f"{NAMES[backend]}: EmptyReply: the reply was empty"]
    streamed = chain.stream_reply("hello")
    assert "".join(streamed) == "echo: hello" and streamed.backend == NAMES[other]
    assert streamed.failures == [f"{NAMES[backend]}: EmptyReply: the streamed reply was empty"]


@pytest.mark.parametrize("order", [["gemini", "openai"], ["openai", "gemini"]], ids=["gemini>openai", "openai>gemini"])
def test_a_slow_backend_times_out_and_the_next_one_answers(order, stubs, shipped_kb):
    first, second = order
    stubs[first].behave("slow", delay_s=3.0)
    stubs[second].behave("ok", cited_answer)
    s = llm_settings(shipped_kb.settings, stubs, order, llm_breaker_failures=100)
    chain = LLMRouter(s).for_task("answer")
    assert chain is not None and chain.name == f"{NAMES[first]} > {NAMES[second]}"
    t = time.perf_counter()
    reply = chain.reply("hello")
    assert time.perf_counter() - t < 2.5  # the 1 s timeout, not the stub's 3 s
    assert reply.backend == NAMES[second] and reply.text == "ok"
    assert reply.failures == [f"{NAMES[first]}: {TIMED_OUT[first]}"]
    streamed = chain.stream_reply("hello")
    assert "".join(streamed) == "ok" and streamed.backend == NAMES[second] and streamed.failures == reply.failures
    # Through the knowledge base: the answer is the second backend's, and says what failed first.
    kb = kb_with(shipped_kb, s)
    ans = kb.ask(QUESTION)
    assert ans.mode == "generative" and ans.backend == NAMES[second] and ans.llm_error == f"{NAMES[first]}: {TIMED_OUT[first]}"
    assert "[1]" in ans.text and ans.citations


def test_when_every_backend_fails_the_answer_is_extractive_and_names_each_failure(stubs, shipped_kb):
    stubs["gemini"].behave("429")
    stubs["openai"].behave("500")
    kb = kb_with(shipped_kb, llm_settings(shipped_kb.settings, stubs, ["gemini", "openai"], llm_breaker_failures=100))
    ans = kb.ask(QUESTION)
    assert ans.mode == "extractive" and not ans.abstained and ans.citations and ans.backend is None
    assert ans.llm_error is not None
    gemini, openai = ans.llm_error.split("; ")
    assert gemini.startswith(f"gemini:gemini-stub: {ERRORS['gemini', '429']}") and "Resource has been exhausted" in gemini
    assert openai.startswith(f"openai:stub-model: {ERRORS['openai', '500']}") and "The server had an error" in openai
    # Streaming: no model deltas, the same extractive answer and the same report.
    deltas: list[str] = []
    streamed = kb.answer(kb.search(QUESTION), on_delta=deltas.append)
    assert deltas == [] and streamed.mode == "extractive" and streamed.text == ans.text and streamed.llm_error == ans.llm_error


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_circuit_breaker_skips_a_failing_backend_then_tries_it_once(backend, stubs):
    other = next(b for b in BACKENDS if b != backend)
    stub = stubs[backend].behave("500")
    stubs[other].behave("ok", "from the other one")
    clock = Clock()
    s = llm_settings(Settings(), stubs, [backend, other], llm_breaker_failures=2, llm_breaker_cooldown_s=30.0)
    chain = LLMRouter(s, clock=clock).for_task("answer")
    assert chain is not None
    guarded = chain.backends[0]
    assert isinstance(guarded, Guarded) and guarded.breaker.state == "closed"
    for _ in range(2):
        assert chain.reply("q").backend == NAMES[other]
    assert len(stub.requests) == 2 and guarded.breaker.state == "open"
    # Open: skipped without a request, and the failure says so.
    for _ in range(5):
        reply = chain.reply("q")
        assert reply.backend == NAMES[other] and "CircuitOpen: skipped: failed 2 times in a row" in reply.failures[0]
    streamed = chain.stream_reply("q")
    assert "".join(streamed) == "from the other one" and "CircuitOpen" in streamed.failures[0]
    assert len(stub.requests) == 2
    # After the cool-down one trial call; it fails, so the circuit opens again for another cool-down.
    clock.now += 30.0
    assert guarded.breaker.state == "half-open"
    chain.reply("q")
    chain.reply("q")
    assert len(stub.requests) == 3 and guarded.breaker.state == "open"
    # The next trial succeeds: the circuit closes and every call reaches the backend again.
    clock.now += 30.0
    stub.behave("ok", "back again")
    assert chain.reply("q").backend == NAMES[backend] and guarded.breaker.state == "closed"
    assert chain.reply("q").text == "back again" and len(stub.requests) == 5


def test_one_breaker_per_endpoint_is_shared_by_every_task(stubs):
    router = LLMRouter(llm_settings(Settings(), stubs, ["openai"]))
    answer, rerank = router.for_task("answer"), router.for_task("rerank")
    assert isinstance(answer, FallbackLLM) and isinstance(rerank, FallbackLLM)
    a, r = answer.backends[0], rerank.backends[0]
    assert isinstance(a, Guarded) and isinstance(r, Guarded) and a.breaker is r.breaker
    assert isinstance(a.breaker, CircuitBreaker)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_hanging_backend_costs_ten_questions_under_5_s(backend, stubs, shipped_kb):
    """A backend that never answers: after the breaker opens (two 1 s timeouts) questions cost no model time."""
    stub = stubs[backend].behave("hang")
    kb = kb_with(shipped_kb, llm_settings(shipped_kb.settings, stubs, [backend], llm_timeout_s=1.0, llm_breaker_failures=2))
    first = kb.ask(QUESTION)
    assert first.mode == "extractive" and first.llm_error == f"{NAMES[backend]}: {TIMED_OUT[backend]}"
    t = time.perf_counter()
    answers = [kb.ask(QUESTION) for _ in range(10)]
    elapsed = time.perf_counter() - t
    assert elapsed < 5.0, f"ten questions took {elapsed:.2f} s"
    assert all(a.mode == "extractive" and a.citations and a.llm_error for a in answers)
    assert "CircuitOpen" in (answers[-1].llm_error or "")
    assert len(stub.requests) == 2  # the breaker opened after two timeouts: the stub saw no more



@pytest.mark.parametrize("backend", BACKENDS)
def test_a_stream_broken_off_mid_reply_gives_the_extractive_answer_and_counts_against_the_breaker(backend, stubs, shipped_kb):
    """Regression: a stream that failed after its first delta was not counted by the breaker, and llm_error named the whole chain."""
    other = next(b for b in BACKENDS if b != backend)
    stubs[backend].behave("broken", cited_answer)
    stubs[other].behave("ok", cited_answer)
    kb = kb_with(shipped_kb, llm_settings(shipped_kb.settings, stubs, [backend, other], llm_breaker_failures=1))
    deltas: list[str] = []
    ans = kb.answer(kb.search(QUESTION), on_delta=deltas.append)
    assert len(deltas) == 1 and ans.text != deltas[0]  # one delta shown, then replaced by the extractive answer
    assert ans.mode == "extractive" and ans.citations and ans.backend is None
    assert ans.llm_error is not None and ans.llm_error.startswith(f"{NAMES[backend]}: ") and ans.llm_error.endswith("(mid-reply)")
    assert stubs[other].requests == []  # part of the reply was shown: no second backend starts over
    guarded = kb.llm.backends[0] if kb.llm else None
    assert isinstance(guarded, Guarded) and guarded.breaker.state == "open"
    deltas.clear()
    again = kb.answer(kb.search(QUESTION), on_delta=deltas.append)
    assert again.mode == "generative" and again.backend == NAMES[other] and len(deltas) >= 3
    assert again.llm_error is not None and again.llm_error.startswith(f"{NAMES[backend]}: CircuitOpen")
    assert len(stubs[backend].requests) == 1


def test_a_backend_whose_stream_call_raises_hands_over_to_the_next():
    """Regression: StreamedReply called stream() outside its try, so a backend raising on the call escaped the fallback."""

    class Refused(FakeLLM):
        def stream(self, prompt: str) -> Iterator[str]:
            raise ConnectionError("connection refused")

    streamed = FallbackLLM([Refused(name="eager:x"), FakeLLM("fine", name="fake:y")]).stream_reply("q")
    assert "".join(streamed) == "fine" and streamed.backend == "fake:y"
    assert streamed.failures == ["eager:x: ConnectionError: connection refused"]


def test_earlier_failures_are_kept_when_the_answering_backend_abstains_or_cites_nothing_supported(stubs, shipped_kb):
    """Regression: llm_error dropped the earlier backends' failures when the one that answered abstained or was unsupported."""
    stubs["gemini"].behave("429")
    stubs["openai"].behave("ok", NOT_ENOUGH)
    kb = kb_with(shipped_kb, llm_settings(shipped_kb.settings, stubs, ["gemini", "openai"], llm_breaker_failures=100))
    ans = kb.ask(QUESTION)
    assert ans.abstained and ans.backend == NAMES["openai"]
    assert ans.llm_error is not None and ans.llm_error.startswith(f"gemini:gemini-stub: {ERRORS['gemini', '429']}")
    stubs["openai"].behave("ok", "Reboot the moon at 03:00 with `moonctl restart` [1].")
    ans = kb.ask(QUESTION)
    assert ans.mode == "extractive" and ans.unsupported == 1 and ans.llm_error is not None
    gemini, openai = ans.llm_error.split("; ")
    assert gemini.startswith(f"gemini:gemini-stub: {ERRORS['gemini', '429']}")
    assert openai == "openai:stub-model: none of its 1 cited sentences is supported by the sources"
