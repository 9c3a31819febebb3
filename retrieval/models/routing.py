"""Which model answers which task, and what happens when it fails.

Every task that may use a model (``answer``, ``rerank``, ``intent``, ``judge``, ``sessions``)
gets a :class:`FallbackLLM`: backends tried in order, each behind its endpoint's
:class:`CircuitBreaker`. On a timeout, an error or an empty reply the next backend is tried;
when all fail the caller takes its offline path (the extractive answer, the embedding intent
classifier, the feature reranker, the rule-based rewrite), never an error to the user, and
says why (``Reply.failures`` → ``llm_error``).

A backend that failed ``llm_breaker_failures`` times in a row is skipped for
``llm_breaker_cooldown_s`` seconds (then one trial call decides), so a dead endpoint costs
microseconds per question, not a timeout per task per question.

Backends are named ``gemini`` or ``openai`` with an optional model, ``openai:llama3.1:8b``
(the model is everything after the first colon); ``none`` turns a task's model off.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from srekb.retrieval.errors import ConfigError
from srekb.retrieval.models.llm import LLM, GeminiLLM, OpenAILLM

if TYPE_CHECKING:
    from srekb.retrieval.settings import Settings

log = logging.getLogger(__name__)

TASKS = ("answer", "rerank", "intent", "judge", "sessions")
BACKENDS = ("gemini", "openai")


class LLMUnavailable(RuntimeError):
    """No backend of a chain gave a reply; ``failures`` says what each did."""

    def __init__(self, failures: Sequence[str]) -> None:
        self.failures = list(failures)
        super().__init__("; ".join(self.failures) or "no language model configured")


class CircuitOpen(RuntimeError):
    """The backend failed repeatedly and is skipped until its cool-down ends."""


class EmptyReply(RuntimeError):
    """The backend answered with no text."""


def describe(exc: BaseException, limit: int = 240) -> str:
    """One line for a failure: 'APITimeoutError: Request timed out.'"""
    text = " ".join(str(exc).split()) or "no detail"
    return f"{type(exc).__name__}: {text[:limit]}"


@dataclass
class CircuitBreaker:
    """Opens after ``failures`` consecutive failures; after ``cooldown_s`` one call is let
    through (half-open): success closes it, failure re-opens it for another cool-down."""

    failures: int = 2
    cooldown_s: float = 30.0
    clock: Callable[[], float] = time.monotonic
    _count: int = 0
    _opened_at: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def state(self) -> str:
        with self._lock:
            if self._opened_at is None:
                return "closed"
            return "half-open" if self.clock() - self._opened_at >= self.cooldown_s else "open"

    def allow(self) -> bool:
        with self._lock:
            if self._opened_at is None:
                return True
            now = self.clock()
            if now - self._opened_at < self.cooldown_s:
                return False
            self._opened_at = now  # the trial call: concurrent callers wait for its verdict
            return True

    def record(self, ok: bool) -> None:
        with self._lock:
            if ok:
                self._count, self._opened_at = 0, None
                return
            self._count += 1
            if self._count >= self.failures:
                if self._opened_at is None:
                    log.warning("circuit opened after %d consecutive failures; skipped for %.0f s", self._count, self.cooldown_s)
                self._opened_at = self.clock()


class Guarded:
    """A backend behind a circuit breaker; an empty reply counts as a failure."""

    def __init__(self, llm: LLM, breaker: CircuitBreaker) -> None:
        self.llm, self.breaker = llm, breaker
        self.name = llm.name

    def _admit(self) -> None:
        if not self.breaker.allow():
            raise CircuitOpen(f"skipped: failed {self.breaker.failures} times in a row, retried after {self.breaker.cooldown_s:g} s")

    def complete(self, prompt: str, *, json: bool = False, temperature: float | None = None) -> str:
        self._admit()
        try:
            text = self.llm.complete(prompt, json=json, temperature=temperature)
            if not text.strip():
                raise EmptyReply("the reply was empty")
        except Exception:
            self.breaker.record(False)
            raise
        self.breaker.record(True)
        return text

    def stream(self, prompt: str) -> Iterator[str]:
        self._admit()
        try:
            parts = iter(self.llm.stream(prompt))
            first = next((p for p in parts if p), None)
            if first is None:
                raise EmptyReply("the streamed reply was empty")
        except Exception:
            self.breaker.record(False)
            raise
        self.breaker.record(True)
        yield first
        try:
            yield from parts
        except Exception:  # a reply cut off mid-way is a failure of the endpoint too
            self.breaker.record(False)
            raise


@dataclass
class Reply:
    """A model's reply, which backend gave it, and what failed before it."""

    text: str
    backend: str
    failures: list[str] = field(default_factory=list)


class StreamedReply:
    """Iterate for the text deltas; afterwards ``backend`` names who answered and ``failures``
    what failed before. A backend that fails before its first delta hands over to the next;
    one that fails mid-reply raises (the caller has already shown part of it)."""

    def __init__(self, backends: Sequence[LLM], prompt: str) -> None:
        self._backends, self._prompt = backends, prompt
        self.backend: str | None = None
        self.failures: list[str] = []

    def __iter__(self) -> Iterator[str]:
        for b in self._backends:
            try:  # a backend's stream() may raise on the call itself, not only on the first delta
                parts = iter(b.stream(self._prompt))
                first = next(p for p in parts if p)
            except StopIteration:
                self.failures.append(f"{b.name}: EmptyReply: the streamed reply was empty")
                continue
            except Exception as exc:
                self.failures.append(f"{b.name}: {describe(exc)}")
                continue
            self.backend = b.name
            yield first
            yield from parts
            return
        raise LLMUnavailable(self.failures)


@dataclass
class Probe:
    status: str  # ok | down | open
    latency_ms: float | None
    detail: str


class FallbackLLM:
    """Backends in order: the first one that gives a non-empty reply answers."""

    def __init__(self, backends: Sequence[LLM]) -> None:
        if not backends:
            raise ValueError("a fallback chain needs at least one backend")
        self.backends = list(backends)
        self.name = self.backends[0].name if len(self.backends) == 1 else " > ".join(b.name for b in self.backends)
        self._probe: tuple[float, dict[str, Probe]] | None = None

    def reply(self, prompt: str, *, json: bool = False, temperature: float | None = None) -> Reply:
        failures: list[str] = []
        for b in self.backends:
            try:
                text = b.complete(prompt, json=json, temperature=temperature)
            except Exception as exc:
                failures.append(f"{b.name}: {describe(exc)}")
                continue
            if text.strip():
                if failures:
                    log.warning("answered by %s after: %s", b.name, "; ".join(failures))
                return Reply(text, b.name, failures)
            failures.append(f"{b.name}: EmptyReply: the reply was empty")
        raise LLMUnavailable(failures)

    def complete(self, prompt: str, *, json: bool = False, temperature: float | None = None) -> str:
        return self.reply(prompt, json=json, temperature=temperature).text

    def stream_reply(self, prompt: str) -> StreamedReply:
        return StreamedReply(self.backends, prompt)

    def stream(self, prompt: str) -> Iterator[str]:
        yield from self.stream_reply(prompt)

    def probe(self, ttl_s: float = 60.0) -> dict[str, Probe]:
        """Each backend: a one-word completion, timed; cached ``ttl_s`` so a health check every
        few seconds costs one model call a minute. A backend whose circuit is open is not called."""
        now = time.monotonic()
        if self._probe and now - self._probe[0] < ttl_s:
            return self._probe[1]
        out: dict[str, Probe] = {}
        for b in self.backends:
            if isinstance(b, Guarded) and b.breaker.state == "open":
                out[b.name] = Probe("open", None, f"skipped after {b.breaker.failures} consecutive failures (circuit open)")
                continue
            t = time.perf_counter()
            try:
                b.complete("Reply with the single word: ok")
                out[b.name] = Probe("ok", round((time.perf_counter() - t) * 1000, 2), "answered")
            except Exception as exc:
                out[b.name] = Probe("down", round((time.perf_counter() - t) * 1000, 2), describe(exc))
        self._probe = (now, out)
        return out


def chain(llm: LLM) -> FallbackLLM:
    """Any model as a chain (a custom or fake backend passed to ``KnowledgeBase(llm=...)``)."""
    return llm if isinstance(llm, FallbackLLM) else FallbackLLM([llm])


class LLMRouter:
    """The configured backends and one chain per task (built on first use, sharing breakers per endpoint)."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self._clock = clock
        self._breakers: dict[str, CircuitBreaker] = {}
        self._backends: dict[str, Guarded] = {}
        self._chains: dict[str, FallbackLLM | None] = {}
        self._lock = threading.Lock()

    def configured(self) -> list[str]:
        """Backends with what they need: Gemini a key, OpenAI-compatible a base URL or a model."""
        s = self.settings
        have = {"gemini": bool(s.google_api_key), "openai": bool(s.openai_base_url or s.openai_model)}
        return [b for b in BACKENDS if have[b]]

    def specs(self, task: str) -> list[str]:
        """The backends a task tries, in order (empty: the task runs offline)."""
        own = list(getattr(self.settings, f"llm_{task}"))
        specs = own or list(self.settings.llm_order) or self.configured()
        if [s.lower() for s in specs] == ["none"]:
            return []
        if not own:  # the default order names backends that may not be configured: keep those that are
            specs = [s for s in specs if s.split(":", 1)[0] in self.configured()]
        return specs

    def for_task(self, task: str) -> FallbackLLM | None:
        """The chain for ``task`` (one of TASKS), or ``None`` when no model is configured for it."""
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}: one of {', '.join(TASKS)}")
        with self._lock:
            if task not in self._chains:
                backends = [self._backend(spec, task) for spec in self.specs(task)]
                self._chains[task] = FallbackLLM(backends) if backends else None
            return self._chains[task]

    def _backend(self, spec: str, task: str) -> Guarded:
        kind, _, model = spec.strip().partition(":")
        kind = kind.lower()
        s = self.settings
        if kind not in BACKENDS:
            raise ConfigError(f"SRE_KB_LLM_{task.upper()}: unknown backend {kind!r} in {spec!r}: use gemini[:model], openai[:model] or none")
        if kind not in self.configured():
            need = "GOOGLE_API_KEY" if kind == "gemini" else "SRE_KB_OPENAI_BASE_URL (and SRE_KB_OPENAI_MODEL)"
            raise ConfigError(f"SRE_KB_LLM_{task.upper()} names {kind}, which is not configured: set {need}")
        if kind == "gemini":
            model = model or s.gemini_model
            endpoint = f"gemini|{s.gemini_base_url or ''}"
        else:
            model = model or s.openai_model or ""
            if not model:
                raise ConfigError("an OpenAI-compatible backend needs a model: set SRE_KB_OPENAI_MODEL (e.g. llama3.1:8b)")
            endpoint = f"openai|{s.openai_base_url or ''}"
        key = f"{kind}:{model}"
        if key not in self._backends:
            llm: LLM = (GeminiLLM(s.google_api_key or "", model, s.llm_timeout_s, s.gemini_base_url) if kind == "gemini"
                        else OpenAILLM(model, s.openai_base_url, s.openai_api_key, s.llm_timeout_s))
            # One breaker per endpoint: a dead server is dead for every model and task on it.
            breaker = self._breakers.setdefault(
                endpoint, CircuitBreaker(s.llm_breaker_failures, s.llm_breaker_cooldown_s, self._clock))
            self._backends[key] = Guarded(llm, breaker)
        return self._backends[key]
