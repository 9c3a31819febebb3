"""The generative answer: a language model writes from the numbered sources and cites them as [n]."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from srekb.retrieval.answer.draft import NOT_ENOUGH, Answerer, Draft
from srekb.retrieval.models.llm import LLM
from srekb.retrieval.types import Hit

log = logging.getLogger(__name__)


class LLMAnswerer:
    """Numbered sources in the prompt; the model's answer cites them as [n]. Any failure (network,
    quota, key, an empty reply) degrades to the ``fallback`` answer, never to an error."""

    mode = "generative"

    def __init__(self, llm: LLM, fallback: Answerer) -> None:
        self.llm = llm
        self._fallback = fallback

    def answer(self, question: str, hits: Sequence[Hit]) -> Draft:
        sources = list(hits[:6])
        numbered = "\n\n".join(f"[{i}] {h.chunk.title}: {h.chunk.section} ({h.chunk.path})\n{h.chunk.text}" for i, h in enumerate(sources, 1))
        prompt = (
            "You are an SRE assistant. Answer the on-call engineer's question using ONLY the numbered sources. "
            "Be short and specific (commands, thresholds, names). After each sentence cite its source as [n]. "
            f"If the sources do not contain the answer, reply exactly: {NOT_ENOUGH}\n\n"
            f"Sources:\n{numbered}\n\nQuestion: {question}\nAnswer:"
        )
        try:
            text = self.llm.complete(prompt).strip()
        except Exception as exc:  # network, quota, key: degrade to the offline answer, never fail
            log.warning("%s answer failed (%s: %s); answering extractively", self.llm.name, type(exc).__name__, exc)
            draft = self._fallback.answer(question, hits)
            draft.mode = "extractive"
            return draft
        if not text:
            return self._fallback.answer(question, hits)
        return Draft(text, sources, self.mode)
