"""``KnowledgeBase``: the one object the CLI, the API, agents and the evaluator drive.

    kb = KnowledgeBase.open(".srekb")          # or KnowledgeBase(get_settings())
    hits = kb.search("etcd has no leader")      # ranked chunks with scores
    answer = kb.ask("etcd has no leader, what do I check?")
    print(answer.text); print(answer.citation_block)
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from srekb.retrieval.answer.answerability import Answerability, AnswerabilityModel, Logistic
from srekb.retrieval.answer.citations import Citation, SRECitationFormatter
from srekb.retrieval.answer.extractive import NOT_ENOUGH, Answerer, ExtractiveAnswerer, GeminiAnswerer, verify_markers
from srekb.retrieval.answer.stats import CorpusStats
from srekb.retrieval.errors import QueryError, SreKbError, StoreError
from srekb.retrieval.fitted import MODEL_FILE, load_model
from srekb.retrieval.models.embedding import Embedder, make_embedder
from srekb.retrieval.models.sparse import default_bm25
from srekb.retrieval.search.intent import EmbeddingIntentClassifier, IntentClassifier, make_classifier
from srekb.retrieval.search.rerank import Reranker, make_reranker, section_value
from srekb.retrieval.search.strategy import DEFAULT_STRATEGIES, Strategy, blend
from srekb.retrieval.settings import Settings, get_settings
from srekb.retrieval.store import HybridQuery, SearchFilters, Store, damaged, open_store
from srekb.retrieval.types import Chunk, Hit, Intent, SourceRecord, SourceType, link_names

log = logging.getLogger(__name__)

MAX_K = 100


@dataclass
class SearchResult:
    question: str
    intent: Intent
    hits: list[Hit]
    timings_ms: dict[str, float] = field(default_factory=dict)


@dataclass
class Answer:
    """An answer with its citations; ``to_dict`` is the CLI/API JSON contract."""

    question: str
    text: str
    intent: Intent
    mode: str  # generative | extractive | abstained
    abstained: bool
    citations: list[Citation]
    citation_block: str
    hits: list[Hit]
    timings_ms: dict[str, float]
    answerability: Answerability | None = None

    @property
    def outcome(self) -> str:
        """answered / caveat (answered, but the sources do not mention part of the question) / abstained."""
        if self.abstained:
            return "abstained"
        return "caveat" if self.answerability is not None and self.answerability.outcome == "caveat" else "answered"

    def to_dict(self) -> dict[str, Any]:
        a = self.answerability
        return {
            "question": self.question,
            "intent": self.intent.value,
            "mode": self.mode,
            "abstained": self.abstained,
            "outcome": self.outcome,
            "answerability": {"score": round(a.score, 4), "abstain_score": round(a.abstain_score, 4), "outcome": a.outcome,
                              "missing": a.reasons} if a else None,
            "answer": self.text,
            "citations": [c.to_dict() for c in self.citations],
            "citation_block": self.citation_block,
            "hits": [hit_to_dict(h) for h in self.hits],
            "timings_ms": {k: round(v, 2) for k, v in self.timings_ms.items()},
        }


def hit_to_dict(hit: Hit) -> dict[str, Any]:
    c = hit.chunk
    return {
        "path": c.path,
        "source_type": c.source_type.value,
        "lines": [c.line_start, c.line_end],
        "score": round(hit.score, 4),
        "title": c.title,
        "section": c.section,
        "incident_id": c.meta.get("incident_id"),
        "date": c.meta.get("date"),
        "text": c.text,
    }


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


# How much a section's fit to the intent counts against the reranker's order of a file's chunks
# when the answer picks what to quote (measured on the shipped questions: cited-lines overlap
# 0.629 -> 0.682 at 2, 0.675 at 3 and 5; the real questions' 0.958 holds up to 3, drops at 5).
EVIDENCE_SECTION_WEIGHT = 2.0


def evidence_order(hits: list[Hit], intent: Intent) -> list[Hit]:
    """The hits in the order the answer quotes them: each file keeps its place, but within a file
    the section that answers the intent (Mitigation for troubleshooting) moves ahead of its
    Symptoms, and link lists (Related, References) move back. Search results and the
    answerability check keep the reranker's order."""
    slots: dict[str, list[int]] = {}
    for i, h in enumerate(hits):
        slots.setdefault(h.chunk.path, []).append(i)
    out = list(hits)
    for positions in slots.values():
        if len(positions) > 1:
            chunks = sorted((hits[i] for i in positions),
                            key=lambda h: h.score + EVIDENCE_SECTION_WEIGHT * section_value(h.chunk.section, intent.value), reverse=True)
            for i, h in zip(positions, chunks, strict=True):
                out[i] = h
    return out


# What a question asks for, and the section of a runbook or postmortem that says it: 'why' -> Root
# cause, 'what fixed it' -> Resolution, 'how do I stop it / what now' -> Mitigation.
SECTION_ASKS: list[tuple[re.Pattern[str], re.Pattern[str]]] = [
    (re.compile(r"\bwhy\b|\broot cause\b|\bwhat caused\b", re.I), re.compile(r"root cause|cause", re.I)),
    (re.compile(r"\bwhat (fixed|resolved|ended|stopped)\b|\bhow was (it|this) (fixed|resolved)\b", re.I), re.compile(r"resolution|fix|mitigation", re.I)),
    (re.compile(r"\bhow (do|can|should|would) (i|we)\b|\bwhat (now|should (i|we) do|do (i|we) do)\b"
                r"|\b(fix|stop|mitigate|resolve|recover|restore|unblock)\b", re.I),
     re.compile(r"mitigation|remediation|resolution|fix|recover|workaround", re.I)),
]


@lru_cache(maxsize=4096)
def nearest_paths(path: str, candidates: tuple[str, ...]) -> list[str]:
    """The candidates in the folder tree closest to ``path`` (most leading folders in common): a
    runbook's rule is the one in its own repository, not a same-named rule in a copy elsewhere."""
    if len(candidates) < 2:
        return list(candidates)
    here = path.split("/")[:-1]

    def shared(p: str) -> int:
        n = 0
        for a, b in zip(here, p.split("/")[:-1], strict=False):
            if a != b:
                break
            n += 1
        return n

    depth = {p: shared(p) for p in candidates}
    best = max(depth.values())
    return [p for p in candidates if depth[p] == best]


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


# Used only when no fitted model is found (a source checkout without retrieval/data/model.json):
# abstain when little of the question's IDF-weighted content is in the evidence.
_COVERAGE = Logistic(["coverage"], [0.5], [0.25], [4.0], 0.0)
FALLBACK_ANSWERABILITY = AnswerabilityModel(_COVERAGE, _COVERAGE, 0.2, 0.4, {"note": "fallback, not fitted"})


class KnowledgeBase:
    """Search and question answering over one store."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        store: Store | None = None,
        embedder: Embedder | None = None,
        classifier: IntentClassifier | None = None,
        reranker: Reranker | None = None,
        answerer: Answerer | None = None,
        strategies: Mapping[Intent, Strategy] | None = None,
        max_chunks_per_file: int = 4,
        query_cache_size: int = 2048,
    ) -> None:
        self.settings = settings or get_settings()
        self.embedder = embedder or make_embedder(self.settings)
        self._owns_store = store is None  # a store passed in belongs to the caller: close() leaves it open
        self.store = store or open_store(self.settings, self.embedder.dim, self.embedder.name, create=False)
        self.model = load_model(self.settings.model_file or MODEL_FILE)
        self.classifier = classifier or make_classifier(self.settings, self.embedder, self.model.intent)
        self.reranker = reranker or make_reranker(self.settings, self.model.rerank_weights)
        self.answerability = self.model.answerability or FALLBACK_ANSWERABILITY
        self.strategies = dict(strategies or DEFAULT_STRATEGIES)
        self.formatter = SRECitationFormatter()
        self.max_chunks_per_file = max_chunks_per_file
        self._answerer = answerer
        self._stats: CorpusStats | None = None
        self._lock = threading.Lock()
        self.bm25 = default_bm25()
        self._query_vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self._query_cache_size = query_cache_size

    @classmethod
    def open(cls, store: str | Path | None = None, settings: Settings | None = None, **kw: Any) -> KnowledgeBase:
        """Open the knowledge base at a store directory (or what the settings name)."""
        settings = settings or get_settings()
        if store is not None:
            settings = settings.model_copy(update={"store": Path(store)})
        return cls(settings, **kw)

    # -- helpers ---------------------------------------------------------------------------
    @property
    def stats(self) -> CorpusStats:
        with self._lock:
            if self._stats is None:
                cache = Path(self.settings.store) if not self.settings.qdrant_url else self.settings.model_cache / "stats" / self.settings.collection
                self._stats = CorpusStats.load_or_build(self.store, cache)
            return self._stats

    def invalidate(self) -> None:
        """Forget cached corpus statistics (call after an ingest)."""
        with self._lock:
            self._stats = None

    @property
    def answerer(self) -> Answerer:
        if self._answerer is None:
            extractive = ExtractiveAnswerer(self.stats)
            if self.settings.google_api_key:
                try:
                    self._answerer = GeminiAnswerer(self.settings.google_api_key, self.settings.gemini_model, self.settings.llm_timeout_s, extractive)
                except Exception as exc:
                    log.warning("Gemini unavailable (%s); answering extractively", exc)
                    self._answerer = extractive
            else:
                self._answerer = extractive
        return self._answerer

    def _validate(self, question: str, k: int | None) -> tuple[str, int]:
        if not isinstance(question, str) or not question.strip():
            raise QueryError("the question is empty: ask something like 'etcd has no leader, what do I check?'")
        q = " ".join(question.split())
        if not any(ch.isalnum() for ch in q):  # only control characters or punctuation: nothing to search for
            raise QueryError("the question has no words in it: ask something like 'etcd has no leader, what do I check?'")
        if len(q) > self.settings.max_question_chars:
            raise QueryError(
                f"the question is {len(q)} characters, over the limit of {self.settings.max_question_chars}: "
                "shorten it (or raise SRE_KB_MAX_QUESTION_CHARS)"
            )
        k = self.settings.similarity_top_k if k is None else k
        if not isinstance(k, int) or not 1 <= k <= MAX_K:
            raise QueryError(f"k must be between 1 and {MAX_K}, got {k!r}")
        return q, k

    def query_vector(self, question: str) -> np.ndarray:
        """The question's dense vector, from a small LRU: on-call questions repeat (retries, the
        web page, bots, follow-ups), and the encoder is most of a search's cost. Read-only."""
        with self._lock:
            vec = self._query_vectors.get(question)
            if vec is not None:
                self._query_vectors.move_to_end(question)
                return vec
        vec = self.embedder.embed_batch([question])[0]
        vec.setflags(write=False)
        if self._query_cache_size <= 0:
            return vec
        with self._lock:
            self._query_vectors[question] = vec
            while len(self._query_vectors) > self._query_cache_size:
                self._query_vectors.popitem(last=False)
        return vec

    # -- public API ------------------------------------------------------------------------
    def search(
        self,
        question: str,
        k: int | None = None,
        filters: SearchFilters | Mapping[str, Any] | None = None,
        *,
        intent: Intent | None = None,
        rerank: bool | None = None,
        route: bool = True,
    ) -> SearchResult:
        """Hybrid search: intent → strategy → one fused engine query → rerank → top k."""
        q, k = self._validate(question, k)
        flt = parse_filters(filters)
        timings: dict[str, float] = {}
        t = time.perf_counter()
        dense = self.query_vector(q)
        sparse = self.bm25.query(q)
        timings["embed"] = (time.perf_counter() - t) * 1000
        t = time.perf_counter()
        strategy = None
        if intent is None and isinstance(self.classifier, EmbeddingIntentClassifier):
            probs = self.classifier.scores(q, dense)
            intent = max(probs, key=lambda i: probs[i])
            if probs[intent] < self.classifier.min_confidence:  # unsure: blend the strategies instead of betting on one
                strategy = blend(self.strategies, probs)
        intent = intent or self.classifier.classify(q, dense)
        if not route:
            strategy = DEFAULT_STRATEGIES[Intent.GENERAL].with_overrides(type_prior={})
        strategy = strategy or self.strategies[intent]
        timings["intent"] = (time.perf_counter() - t) * 1000
        t = time.perf_counter()
        do_rerank = self.settings.reranking_enabled if rerank is None else rerank
        limit = max(k, strategy.candidates) if do_rerank else k
        try:
            if self.settings.hybrid_search:
                hits = self.store.hybrid(
                    HybridQuery(dense, sparse, limit=limit, prefetch=max(strategy.prefetch, limit), dense_weight=strategy.dense_weight,
                                sparse_weight=strategy.sparse_weight, rrf_k=strategy.rrf_k, filters=flt)
                )
            else:
                hits = self.store.dense_search(dense, limit, flt)
        except SreKbError:
            raise
        except Exception as exc:  # the engine could not read its files (a store damaged after it was opened), or the server failed
            if self.settings.qdrant_url:
                raise StoreError(f"the Qdrant server at {self.settings.qdrant_url} failed a search ({str(exc)[:300]}): is it up?") from exc
            raise damaged(self.settings.store, exc) from exc
            for h in hits:
                h.scores = {"fused": h.score, "dense": h.score, "bm25": 0.0}
        timings["retrieve"] = (time.perf_counter() - t) * 1000
        if do_rerank and hits:
            t = time.perf_counter()
            hits = self.reranker.rerank(q, hits, strategy)
            hits = diversify(self._with_companions(dense, hits, flt), self.max_chunks_per_file)
            timings["rerank"] = (time.perf_counter() - t) * 1000
        return SearchResult(q, intent, hits[:k], timings)

    def _with_companions(self, dense: np.ndarray, ranked: list[Hit], flt: SearchFilters | None) -> list[Hit]:
        """An alert rule and its runbook answer one question together. When the first hit (or one in
        the top 3 that the question names) is a rule whose runbook, or a runbook whose rule, the
        engine did not return, fetch that companion from the store (its chunk nearest the
        question) and place it one hit further down: the engine did not find it among its
        candidates (measured: real nDCG@10 0.932 -> 0.941; right below h: 0.935, MRR -0.004).
        The reranker already pulls the companions it was given."""
        present = {key for h in ranked for key in link_names(h.chunk)}
        links = self.stats.links if present else {}
        out = list(ranked)
        for rank, h in enumerate(ranked[:3]):
            if rank > 0 and h.scores.get("f_ident", 0.0) <= 0:
                continue
            for kind, name in sorted(link_names(h.chunk)):
                want = ("runbook" if kind == "rule" else "rule", name)
                if want in present:
                    continue
                paths = nearest_paths(h.chunk.path, tuple(p for p in links.get(f"{want[0]}:{name}", []) if p != h.chunk.path))
                if not paths:
                    continue
                scoped = SearchFilters(**{**vars(flt), "paths": [p for p in paths if not flt.paths or p in flt.paths]}) if flt else SearchFilters(paths=paths)
                if not scoped.paths:
                    continue
                found = next((c for c in self.store.dense_search(dense, 64, scoped) if want in link_names(c.chunk)), None)
                if found is None:
                    continue
                found.scores = {"fused": 0.0, "dense": found.score, "bm25": 0.0, "f_companion": 1.0}
                at = min(out.index(h) + 2, len(out))
                above = out[at - 1].score
                found.score = (above + out[at].score) / 2 if at < len(out) else above - 1e-3
                out.insert(at, found)
                present |= link_names(found.chunk)
        return out

    def ask(self, question: str, k: int | None = None, filters: SearchFilters | Mapping[str, Any] | None = None) -> Answer:
        """Answer with citations, or abstain (listing the nearest sources) when evidence is weak."""
        t0 = time.perf_counter()
        return self.answer(self.search(question, k, filters), t0, filtered=filters is not None)

    def answer(self, result: SearchResult, t0: float | None = None, *, filtered: bool = False) -> Answer:
        """The answer step of :meth:`ask` on an existing search result (lets a caller stream the hits first)."""
        t0 = t0 if t0 is not None else time.perf_counter()
        timings = dict(result.timings_ms)
        hits = result.hits
        t = time.perf_counter()
        check = self.answerability.assess(result.question, hits, self.stats) if hits else None
        timings["answerability"] = (time.perf_counter() - t) * 1000

        def abstain(text: str) -> Answer:
            nearest = self.formatter.cite([h.chunk for h in hits[:3]])
            block = self.formatter.format(nearest).replace("Citations:", "Nearest sources (not cited as evidence):", 1)
            timings["total"] = (time.perf_counter() - t0) * 1000
            return Answer(result.question, text, result.intent, "abstained", True, [], block, hits, timings, check)

        if not hits:
            where = " for these filters." if filtered else ": is anything ingested? Run `srekb ingest PATH`."
            return abstain(f"{NOT_ENOUGH} The knowledge base returned nothing{where}")
        if check is None or not check.answerable():
            why = "; ".join(check.reasons) if check and check.reasons else "the sources found cover too little of the question"
            return abstain(f"{NOT_ENOUGH} ({why}.) Nearest sources are listed below.")
        t = time.perf_counter()
        evidence = evidence_order(self._with_asked_section(result.question, hits), result.intent)
        draft = verify_markers(self.answerer.answer(result.question, evidence))
        timings["answer"] = (time.perf_counter() - t) * 1000
        if not draft.sources or draft.text.strip().startswith(NOT_ENOUGH):
            return abstain(NOT_ENOUGH)
        citations = self.formatter.cite([h.chunk for h in draft.sources])
        text = draft.text
        if check.outcome == "caveat":
            gap = "; ".join(check.reasons) or "the sources may not cover all of the question"
            text = f"Caveat: {gap}; the answer below is the nearest the sources say.\n\n{text}"
        timings["total"] = (time.perf_counter() - t0) * 1000
        return Answer(result.question, text, result.intent, draft.mode, False, citations, self.formatter.format(citations), hits, timings, check)

    def _with_asked_section(self, question: str, hits: list[Hit]) -> list[Hit]:
        """The evidence, plus the section of the first runbook or postmortem in the top 3 that says
        what the question asks (its Mitigation for 'how do I stop it', its Root cause for 'why')
        when that section was not retrieved or ranks too low to be quoted: it goes into the file's
        place, first (measured on the shipped questions: cited lines 0.675 -> 0.755; trying the
        next file when the first has no such section: one must-cite fewer)."""
        wanted = next((section for ask, section in SECTION_ASKS if ask.search(question)), None)
        first = next((h for h in hits[:3] if h.chunk.source_type in (SourceType.RUNBOOK, SourceType.INCIDENT)), None)
        if wanted is None or first is None:
            return hits
        path = first.chunk.path

        def asked(c: Chunk) -> bool:
            return c.path == path and bool(wanted.search(c.section.split(" > ")[-1]))

        if any(asked(h.chunk) for h in hits[:3]):
            return hits
        further = next((h for h in hits if asked(h.chunk)), None)  # retrieved, but too far down to be quoted
        section = further.chunk if further else min((c for c in self.store.chunks(path) if asked(c)), key=lambda c: c.line_start, default=None)
        if section is None:
            return hits
        out = [h for h in hits if h is not further]
        out.insert(out.index(first) + 1, Hit(section, first.score + 1e-6, scores={"asked_section": 1.0}))
        return out

    def source_lines(self, record: SourceRecord) -> tuple[dict[int, str], bool, bool]:
        """A source's lines by 1-based number, whether they came from the file, and whether the
        file changed since it was ingested. From disk while the file inside its ingest root is
        still the version that was indexed (same SHA-256), else rebuilt from its stored chunks,
        so the line numbers always match the citations."""
        root = Path(record.root).resolve()
        changed = False
        try:
            real = (Path(record.root) / record.path).resolve()
            if real.is_file() and (real == root or root in real.parents):
                data = real.read_bytes()
                if hashlib.sha256(data).hexdigest() == record.sha256:
                    return dict(enumerate(data.decode("utf-8-sig").splitlines(), 1)), True, False
                changed = True
        except (OSError, UnicodeDecodeError):
            pass
        by_line: dict[int, str] = {}
        for chunk in self.store.chunks(record.path):
            for i, line in enumerate(chunk.text.splitlines()):
                by_line.setdefault(chunk.line_start + i, line)
        return by_line, False, changed

    def close(self) -> None:
        if self._owns_store:
            self.store.close()

    def __enter__(self) -> KnowledgeBase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
