"""Answers: Gemini when a key is configured, otherwise a grounded extractive answer.

Either way the answer is built only from the retrieved chunks and every ``[n]`` points at a
source that supports its sentence (checked by term overlap, not by trusting a model). Whether
to answer at all is decided before, by :mod:`retrieval.answerability`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from srekb.retrieval.answer.stats import CorpusStats
from srekb.retrieval.text import content_terms, term_set
from srekb.retrieval.types import Hit, SourceType

log = logging.getLogger(__name__)

NOT_ENOUGH = "Not enough information in the knowledge base to answer this."
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z`\"'(\[])")
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


# ---------------------------------------------------------------------------- extractive ---


LIST_ITEM = re.compile(r"^([-*+]|\d+[.)])\s+")
META_LINE = re.compile(r"^\*\*[^*]{1,30}:\*\*")  # '**Service:** x' header fields
TABLE_RULE = re.compile(r"^\|?[\s:|-]*-[\s:|-]*$")  # |---|:---:|


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _table_row(header: list[str] | None, line: str) -> str:
    """A table row as one unit, each cell named by its column: 'Metric: `x`; Type: histogram'.
    A metric or flag table is often the only place a value is written down."""
    cells = _cells(line)
    if header and len(header) == len(cells):
        return "; ".join(f"{h}: {c}" if h else c for h, c in zip(header, cells, strict=True) if c)
    return "; ".join(c for c in cells if c)


def _units(text: str) -> list[str]:
    """Sentences and list items of a chunk. Hard-wrapped lines of a paragraph are joined before
    splitting into sentences; headings, fences, table rows and bold header fields are dropped;
    a lead-in ending with ':' carries the list items that follow it (up to three)."""
    blocks: list[str] = []
    para: list[str] = []
    in_code = False
    header: list[str] | None = None
    previous = ""

    def flush() -> None:
        if para:
            blocks.append(" ".join(para))
            para.clear()

    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith(("```", "~~~")):
            flush()
            in_code = not in_code
            continue
        if in_code:
            if line and not line.startswith(("#", "//", "$ #")):  # comments are not answers
                blocks.append(f"`{line}`")
            continue
        if line.startswith("|"):
            flush()
            if TABLE_RULE.match(line):
                header = _cells(previous) if previous.startswith("|") else None
                if header and blocks and blocks[-1] == _table_row(None, previous):
                    blocks.pop()  # the header row names the cells; it says nothing itself
            else:
                blocks.append(_table_row(header, line))
            previous = line
            continue
        previous, header = line, None
        if not line or line.startswith("#") or set(line) <= set("|-:=*_ ") or META_LINE.match(LIST_ITEM.sub("", line)):
            flush()
            continue
        if LIST_ITEM.match(line):
            flush()
            para.append(LIST_ITEM.sub("", line))
            continue
        para.append(line)
    flush()
    out: list[str] = []
    lead: list[str] | None = None
    for block in blocks:
        if lead is not None and len(lead) < 4:
            lead.append(block)
            out[-1] = " ".join([lead[0], "; ".join(lead[1:])])
            continue
        lead = None
        parts = [p.strip() for p in SENTENCE_END.split(block) if len(p.strip()) > 2] if not block.startswith("`") else [block]
        out.extend(parts)
        if parts and parts[-1].endswith(":"):
            lead = [parts[-1]]
    return out


def _rule_sentence(hit: Hit) -> str | None:
    m = hit.chunk.meta
    if not m.get("alert") or not m.get("expr") or hit.chunk.source_type is not SourceType.CONFIG:
        return None
    parts = [f"{m['alert']} fires when `{' '.join(str(m['expr']).split())}`"]
    if m.get("for"):
        parts.append(f"holds for {m['for']}")
    if m.get("severity"):
        parts.append(f"severity {m['severity']}")
    s = ", ".join(parts)
    if m.get("summary"):
        summary = re.sub(r"\s*\(?\{\{[^}]*\}\}\)?", "", str(m["summary"])).strip()
        s += f" ({summary})" if summary else ""
    return s + "."


class ExtractiveAnswerer:
    """Quotes the sentences of the top sources that best match the question, with [n] markers."""

    mode = "extractive"

    def __init__(self, stats: CorpusStats | None = None, max_sources: int = 3, max_sentences: int = 4) -> None:
        self.stats = stats
        self.max_sources = max_sources
        self.max_sentences = max_sentences

    def answer(self, question: str, hits: Sequence[Hit]) -> Draft:
        terms = content_terms(question)
        stats = self.stats
        weights = {t: stats.idf(t) if stats else 1.0 for t in terms}
        total = sum(weights.values()) or 1.0
        picked: list[tuple[float, int, int, str]] = []  # (score, hit index, unit index, text)
        for hi, hit in enumerate(hits[: self.max_sources]):
            rule = _rule_sentence(hit)
            if rule:
                picked.append((2.0 - hi * 0.1, hi, -1, rule))
                continue
            scored = []
            for ui, unit in enumerate(_units(hit.chunk.text)):
                ts = term_set(unit)
                s = sum(w for t, w in weights.items() if t in ts) / total
                if unit.startswith("`"):
                    s *= 0.7  # prose explains; a command is quoted when it is what matches best
                scored.append((s - 0.01 * ui - 0.15 * hi, hi, ui, unit))
            scored.sort(reverse=True)
            take = 2 if hi == 0 else 1
            picked.extend(x for n, x in enumerate(scored[:take]) if x[0] + 0.15 * hi > 0.05 or (hi == 0 and n == 0))
        picked.sort(key=lambda x: -x[0])
        picked = picked[: self.max_sentences]
        # Keep the source order, and each source's sentences in document order.
        picked.sort(key=lambda x: (x[1], x[2]))
        sources: list[Hit] = []
        parts: list[str] = []
        for _, hi, _, unit in picked:
            hit = hits[hi]
            if hit not in sources:
                sources.append(hit)
            parts.append(attach(unit, [sources.index(hit) + 1]))
        return Draft(" ".join(parts), sources, self.mode)


# -------------------------------------------------------------------------------- gemini ---


class GeminiAnswerer:
    """Gemini through google-genai: numbered sources in the prompt, answers cite them as [n]."""

    mode = "generative"

    def __init__(self, api_key: str, model: str, timeout_s: float, fallback: Answerer) -> None:
        from srekb.retrieval.models.llm import gemini_client

        self._client = gemini_client(api_key, timeout_s)
        self._model = model
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
            resp = self._client.models.generate_content(model=self._model, contents=prompt)
            text = (resp.text or "").strip()
        except Exception as exc:  # network, quota, key: degrade to the offline answer, never fail
            log.warning("gemini answer failed (%s: %s); answering extractively", type(exc).__name__, exc)
            draft = self._fallback.answer(question, hits)
            draft.mode = "extractive"
            return draft
        if not text:
            return self._fallback.answer(question, hits)
        return Draft(text, sources, self.mode)


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
