"""``KnowledgeBase``: the one object the CLI, the API, agents and the evaluator drive. It wires
the parts (store, encoders, intent classifier, reranker, answerability, answerer, citations)
and hands a question to the search pipeline (``search/pipeline.py``) and the answer step
(``answer/result.py``).

    kb = KnowledgeBase.open(".srekb")          # or KnowledgeBase(get_settings())
    hits = kb.search("etcd has no leader")      # ranked chunks with scores
    answer = kb.ask("etcd has no leader, what do I check?")
    print(answer.text); print(answer.citation_block)
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from srekb.retrieval.answer import result as answer_step
from srekb.retrieval.answer.answerability import FALLBACK_ANSWERABILITY
from srekb.retrieval.answer.citations import SRECitationFormatter
from srekb.retrieval.answer.draft import Answerer
from srekb.retrieval.answer.extractive import ExtractiveAnswerer
from srekb.retrieval.answer.generative import LLMAnswerer
from srekb.retrieval.answer.result import Answer
from srekb.retrieval.fitted import MODEL_FILE, load_model
from srekb.retrieval.models.embedding import Embedder, make_embedder
from srekb.retrieval.models.llm import LLM
from srekb.retrieval.models.routing import FallbackLLM, LLMRouter, chain
from srekb.retrieval.models.sparse import default_bm25
from srekb.retrieval.search import pipeline
from srekb.retrieval.search.intent import IntentClassifier, make_classifier
from srekb.retrieval.search.judge import make_reranker
from srekb.retrieval.search.pipeline import MAX_K, QueryVectors, SearchResult
from srekb.retrieval.search.rerank import Reranker
from srekb.retrieval.search.strategy import DEFAULT_STRATEGIES, Strategy
from srekb.retrieval.settings import Settings, get_settings
from srekb.retrieval.stats import CorpusStats
from srekb.retrieval.store import SearchFilters, Store, open_store
from srekb.retrieval.types import Intent, SourceRecord

__all__ = ["MAX_K", "Answer", "KnowledgeBase", "SearchResult"]

log = logging.getLogger(__name__)


class KnowledgeBase:
    """Search and question answering over one store. Every part can be passed in (a test's
    fake, an agent's own answerer); what is not is built from the settings."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        store: Store | None = None,
        embedder: Embedder | None = None,
        classifier: IntentClassifier | None = None,
        reranker: Reranker | None = None,
        answerer: Answerer | None = None,
        llm: LLM | None = None,
        strategies: Mapping[Intent, Strategy] | None = None,
        max_chunks_per_file: int = 4,
        query_cache_size: int = 2048,
    ) -> None:
        self.settings = settings or get_settings()
        self.embedder = embedder or make_embedder(self.settings)
        self._owns_store = store is None  # a store passed in belongs to the caller: close() leaves it open
        self.store = store or open_store(self.settings, self.embedder.dim, self.embedder.name, create=False)
        self.router = LLMRouter(self.settings)
        self._llm = chain(llm) if llm is not None else None  # one model passed in serves every task
        self.llm = self.llm_for("answer")
        self.model = load_model(self.settings.model_file or MODEL_FILE)
        wants = {"intent": self.settings.intent_classifier != "embedding", "rerank": self.settings.reranker in ("llm", "gemini")}
        self.classifier = classifier or make_classifier(self.settings, self.embedder, self.model.intent,
                                                        self.llm_for("intent") if wants["intent"] else None)
        self.reranker = reranker or make_reranker(self.settings, self.model.rerank_weights, self.llm_for("rerank") if wants["rerank"] else None)
        self.answerability = self.model.answerability or FALLBACK_ANSWERABILITY
        self.strategies = dict(strategies or DEFAULT_STRATEGIES)
        self.formatter = SRECitationFormatter()
        self.max_chunks_per_file = max_chunks_per_file
        self.bm25 = default_bm25()
        self.query_vector = QueryVectors(self.embedder, query_cache_size)
        self._answerer = answerer
        self._stats: CorpusStats | None = None
        self._lock = threading.Lock()

    @classmethod
    def open(cls, store: str | Path | None = None, settings: Settings | None = None, **kw: Any) -> KnowledgeBase:
        """Open the knowledge base at a store directory (or what the settings name)."""
        settings = settings or get_settings()
        if store is not None:
            settings = settings.model_copy(update={"store": Path(store)})
        return cls(settings, **kw)

    @property
    def stats(self) -> CorpusStats:
        """Corpus statistics (term frequencies, rule/runbook links), cached beside the store."""
        with self._lock:
            if self._stats is None:
                cache = Path(self.settings.store) if not self.settings.qdrant_url else self.settings.model_cache / "stats" / self.settings.collection
                self._stats = CorpusStats.load_or_build(self.store, cache)
            return self._stats

    def invalidate(self) -> None:
        """Forget cached corpus statistics (call after an ingest)."""
        with self._lock:
            self._stats = None

    def llm_for(self, task: str) -> FallbackLLM | None:
        """The model chain of a task (answer, rerank, intent, judge, sessions; see
        ``models/routing.py``), or ``None`` when the task runs offline."""
        return self._llm if self._llm is not None else self.router.for_task(task)

    @property
    def answerer(self) -> Answerer:
        """The answerer passed in, else the language model's with the extractive one behind it."""
        if self._answerer is None:
            extractive = ExtractiveAnswerer(self.stats)
            self._answerer = LLMAnswerer(self.llm, extractive) if self.llm is not None else extractive
        return self._answerer

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
        return pipeline.search(self, question, k, filters, intent=intent, rerank=rerank, route=route)

    def ask(self, question: str, k: int | None = None, filters: SearchFilters | Mapping[str, Any] | None = None) -> Answer:
        """Answer with citations, or abstain (listing the nearest sources) when evidence is weak."""
        t0 = time.perf_counter()
        return self.answer(self.search(question, k, filters), t0, filtered=filters is not None)

    def answer(self, result: SearchResult, t0: float | None = None, *, filtered: bool = False,
               on_delta: Callable[[str], None] | None = None) -> Answer:
        """The answer step of :meth:`ask` on an existing search result (lets a caller stream the
        hits first); ``on_delta`` receives the model's text as it is generated."""
        return answer_step.answer(
            result, answerability=self.answerability, stats=lambda: self.stats, answerer=lambda: self.answerer, formatter=self.formatter,
            file_chunks=self.store.chunks, t0=t0 if t0 is not None else time.perf_counter(), filtered=filtered, on_delta=on_delta,
        )

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


