"""The offline answer: whole sentences and list items quoted from the evidence, each with the
``[n]`` of its source. Whether to answer at all is decided before (``answerability.py``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

from srekb.retrieval.answer.draft import Draft, attach
from srekb.retrieval.stats import CorpusStats
from srekb.retrieval.text import content_terms, term_set
from srekb.retrieval.types import Hit, SourceType

log = logging.getLogger(__name__)

SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z`\"'(\[])")


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
