"""ragas adapter: the answer and context metrics of ragas 0.4 on sre-kb's answers.

Always computed, offline (no LLM, no network):

- ``context_precision`` / ``context_recall``: ragas ``NonLLMContextPrecisionWithReference`` and
  ``NonLLMContextRecall`` (Levenshtein similarity >= 0.5 between contexts). Reference contexts:
  the text of the must_cite file's labelled lines (``must_cite_lines``) when the question has
  them, else the must_cite file's chunks. Retrieved contexts: the texts of the chunks the answer
  cites, or, when it cites nothing (an abstention), the top hits.
- ``string_similarity`` / ``rouge_l``: ragas ``NonLLMStringSimilarity`` (1 - normalised
  Levenshtein distance) and ``RougeScore`` (ROUGE-L F1) of the answer (``[n]`` markers removed)
  against ``reference_answer``.

An abstention on an answerable question is recorded as ``"abstained"``: it is left out of the
answer-similarity means and counted apart (``abstained``), never scored as NaN. Unanswerable
questions have no reference answer and are counted apart too. Any NaN ragas returns is stored as
``None`` and counted under ``unscored``.

With a language model configured (``GOOGLE_API_KEY``), :func:`score_with_judge` adds ragas ``Faithfulness`` and
``AnswerRelevancy`` (legacy metrics) with it as the judge and the service's own encoder for
the relevancy embeddings. Without a key it reports ``{"status": "skipped", ...}``.

Metrics are imported from ``ragas.metrics`` (the legacy paths; ``ragas.metrics.collections``
needs an LLM client even for these) with ragas' warnings silenced; telemetry is off
(``RAGAS_DO_NOT_TRACK``).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import os
import re
import warnings
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from srekb.eval.dataset import Question
from srekb.eval.metrics import mean
from srekb.retrieval.models.llm import LLM

log = logging.getLogger(__name__)

os.environ.setdefault("RAGAS_DO_NOT_TRACK", "true")

OFFLINE_KEYS = ["context_precision", "context_recall", "string_similarity", "rouge_l"]
JUDGE_KEYS = ["faithfulness", "answer_relevancy"]
TOP_HITS_WHEN_UNCITED = 3
MARKER = re.compile(r"\s*\[\d+\]")


@contextmanager
def _quiet() -> Iterator[None]:
    """ragas and langchain warn on import and on every legacy metric; keep the report clean."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def strip_markers(text: str) -> str:
    """'Restart it [1].' -> 'Restart it.': the markers are not part of the answer's wording."""
    return MARKER.sub("", text).strip()


@dataclass
class RagasSample:
    """One question as ragas sees it."""

    qid: str
    question: str
    answerable: bool
    abstained: bool
    answer: str
    reference_answer: str
    retrieved_contexts: list[str]
    reference_contexts: list[str]
    contexts_from: str = "citations"  # citations | hits | none
    reference_from: str = "lines"  # lines | chunks | none


class ReferenceContexts:
    """The reference contexts of a question, from the store (and the ingested files).

    The labelled lines are read from the file the store was built from (``root/path`` of its
    source record) when that file is still there and unchanged (same sha256); otherwise the
    chunks of the must_cite file overlapping the labelled lines stand in for them; a question
    without labelled lines gets all the must_cite file's chunks.
    """

    def __init__(self, chunks_of: Callable[[str], list[Any]], records: dict[str, Any] | None = None) -> None:
        self._chunks_of = chunks_of
        self._records = records or {}
        self._files: dict[str, list[str] | None] = {}

    @classmethod
    def from_store(cls, store: Any) -> ReferenceContexts:
        return cls(lambda path: list(store.chunks(path)), store.sources())

    def _file_lines(self, path: str) -> list[str] | None:
        if path not in self._files:
            lines = None
            rec = self._records.get(path)
            root: str | None = getattr(rec, "root", None) if rec is not None else None
            if rec is not None and root:
                full = Path(root) / path
                try:
                    data = full.read_bytes()
                    if hashlib.sha256(data).hexdigest() == rec.sha256:
                        lines = data.decode("utf-8-sig").replace("\r\n", "\n").replace("\r", "\n").split("\n")
                except (OSError, UnicodeDecodeError):
                    lines = None
            self._files[path] = lines
        return self._files[path]

    def __call__(self, q: Question) -> tuple[list[str], str]:
        """(contexts, where they came from: lines | chunks | none)."""
        if not q.answerable or not q.must_cite:
            return [], "none"
        if q.must_cite_lines and len(q.must_cite_lines) == 2:
            a, b = int(q.must_cite_lines[0]), int(q.must_cite_lines[1])
            lines = self._file_lines(q.must_cite)
            if lines is not None:
                text = "\n".join(lines[max(0, a - 1) : b]).strip()
                if text:
                    return [text], "lines"
            overlapping = [c.text for c in self._chunks_of(q.must_cite) if c.line_start <= b and a <= c.line_end]
            if overlapping:
                return overlapping, "lines"
        texts = [c.text for c in self._chunks_of(q.must_cite)]
        return (texts, "chunks") if texts else ([], "none")


def sample_of(q: Question, answer: Any, references: Callable[[Question], tuple[list[str], str]]) -> RagasSample:
    """A :class:`RagasSample` from a question and the ``Answer`` ``kb.ask`` gave."""
    if answer.citations:
        contexts, origin = [c.text for c in answer.citations], "citations"
    elif answer.hits:
        contexts, origin = [h.chunk.text for h in answer.hits[:TOP_HITS_WHEN_UNCITED]], "hits"
    else:
        contexts, origin = [], "none"
    refs, ref_origin = references(q)
    return RagasSample(
        q.id, q.question, q.answerable, bool(answer.abstained), "" if answer.abstained else answer.text, q.reference_answer,
        contexts, refs, origin, ref_origin,
    )


def _clean(value: Any) -> float | None:
    """A ragas score as a plain float, or None for NaN / None (never NaN in a report)."""
    if value is None:
        return None
    v = float(value)
    return None if math.isnan(v) or math.isinf(v) else v


def _run(coro_factory: Callable[[], Awaitable[Any]]) -> Any:
    """Run a coroutine from sync code, also when called inside a running event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro_factory())  # type: ignore[arg-type]
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(coro_factory())).result()  # type: ignore[arg-type]


def score_offline(samples: Sequence[RagasSample]) -> dict[str, Any]:
    """The offline ragas metrics: ``{"metrics": {...means and counts}, "rows": [per question]}``."""
    with _quiet():
        from ragas import SingleTurnSample
        from ragas.metrics import NonLLMContextPrecisionWithReference, NonLLMContextRecall, NonLLMStringSimilarity, RougeScore

        precision, recall = NonLLMContextPrecisionWithReference(), NonLLMContextRecall()
        similarity, rouge = NonLLMStringSimilarity(), RougeScore()

    async def one(s: RagasSample) -> dict[str, Any]:
        row: dict[str, Any] = {"id": s.qid, "status": "", "contexts_from": s.contexts_from, "reference_from": s.reference_from}
        row |= dict.fromkeys(OFFLINE_KEYS)
        if s.answerable and s.reference_contexts:
            if not s.retrieved_contexts:  # nothing retrieved: nothing relevant retrieved
                row["context_precision"] = row["context_recall"] = 0.0
            else:
                ctx = SingleTurnSample(retrieved_contexts=list(s.retrieved_contexts), reference_contexts=list(s.reference_contexts))
                row["context_precision"] = _clean(await precision.single_turn_ascore(ctx))
                row["context_recall"] = _clean(await recall.single_turn_ascore(ctx))
        if not s.answerable:
            row["status"] = "unanswerable"
        elif s.abstained:
            row["status"] = "abstained"
        elif not s.reference_answer.strip():
            row["status"] = "no reference answer"
        else:
            pair = SingleTurnSample(response=strip_markers(s.answer), reference=s.reference_answer)
            row["string_similarity"] = _clean(await similarity.single_turn_ascore(pair))
            row["rouge_l"] = _clean(await rouge.single_turn_ascore(pair))
            row["status"] = "answered"
        return row

    async def every() -> list[dict[str, Any]]:
        return [await one(s) for s in samples]

    with _quiet():
        rows: list[dict[str, Any]] = _run(every)
    ctx_rows = [r for r in rows if r["context_precision"] is not None and r["context_recall"] is not None]
    ans_rows = [r for r in rows if r["string_similarity"] is not None and r["rouge_l"] is not None]
    metrics: dict[str, Any] = {
        "context_precision": mean([r["context_precision"] for r in ctx_rows]),
        "context_recall": mean([r["context_recall"] for r in ctx_rows]),
        "string_similarity": mean([r["string_similarity"] for r in ans_rows]),
        "rouge_l": mean([r["rouge_l"] for r in ans_rows]),
        "n_context": len(ctx_rows),
        "n_answer": len(ans_rows),
        "abstained": sum(1 for r in rows if r["status"] == "abstained"),
        "unanswerable": sum(1 for r in rows if r["status"] == "unanswerable"),
        "no_reference_answer": sum(1 for r in rows if r["status"] == "no reference answer"),
        "no_reference_contexts": sum(1 for s in samples if s.answerable and not s.reference_contexts),
        "unscored": sum(1 for r in rows if r["status"] == "answered" and (r["string_similarity"] is None or r["rouge_l"] is None))
        + sum(1 for s, r in zip(samples, rows, strict=True)
              if s.answerable and s.reference_contexts and (r["context_precision"] is None or r["context_recall"] is None)),
    }
    return {"metrics": metrics, "rows": rows}


# ---------------------------------------------------------------------------- LLM judge ---


def _judge_classes() -> tuple[type, type]:
    """The ragas LLM / embeddings adapters, built on first use (ragas imports are slow)."""
    with _quiet():
        from langchain_core.outputs import Generation, LLMResult
        from ragas.embeddings.base import BaseRagasEmbeddings
        from ragas.llms.base import BaseRagasLLM
        from ragas.run_config import RunConfig

    class JudgeLLM(BaseRagasLLM):  # type: ignore[misc,valid-type]
        """ragas' legacy LLM interface over the service's language-model seam."""

        def __init__(self, llm: LLM) -> None:
            super().__init__(run_config=RunConfig(timeout=120, max_retries=1, max_wait=2))
            self.llm = llm

        def generate_text(self, prompt: Any, n: int = 1, temperature: float = 0.01, stop: Any = None, callbacks: Any = None) -> Any:
            texts = [self.llm.complete(prompt.to_string(), temperature=temperature) for _ in range(n)]
            return LLMResult(generations=[[Generation(text=t) for t in texts]])

        async def agenerate_text(self, prompt: Any, n: int = 1, temperature: float | None = 0.01, stop: Any = None, callbacks: Any = None) -> Any:
            t = 0.01 if temperature is None else temperature
            texts = [await asyncio.to_thread(self.llm.complete, prompt.to_string(), temperature=t) for _ in range(n)]
            return LLMResult(generations=[[Generation(text=t) for t in texts]])

        def is_finished(self, response: Any) -> bool:
            return True

    class EncoderEmbeddings(BaseRagasEmbeddings):  # type: ignore[misc,valid-type]
        """The service's own sentence encoder (offline) for AnswerRelevancy's question similarity."""

        def __init__(self, embedder: Any) -> None:
            super().__init__()
            self.embedder = embedder
            self.run_config = RunConfig(max_retries=1)

        def embed_query(self, text: str) -> list[float]:
            return [float(x) for x in self.embedder.embed_batch([text])[0]]

        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return [[float(x) for x in v] for v in self.embedder.embed_batch(list(texts))] if texts else []

        async def aembed_query(self, text: str) -> list[float]:
            return self.embed_query(text)

        async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
            return self.embed_documents(texts)

    return JudgeLLM, EncoderEmbeddings


def score_with_judge(
    samples: Sequence[RagasSample],
    llm: LLM | None,
    embedder: Any,
    *,
    limit: int = 40,
    timeout_s: float = 60.0,
) -> dict[str, Any]:
    """Faithfulness and answer relevancy with ``llm`` as the judge, on up to ``limit`` answered
    questions. Without a model (no key): ``{"status": "skipped", "reason": ...}``. A failure of the judge
    (network, quota) ends the run with ``{"status": "error", ...}`` and what was scored so far;
    it never fails the evaluation."""
    if llm is None:
        return {"status": "skipped", "reason": "no model for the judge task (set GOOGLE_API_KEY or SRE_KB_OPENAI_BASE_URL): LLM-judged metrics not computed"}
    judged = [s for s in samples if s.answerable and not s.abstained and s.answer.strip() and s.retrieved_contexts][: max(0, limit)]
    out: dict[str, Any] = {"status": "ok", "judge": llm.name, "rows": [], "abstained": sum(1 for s in samples if s.answerable and s.abstained)}
    try:
        llm_cls, emb_cls = _judge_classes()
        with _quiet():
            from ragas import SingleTurnSample
            from ragas.metrics import AnswerRelevancy, Faithfulness

            judge = llm_cls(llm)
            faithfulness = Faithfulness(llm=judge)
            relevancy = AnswerRelevancy(llm=judge, embeddings=emb_cls(embedder))
    except Exception as exc:  # a missing package
        return {"status": "error", "reason": f"{type(exc).__name__}: {exc}", "judge": llm.name}

    async def every() -> str | None:
        for s in judged:
            sample = SingleTurnSample(user_input=s.question, response=strip_markers(s.answer), retrieved_contexts=list(s.retrieved_contexts))
            try:
                f = _clean(await faithfulness.single_turn_ascore(sample, timeout=timeout_s))
                r = _clean(await relevancy.single_turn_ascore(sample, timeout=timeout_s))
            except Exception as exc:  # the judge is unreachable: stop, keep what was scored
                return f"{type(exc).__name__}: {exc}"
            out["rows"].append({"id": s.qid, "faithfulness": f, "answer_relevancy": r})
        return None

    with _quiet():
        error = _run(every)
    if error:
        out["status"] = "error" if not out["rows"] else "partial"
        out["reason"] = error
    for key in JUDGE_KEYS:
        vals = [r[key] for r in out["rows"] if r[key] is not None]
        out[key] = mean(vals) if vals else None
    out["n"] = len(out["rows"])
    out["unscored"] = sum(1 for r in out["rows"] if r["faithfulness"] is None or r["answer_relevancy"] is None)
    return out


def samples_to_dicts(samples: Sequence[RagasSample]) -> list[dict[str, Any]]:
    return [asdict(s) for s in samples]
