"""The answer step: decide (answer, answer with a caveat, abstain), let the answerer write from
the evidence in quoting order, check its markers, and cite. :class:`Answer` is the result."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from srekb.retrieval.answer.answerability import Answerability, AnswerabilityModel
from srekb.retrieval.answer.citations import Citation, SRECitationFormatter
from srekb.retrieval.answer.draft import NOT_ENOUGH, Answerer, Part, StreamingAnswerer, verify_markers
from srekb.retrieval.search.pipeline import SearchResult
from srekb.retrieval.search.sections import evidence_order, with_asked_section
from srekb.retrieval.stats import CorpusStats
from srekb.retrieval.types import Chunk, Hit, Intent


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
    parts: list[Part] = field(default_factory=list)
    backend: str | None = None  # the model that wrote it ("openai:llama3.1:8b"); None: quoted offline
    llm_error: str | None = None  # why a configured model did not write it
    unsupported: int = 0  # generated sentences removed because no source supports them
    checked: int = 0  # generated sentences checked against their cited source

    @property
    def outcome(self) -> str:
        """answered / caveat (answered, but the sources do not mention part of the question) / abstained."""
        if self.abstained:
            return "abstained"
        return "caveat" if self.answerability is not None and self.answerability.outcome == "caveat" else "answered"

    def to_dict(self) -> dict[str, Any]:
        """The answer in the JSON contract (API, CLI, agents; ``api/schemas.py`` types it)."""
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
            "parts": [p.to_dict() for p in self.parts],
            "backend": self.backend,
            "llm_error": self.llm_error,
            "unsupported": self.unsupported,
            "citations": [c.to_dict() for c in self.citations],
            "citation_block": self.citation_block,
            "hits": [h.to_dict() for h in self.hits],
            "timings_ms": {k: round(v, 2) for k, v in self.timings_ms.items()},
        }


def answer(result: SearchResult, *, answerability: AnswerabilityModel, stats: Callable[[], CorpusStats], answerer: Callable[[], Answerer],
           formatter: SRECitationFormatter, file_chunks: Callable[[str], Iterable[Chunk]], t0: float, filtered: bool = False,
           on_delta: Callable[[str], None] | None = None) -> Answer:
    """Answer ``result`` with citations, or abstain (listing the nearest sources) when the
    evidence is weak. ``stats`` and ``answerer`` are called only when needed. ``on_delta``
    receives the text as a streaming answerer writes it (the returned answer is the checked one)."""
    timings = dict(result.timings_ms)
    hits = result.hits
    t = time.perf_counter()
    check = answerability.assess(result.question, hits, stats()) if hits else None
    timings["answerability"] = (time.perf_counter() - t) * 1000

    def abstain(text: str) -> Answer:
        nearest = formatter.cite([h.chunk for h in hits[:3]])
        block = formatter.format(nearest).replace("Citations:", "Nearest sources (not cited as evidence):", 1)
        timings["total"] = (time.perf_counter() - t0) * 1000
        return Answer(result.question, text, result.intent, "abstained", True, [], block, hits, timings, check)

    if not hits:
        where = " for these filters." if filtered else ": is anything ingested? Run `srekb ingest PATH`."
        return abstain(f"{NOT_ENOUGH} The knowledge base returned nothing{where}")
    if check is None or not check.answerable():
        why = "; ".join(check.reasons) if check and check.reasons else "the sources found cover too little of the question"
        return abstain(f"{NOT_ENOUGH} ({why}.) Nearest sources are listed below.")
    t = time.perf_counter()
    evidence = evidence_order(with_asked_section(result.question, hits, file_chunks), result.intent)
    writer = answerer()
    if on_delta is not None and isinstance(writer, StreamingAnswerer):
        draft = writer.stream(result.question, evidence, on_delta)
    else:
        draft = writer.answer(result.question, evidence)
    if not draft.verified:
        draft = verify_markers(draft)
    timings["answer"] = (time.perf_counter() - t) * 1000
    if not draft.sources or draft.text.strip().startswith(NOT_ENOUGH):
        gone = abstain(NOT_ENOUGH)
        gone.backend, gone.llm_error, gone.unsupported, gone.checked = draft.backend, draft.llm_error, draft.unsupported, draft.checked
        return gone
    citations = formatter.cite([h.chunk for h in draft.sources])
    text = draft.text
    if check.outcome == "caveat":
        gap = "; ".join(check.reasons) or "the sources may not cover all of the question"
        text = f"Caveat: {gap}; the answer below is the nearest the sources say.\n\n{text}"
    timings["total"] = (time.perf_counter() - t0) * 1000
    return Answer(result.question, text, result.intent, draft.mode, False, citations, formatter.format(citations), hits, timings, check,
                  draft.parts, draft.backend, draft.llm_error, draft.unsupported, draft.checked)
