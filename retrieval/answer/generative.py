"""The generative answer: a language model writes from the numbered sources and cites them as
[n]; its markers are then checked against the sources (``draft.verify_markers``)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from srekb.retrieval.answer.draft import NOT_ENOUGH, Answerer, Draft, verify_markers
from srekb.retrieval.models.llm import LLM
from srekb.retrieval.models.routing import LLMUnavailable, StreamedReply, chain, describe
from srekb.retrieval.types import Hit

log = logging.getLogger(__name__)


def prompt_for(question: str, sources: Sequence[Hit]) -> str:
    numbered = "\n\n".join(f"[{i}] {h.chunk.title}: {h.chunk.section} ({h.chunk.path})\n{h.chunk.text}" for i, h in enumerate(sources, 1))
    return (
        "You are an SRE assistant. Answer the on-call engineer's question using ONLY the numbered sources. "
        "Be short and specific: lead with the value asked for (a threshold, a duration, a command), then the steps in order. "
        "Copy commands, thresholds and names exactly as the sources write them; put commands in Markdown code blocks. "
        f"After each sentence cite its source as [n]. If the sources do not contain the answer, reply exactly: {NOT_ENOUGH}\n\n"
        f"Sources:\n{numbered}\n\nQuestion: {question}\nAnswer:"
    )


class LLMAnswerer:
    """Numbered sources in the prompt; the model's answer cites them as [n]. When every backend
    fails (network, quota, key, timeout, an empty reply) or no sentence of the reply is
    supported by the sources, the ``fallback`` (extractive) answer is given, with ``llm_error``
    saying why; never an error."""

    mode = "generative"

    def __init__(self, llm: LLM, fallback: Answerer, max_sources: int = 6) -> None:
        self.llm = chain(llm)
        self._fallback = fallback
        self.max_sources = max_sources

    def answer(self, question: str, hits: Sequence[Hit]) -> Draft:
        return self._write(question, hits, None)

    def stream(self, question: str, hits: Sequence[Hit], on_delta: Callable[[str], None]) -> Draft:
        return self._write(question, hits, on_delta)

    def _write(self, question: str, hits: Sequence[Hit], on_delta: Callable[[str], None] | None) -> Draft:
        sources = list(hits[: self.max_sources])
        prompt = prompt_for(question, sources)
        streamed: StreamedReply | None = None
        try:
            if on_delta is None:
                reply = self.llm.reply(prompt)
                text, backend, failures = reply.text, reply.backend, reply.failures
            else:
                streamed = self.llm.stream_reply(prompt)
                pieces: list[str] = []
                for piece in streamed:
                    pieces.append(piece)
                    on_delta(piece)
                text, backend, failures = "".join(pieces), streamed.backend, streamed.failures
        except Exception as exc:  # every backend failed, or one failed mid-reply: the offline answer, saying why
            if isinstance(exc, LLMUnavailable):
                why = "; ".join(exc.failures)
            elif streamed is not None and streamed.backend:  # name the backend that broke off, and who failed before it
                why = "; ".join([*streamed.failures, f"{streamed.backend}: {describe(exc)} (mid-reply)"])
            else:
                why = f"{self.llm.name}: {describe(exc)}"
            log.warning("no model answered (%s); answering extractively", why)
            return self._offline(question, hits, why)
        text = text.strip()
        before = "; ".join(failures) or None  # what failed before the backend that answered
        if text.startswith(NOT_ENOUGH):
            return Draft(NOT_ENOUGH, [], self.mode, backend=backend, llm_error=before)
        draft = verify_markers(Draft(text, sources, self.mode, backend=backend, llm_error=before))
        if not draft.sources:
            why = (f"{backend}: none of its {draft.checked} cited sentences is supported by the sources" if draft.checked
                   else f"{backend}: the reply cites no source")
            return self._offline(question, hits, "; ".join([*failures, why]), draft.unsupported)
        return draft

    def _offline(self, question: str, hits: Sequence[Hit], why: str, unsupported: int = 0) -> Draft:
        draft = self._fallback.answer(question, hits)
        draft.llm_error, draft.unsupported = why, unsupported
        return draft
