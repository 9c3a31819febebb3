"""What an answerer returns (:class:`Draft`, made of :class:`Part` s), the protocols a custom
answerer implements, and the check that each ``[n]`` marker of a generated answer points at a
source that supports its sentence (by the source's own words and values, not by trusting a model).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from srekb.retrieval.text import identifiers, mentions, term_set
from srekb.retrieval.types import Hit

NOT_ENOUGH = "Not enough information in the knowledge base to answer this."
MARKER = re.compile(r"\[(\d+)\]")
NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,:]\d+)*(?![\w])|(?<![\w.])\d+(?=[a-zA-Z%])")
PartKind = Literal["value", "sentence", "steps", "code", "generated"]


@dataclass
class Part:
    """One piece of an answer: ``source`` is its 1-based index into the draft's sources (None:
    the piece cites nothing), ``kind`` how it reads (a value quoted first, a sentence, numbered
    steps or a list with its lead-in, a verbatim code block, or a model's text)."""

    kind: PartKind
    text: str
    source: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "text": self.text, "source": self.source}


@dataclass
class Draft:
    """An answer text (Markdown) with ``[n]`` markers indexing ``sources`` (1-based), the mode
    (generative / extractive), which model wrote it (``backend``), why a configured model did
    not (``llm_error``), its ``parts``, and how many generated sentences were removed because
    no source supports them (``unsupported``)."""

    text: str
    sources: list[Hit]
    mode: str
    parts: list[Part] = field(default_factory=list)
    backend: str | None = None
    llm_error: str | None = None
    unsupported: int = 0
    checked: int = 0  # generated sentences with a marker, each checked against its source
    verified: bool = False  # its markers were checked (quoted text is verified by construction)


class Answerer(Protocol):
    """Anything that writes a :class:`Draft` from the ranked evidence (``KnowledgeBase(answerer=...)``)."""

    def answer(self, question: str, hits: Sequence[Hit]) -> Draft:
        """Write an answer from the hits."""
        ...


@runtime_checkable
class StreamingAnswerer(Protocol):
    """An answerer that can also hand out its text as it is written (SSE ``delta`` events)."""

    def answer(self, question: str, hits: Sequence[Hit]) -> Draft: ...

    def stream(self, question: str, hits: Sequence[Hit], on_delta: Callable[[str], None]) -> Draft:
        """Call ``on_delta`` with each piece of text as it arrives; return the finished draft."""
        ...


def attach(sentence: str, markers: list[int]) -> str:
    """'Restart the member.' + [1] -> 'Restart the member [1].'; 'run:' -> 'run [1]:' (markers
    before the closing punctuation)."""
    tags = "".join(f" [{n}]" for n in markers)
    if sentence.endswith((".", "!", "?", ":")):
        return sentence[:-1].rstrip() + tags + sentence[-1]
    return sentence + tags


def specifics(sentence: str) -> list[str]:
    """What a claim commits to: its numbers, quoted commands and names (``0.05``, ``etcdctl
    endpoint status``, ``PatroniNoLeader``). A source that supports the sentence writes them."""
    found = dict.fromkeys(identifiers(sentence))
    found.update(dict.fromkeys(NUMBER.findall(sentence)))
    return [s for s in found if len(s) > 1 or s.isdigit()]


def _supports(sentence: str, terms: frozenset[str], source_text: str, source_terms: frozenset[str]) -> bool:
    if len(terms & source_terms) < 0.3 * max(1, len(terms)):
        return False
    return all(mentions(s, source_text) for s in specifics(sentence))


LINE_HEAD = re.compile(r"^\s*(?:(?:[-*+]|\d{1,3}[.)])\s+|>\s*)?")
SENTENCE = re.compile(r"(?<=\])\s+|(?<=[.!?])\s+(?!\[)")


def verify_markers(draft: Draft) -> Draft:
    """Every [n] of a generated answer must point to a source that supports its sentence: its
    terms overlap the source and every number, command and name it states is written there.
    A marker is kept when its source supports the sentence and moved to one that does
    otherwise; a marked sentence no source supports is removed and counted (``unsupported``).
    Sentences without markers are kept as written; code blocks are left alone. The used
    sources are renumbered in answer order."""
    texts = [" ".join(f"{h.chunk.title} {h.chunk.section} {h.chunk.text}".split()).lower() for h in draft.sources]
    source_terms = [term_set(t) for t in texts]
    lines: list[str] = []
    unsupported = checked = 0
    in_code = False
    for line in draft.text.split("\n"):
        if line.strip().startswith(("```", "~~~")):
            in_code = not in_code
        if in_code or line.strip().startswith(("```", "~~~")):
            lines.append(line)
            continue
        head = LINE_HEAD.match(line)
        prefix = head.group(0) if head else ""  # indentation and a list marker ('  2. ') stay as written
        kept: list[str] = []
        for sent in SENTENCE.split(line[len(prefix):].strip()):
            markers = [int(m) for m in MARKER.findall(sent)]
            if not markers:
                kept.append(sent)
                continue
            checked += 1
            body = re.sub(r"\s+([.!?,;:])", r"\1", MARKER.sub("", sent)).strip()
            flat = " ".join(body.split()).lower()
            terms = term_set(body) - {"the", "a"}
            ok = [i for i in range(len(texts)) if _supports(flat, terms, texts[i], source_terms[i])]
            keep = [n for n in markers if n - 1 in ok] or [i + 1 for i in ok[:1]]
            if keep:
                kept.append(attach(body, list(dict.fromkeys(keep))))
            else:
                unsupported += 1
        if kept or not line.strip():
            lines.append(prefix + " ".join(kept))
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    order: list[int] = []
    for m in MARKER.findall(text):
        if int(m) not in order and 1 <= int(m) <= len(draft.sources):
            order.append(int(m))
    mapping = {old: new for new, old in enumerate(order, 1)}
    text = MARKER.sub(lambda m: f"[{mapping[int(m.group(1))]}]" if int(m.group(1)) in mapping else "", text)
    parts = [Part("generated", text, mapping.get(int(m.group(1))) if (m := MARKER.search(text)) else None)] if text else []
    return Draft(text, [draft.sources[i - 1] for i in order], draft.mode, parts, draft.backend, draft.llm_error,
                 draft.unsupported + unsupported, draft.checked + checked, verified=True)
