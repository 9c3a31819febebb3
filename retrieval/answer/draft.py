"""What an answerer returns, and the check that each of its ``[n]`` markers points at a source
that supports its sentence (by term overlap, not by trusting a model)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from srekb.retrieval.text import term_set
from srekb.retrieval.types import Hit

NOT_ENOUGH = "Not enough information in the knowledge base to answer this."
MARKER = re.compile(r"\[(\d+)\]")


@dataclass
class Draft:
    """An answer text with ``[n]`` markers indexing ``sources`` (1-based) and the mode used."""

    text: str
    sources: list[Hit]
    mode: str


class Answerer(Protocol):
    def answer(self, question: str, hits: Sequence[Hit]) -> Draft:
        """Write an answer from the hits."""
        ...


def attach(sentence: str, markers: list[int]) -> str:
    """'Restart the member.' + [1] -> 'Restart the member [1].' (markers before the full stop)."""
    tags = "".join(f" [{n}]" for n in markers)
    if sentence.endswith((".", "!", "?")):
        return sentence[:-1].rstrip() + tags + sentence[-1]
    return sentence + tags


def verify_markers(draft: Draft) -> Draft:
    """Every [n] must point to a source that supports its sentence: keep it if the sentence's
    terms overlap the source enough, move it to the best-supporting source otherwise, drop it if
    none supports it; then renumber the used sources in answer order."""
    source_terms = [term_set(f"{h.chunk.title} {h.chunk.section} {h.chunk.text}") for h in draft.sources]
    sentences = re.split(r"(?<=\])\s+|(?<=[.!?])\s+(?!\[)", draft.text)
    fixed: list[str] = []
    for sent in sentences:
        markers = [int(m) for m in MARKER.findall(sent)]
        if not markers:
            fixed.append(sent)
            continue
        body = re.sub(r"\s+([.!?,;:])", r"\1", MARKER.sub("", sent)).strip()
        terms = term_set(body) - {"the", "a"}
        support = [len(terms & st) / max(1, len(terms)) for st in source_terms]
        keep = [n for n in markers if 1 <= n <= len(draft.sources) and support[n - 1] >= 0.3]
        if not keep and support:
            best = max(range(len(support)), key=lambda i: support[i])
            if support[best] >= 0.3:
                keep = [best + 1]
        fixed.append(attach(body, list(dict.fromkeys(keep))) if keep else body)
    text = " ".join(fixed)
    # renumber in order of first use
    order: list[int] = []
    for m in MARKER.findall(text):
        if int(m) not in order:
            order.append(int(m))
    mapping = {old: new for new, old in enumerate(order, 1)}
    text = MARKER.sub(lambda m: f"[{mapping[int(m.group(1))]}]", text)
    return Draft(text, [draft.sources[i - 1] for i in order], draft.mode)
