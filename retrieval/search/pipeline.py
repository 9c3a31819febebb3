"""A search, stage by stage: validate -> encode -> intent and strategy -> one fused engine query
-> rerank -> alert/runbook companions -> per-file diversity -> top k. Each stage's time is
collected once, by :class:`Stopwatch`."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Protocol

import numpy as np
from srekb.retrieval.errors import QueryError, SreKbError, StoreError
from srekb.retrieval.models.embedding import Embedder
from srekb.retrieval.models.sparse import Bm25Encoder
from srekb.retrieval.search.intent import EmbeddingIntentClassifier, IntentClassifier
from srekb.retrieval.search.linking import fetch_companions, link_names
from srekb.retrieval.search.rerank import Reranker
from srekb.retrieval.search.strategy import DEFAULT_STRATEGIES, Strategy, blend
from srekb.retrieval.settings import Settings
from srekb.retrieval.stats import CorpusStats
from srekb.retrieval.store import HybridQuery, SearchFilters, Store, damaged
from srekb.retrieval.types import Hit, Intent, Scores, SourceType

MAX_K = 100


@dataclass
class SearchResult:
    question: str
    intent: Intent
    hits: list[Hit]
    timings_ms: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The search in the JSON contract (API, CLI, agents; ``api/schemas.py`` types it)."""
        return {"question": self.question, "intent": self.intent.value, "hits": [h.to_dict() for h in self.hits],
                "timings_ms": {k: round(v, 2) for k, v in self.timings_ms.items()}}


class Stopwatch:
    """Milliseconds per stage: ``with watch.stage("embed"): ...``."""

    def __init__(self) -> None:
        self.ms: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        t = time.perf_counter()
        try:
            yield
        finally:
            self.ms[name] = (time.perf_counter() - t) * 1000


class SearchParts(Protocol):
    """What a search runs through (the knowledge base's live parts: a caller may swap one)."""

    settings: Settings
    store: Store
    classifier: IntentClassifier
    reranker: Reranker
    strategies: dict[Intent, Strategy]
    bm25: Bm25Encoder
    max_chunks_per_file: int

    @property
    def stats(self) -> CorpusStats: ...

    def query_vector(self, question: str) -> np.ndarray: ...


def validate(question: str, k: int | None, settings: Settings) -> tuple[str, int]:
    """The question with its whitespace collapsed, and k; a clear error for what cannot be searched."""
    if not isinstance(question, str) or not question.strip():
        raise QueryError("the question is empty: ask something like 'etcd has no leader, what do I check?'")
    q = " ".join(question.split())
    if not any(ch.isalnum() for ch in q):  # only control characters or punctuation: nothing to search for
        raise QueryError("the question has no words in it: ask something like 'etcd has no leader, what do I check?'")
    if len(q) > settings.max_question_chars:
        raise QueryError(
            f"the question is {len(q)} characters, over the limit of {settings.max_question_chars}: "
            "shorten it (or raise SRE_KB_MAX_QUESTION_CHARS)"
        )
    k = settings.similarity_top_k if k is None else k
    if not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise QueryError(f"k must be between 1 and {MAX_K}, got {k!r}")
    return q, k


def parse_filters(filters: SearchFilters | Mapping[str, Any] | None) -> SearchFilters | None:
    """Filters from a dict (CLI/API/agents) with a clear error for unknown fields or values."""
    if filters is None or isinstance(filters, SearchFilters):
        return filters
    unknown = set(filters) - set(SearchFilters.FIELDS)
    if unknown:
        raise QueryError(f"unknown filter field(s) {sorted(unknown)}: use {', '.join(SearchFilters.FIELDS)}")
    data = dict(filters)
    try:
        types = [SourceType(t) for t in data.pop("source_types", None) or []]
    except ValueError as exc:
        raise QueryError(f"unknown source type in filters ({exc}): use runbook, incident, config, doc") from exc
    for key in ("services", "paths"):
        if isinstance(data.get(key), str):
            data[key] = [data[key]]
    for key in ("date_from", "date_to"):
        value = data.get(key)
        if value is not None:
            try:
                date.fromisoformat(str(value)[:10])
            except ValueError as exc:
                raise QueryError(f"{key} {str(value)[:40]!r} is not a calendar date: use YYYY-MM-DD, e.g. 2024-08-20") from exc
    return SearchFilters(source_types=types, **{k: v for k, v in data.items() if v is not None})


class QueryVectors:
    """Question -> dense vector, a small LRU: on-call questions repeat (retries, the web page,
    bots, follow-ups), and the encoder is most of a search's cost. The vectors are read-only."""

    def __init__(self, embedder: Embedder, size: int = 2048) -> None:
        self.embedder = embedder
        self.size = size
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, question: str) -> np.ndarray:
        with self._lock:
            vec = self._cache.get(question)
            if vec is not None:
                self._cache.move_to_end(question)
                return vec
        vec = self.embedder.embed_batch([question])[0]
        vec.setflags(write=False)
        if self.size <= 0:
            return vec
        with self._lock:
            self._cache[question] = vec
            while len(self._cache) > self.size:
                self._cache.popitem(last=False)
        return vec


def diversify(hits: list[Hit], per_file: int) -> list[Hit]:
    """Keep the order, but move a file's chunks beyond its first ``per_file`` behind the rest, so
    ten results show more than one or two files (the other sections stay reachable below)."""
    seen: dict[str, int] = {}
    head: list[Hit] = []
    tail: list[Hit] = []
    for h in hits:
        n = seen.get(h.chunk.path, 0)
        seen[h.chunk.path] = n + 1
        (head if n < per_file else tail).append(h)
    return head + tail


def choose_strategy(kb: SearchParts, q: str, dense: np.ndarray, intent: Intent | None, route: bool) -> tuple[Intent, Strategy]:
    """The intent (given, or classified) and its strategy; an unsure classifier blends the
    strategies instead of betting on one; ``route=False`` is the naive hybrid (no priors)."""
    strategy = None
    if intent is None and isinstance(kb.classifier, EmbeddingIntentClassifier):
        probs = kb.classifier.scores(q, dense)
        intent = max(probs, key=lambda i: probs[i])
        if probs[intent] < kb.classifier.min_confidence:
            strategy = blend(kb.strategies, probs)
    intent = intent or kb.classifier.classify(q, dense)
    if not route:
        strategy = DEFAULT_STRATEGIES[Intent.GENERAL].with_overrides(type_prior={})
    return intent, strategy or kb.strategies[intent]


def retrieve(kb: SearchParts, dense: np.ndarray, sparse: Any, limit: int, strategy: Strategy, flt: SearchFilters | None) -> list[Hit]:
    """One engine query: dense and BM25 prefetches fused by weighted RRF (or dense only)."""
    try:
        if kb.settings.hybrid_search:
            return kb.store.hybrid(
                HybridQuery(dense, sparse, limit=limit, prefetch=max(strategy.prefetch, limit), dense_weight=strategy.dense_weight,
                            sparse_weight=strategy.sparse_weight, rrf_k=strategy.rrf_k, filters=flt)
            )
        hits = kb.store.dense_search(dense, limit, flt)
        for h in hits:  # the dense score is the only one: the reranker reads it as both
            h.scores = Scores(fused=h.score, dense=h.score)
        return hits
    except SreKbError:
        raise
    except Exception as exc:  # the engine could not read its files (a store damaged after it was opened), or the server failed
        if kb.settings.qdrant_url:
            raise StoreError(f"the Qdrant server at {kb.settings.qdrant_url} failed a search ({str(exc)[:300]}): is it up?") from exc
        raise damaged(kb.settings.store, exc) from exc


def search(kb: SearchParts, question: str, k: int | None = None, filters: SearchFilters | Mapping[str, Any] | None = None, *,
           intent: Intent | None = None, rerank: bool | None = None, route: bool = True) -> SearchResult:
    q, k = validate(question, k, kb.settings)
    flt = parse_filters(filters)
    watch = Stopwatch()
    with watch.stage("embed"):
        dense = kb.query_vector(q)
        sparse = kb.bm25.query(q)
    with watch.stage("intent"):
        intent, strategy = choose_strategy(kb, q, dense, intent, route)
    do_rerank = kb.settings.reranking_enabled if rerank is None else rerank
    with watch.stage("retrieve"):
        hits = retrieve(kb, dense, sparse, max(k, strategy.candidates) if do_rerank else k, strategy, flt)
    if do_rerank and hits:
        with watch.stage("rerank"):
            hits = kb.reranker.rerank(q, hits, strategy)
            links = kb.stats.links if any(link_names(h.chunk) for h in hits) else {}
            hits = fetch_companions(hits, links, dense, kb.store.dense_search, flt)
            hits = diversify(hits, kb.max_chunks_per_file)
    return SearchResult(q, intent, hits[:k], watch.ms)
