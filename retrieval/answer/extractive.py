"""The offline answer, quoted from the evidence with the ``[n]`` of each source. Whether to answer
at all is decided before (``answerability.py``).

A chunk is read as blocks (paragraphs, lists, code blocks, tables) and each block as units: a
paragraph's sentences, a list's items, a code block whole. The answer is built from whole units
only, so it never starts mid-sentence:

* when the question asks for a value the sources record (an alert's expression, its ``for:``
  duration, its severity; an incident's date, owner or root cause), the answer leads with it,
  quoted verbatim with its file and line;
* then, per source in evidence order: its best sentences, or, when what matches best is a list
  item or a command, the whole list (numbered steps keep their numbers and order) or the code
  block verbatim, under the sentence that leads into it (or a short "From <section>" lead);
* one procedure or one code block at most, a few sentences besides: the rest is in the citations.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from srekb.retrieval.answer.draft import Draft, Part, attach
from srekb.retrieval.stats import CorpusStats
from srekb.retrieval.text import content_terms, term_set
from srekb.retrieval.types import Hit, SourceType

log = logging.getLogger(__name__)

SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z`\"'(\[*])")
LIST_ITEM = re.compile(r"^(\s*)([-*+]|\d{1,3}[.)])\s+(.*)$")
META_LINE = re.compile(r"^\*\*[^*]{1,30}:\*\*")  # '**Service:** x' header fields
TABLE_RULE = re.compile(r"^\|?[\s:|-]*-[\s:|-]*$")  # |---|:---:|
TEMPLATE = re.compile(r"^\s*(\{\{.*\}\}|\{%.*%\}|<!--.*-->)\s*$")  # Hugo/Jinja shortcodes, HTML comments: markup, not text
# A unit opens a sentence with a word, code, a quote, a link or emphasis; one that opens with
# punctuation (', and then', '; so') is the tail of a sentence.
SENTENCE_START = re.compile(r"^[A-Za-z0-9`\"'(\[*_~<$]")
# A chunk cut inside a paragraph starts with a plain lower-case word ('and restart the member').
# A lower-case name opens sentences too ('order-worker is idempotent'), so only a bare word counts.
CUT_START = re.compile(r"^[a-z]+\b(?![-_.:/])")

MAX_STEPS = 8
MAX_CODE_LINES = 16


@dataclass
class Unit:
    kind: str  # sentence | item | code | line
    text: str
    block: int  # index of the block it belongs to
    marker: str = ""  # a list item's '1.' or '-'
    line: int = 0  # a config line's 1-based number in its file


@dataclass
class Block:
    kind: str  # para | list | code | table
    units: list[Unit] = field(default_factory=list)
    numbered: bool = False


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _table_row(header: list[str] | None, line: str) -> str:
    """A table row as one unit, each cell named by its column: 'Metric: `x`; Type: histogram'.
    A metric or flag table is often the only place a value is written down."""
    cells = _cells(line)
    if header and len(header) == len(cells):
        return "; ".join(f"{h}: {c}" if h else c for h, c in zip(header, cells, strict=True) if c)
    return "; ".join(c for c in cells if c)


def blocks(text: str) -> list[Block]:
    """A chunk's paragraphs (hard-wrapped lines joined, split into sentences), lists (an item's
    wrapped or indented lines stay with it), fenced code blocks (verbatim) and table rows.
    Headings, template markup and bold header fields are left out."""
    out: list[Block] = []
    para: list[str] = []
    code: list[str] | None = None
    header: list[str] | None = None
    previous = ""

    def flush() -> None:
        if para:
            joined = " ".join(para)
            sentences = [p.strip() for p in SENTENCE_END.split(joined) if len(p.strip()) > 2]
            if sentences:
                b = len(out)
                out.append(Block("para", [Unit("sentence", s, b) for s in sentences]))
            para.clear()

    def current_list() -> Block | None:
        return out[-1] if out and out[-1].kind == "list" and not para else None

    in_item = False  # the open code block is indented under a list item: it belongs to that item
    # A chunk that opens with an indented line (not an item, not a fence) opens inside a list item
    # or a paragraph the chunk boundary cut: that tail is skipped up to the next blank line or item.
    first = next((ln for ln in text.splitlines() if ln.strip()), "")
    meta_field = False
    cut = first[:1].isspace() and not LIST_ITEM.match(first) and not first.strip().startswith(("```", "~~~", "|"))
    for raw in text.splitlines():
        line = raw.strip()
        if cut:
            if line and not LIST_ITEM.match(raw) and not line.startswith("#"):
                continue
            cut = False
        if code is not None:
            code.append(raw.rstrip() if not line.startswith(("```", "~~~")) else line)
            if line.startswith(("```", "~~~")):
                if any(c.strip() for c in code[1:-1]):
                    fenced = _dedent(code)
                    lst = current_list()
                    if in_item and lst is not None and lst.units:
                        lst.units[-1].text += "\n\n" + "\n".join("   " + c for c in fenced.split("\n"))
                    else:
                        out.append(Block("code", [Unit("code", fenced, len(out))]))
                code = None
            continue
        if line.startswith(("```", "~~~")):
            in_item = raw[:1].isspace() and not para and current_list() is not None
            flush()
            code = [line]
            continue
        if line.startswith("|"):
            flush()
            if TABLE_RULE.match(line):
                header = _cells(previous) if previous.startswith("|") else None
                if header and out and out[-1].kind == "table" and out[-1].units and out[-1].units[-1].text == _table_row(None, previous):
                    out[-1].units.pop()  # the header row names the cells; it says nothing itself
            else:
                if not out or out[-1].kind != "table":
                    out.append(Block("table"))
                out[-1].units.append(Unit("sentence", _table_row(header, line), len(out) - 1))
            previous = line
            continue
        previous, header = line, None
        if not line or line.startswith("#") or TEMPLATE.match(line) or set(line) <= set("|-:=*_ "):
            flush()
            continue
        item = LIST_ITEM.match(raw)
        if item and META_LINE.match(item.group(3)) and not item.group(2)[0].isdigit():
            meta_field = True  # '- **Owner team:** x' is a header field; '4. **Leader churn:** ...' is a step
            continue
        if meta_field and raw[:1].isspace() and line:
            continue  # a header field's wrapped line
        meta_field = False
        if META_LINE.match(line):
            flush()
            continue
        if item:
            indent, marker, body = (str(g) for g in item.groups())
            lst = current_list()
            if lst is not None and indent and lst.units:  # a nested item stays with its parent
                lst.units[-1].text += f"\n   {'-' if not marker[0].isdigit() else marker} {body}"
                continue
            flush()
            if lst is None:
                lst = Block("list", numbered=marker[0].isdigit())
                out.append(lst)
            lst.units.append(Unit("item", body, len(out) - 1, marker))
            continue
        lst = current_list()
        if lst is not None and lst.units and raw[:1].isspace():  # an item's wrapped line (or its next paragraph)
            after_code = lst.units[-1].text.endswith("```")
            lst.units[-1].text += ("\n\n   " if after_code else " ") + line
            continue
        para.append(line)
    flush()
    if code is not None and len(code) > 1:  # a block cut by the chunk's end: still verbatim
        out.append(Block("code", [Unit("code", _dedent([*code, code[0][:3]]), len(out))]))
    return out


STRUCTURED = (".yml", ".yaml", ".json", ".ini", ".toml", ".conf", ".cfg", ".properties", ".env", ".tf", ".hcl")
ESCAPED_PROSE = re.compile(r'^\s*"?[\w.-]*"?\s*:?\s*"?(.*?)"?,?\s*$')


def structured_blocks(text: str, line_start: int) -> list[Block]:
    """A config or record file read line by line: each non-blank line (a key and its value, or a
    comment that explains one) is a unit with its line number. A string value that holds prose
    with escaped newlines (a JSON issue body, a YAML description) is read as Markdown."""
    out: list[Block] = []
    for i, raw in enumerate(text.splitlines()):
        line = raw.strip()
        if not line or set(line) <= set("#;/-=*_{}[](),\"' "):
            continue
        if "\\n" in line and len(line) > 80:
            body = ESCAPED_PROSE.match(line).group(1)  # type: ignore[union-attr]  # the pattern matches any line
            prose = body.replace("\\n", "\n").replace('\\"', '"').replace("\\t", " ")
            for b in blocks(prose):
                k = len(out)
                out.append(Block(b.kind, [Unit(u.kind, u.text, k, u.marker) for u in b.units], b.numbered))
            continue
        if not out or out[-1].kind != "lines":
            out.append(Block("lines"))
        out[-1].units.append(Unit("line", line, len(out) - 1, line=line_start + i))
    return out


def _dedent(lines: list[str]) -> str:
    body = lines[1:-1]
    pad = min((len(b) - len(b.lstrip()) for b in body if b.strip()), default=0)
    return "\n".join([lines[0], *(b[pad:] for b in body), lines[-1]])


def _lead_in(bl: list[Block], b: int) -> str | None:
    """The sentence that introduces block ``b`` (the last one of the paragraph just before it,
    when it ends with ':')."""
    if b > 0 and bl[b - 1].kind == "para" and bl[b - 1].units[-1].text.rstrip().endswith(":"):
        return bl[b - 1].units[-1].text
    return None


def _line_of(hit: Hit, pattern: str) -> int:
    """The 1-based line of the chunk's first line matching ``pattern`` (the chunk's first line otherwise)."""
    for i, line in enumerate(hit.chunk.text.splitlines()):
        if re.match(pattern, line):
            return hit.chunk.line_start + i
    return hit.chunk.line_start


# The values the ingester records per source (see ingest/: a rule's expr/for/severity, an
# incident's date/team and its Root cause section) and how a question asks for each one.
VALUE_ASKS: dict[str, re.Pattern[str]] = {
    "expr": re.compile(r"\b(threshold|expression|expr|promql|query|condition)\b|\bfires? (when|on|at)\b", re.I),
    "for": re.compile(r"\b(duration|how long|for:)\b|\bfor how\b", re.I),
    "severity": re.compile(r"\bseverity\b|\bhow (severe|critical|urgent)\b", re.I),
    "date": re.compile(r"\b(what date|which date|when did|when was|date of)\b", re.I),
    "team": re.compile(r"\b(owner|owns|owning team|which team|who (owns|is responsible))\b", re.I),
    "root cause": re.compile(r"\broot cause\b|\bwhat caused\b|\bwhy did\b", re.I),
}


def asked_values(question: str) -> list[str]:
    return [name for name, ask in VALUE_ASKS.items() if ask.search(question)]


def _rule_value(hit: Hit, wanted: list[str]) -> str | None:
    """An alert rule's asked-for fields, verbatim, with the line of its expression."""
    m = hit.chunk.meta
    if not {"expr", "for", "severity"} & set(wanted) or not m.get("alert") or not m.get("expr") \
            or hit.chunk.source_type is not SourceType.CONFIG:
        return None
    expr = " ".join(str(m["expr"]).split())
    parts = [f"**{m['alert']}** fires when `{expr}`"]
    if m.get("for"):
        parts.append(f"for `{m['for']}`")
    if m.get("severity"):
        parts.append(f"severity `{m['severity']}`")
    line = _line_of(hit, r"\s*(-\s*)?expr:")
    return f"{', '.join(parts)} (`{hit.chunk.path}:L{line}`)"


def _record_value(hit: Hit, wanted: list[str], score: Callable[[str], float]) -> str | None:
    """An incident's asked-for date or team, or the sentence of its Root cause section that best
    matches the question."""
    m = hit.chunk.meta
    found = []
    if "date" in wanted and m.get("date"):
        found.append(f"**Date:** {m['date']}")
    if "team" in wanted and (m.get("team") or m.get("owner")):
        found.append(f"**Owner:** {m.get('team') or m.get('owner')}")
    if "root cause" in wanted and re.search(r"root cause|cause", hit.chunk.section.split(" > ")[-1], re.I):
        sentences = [u.text for b in blocks(hit.chunk.text) for u in b.units if u.kind == "sentence" and SENTENCE_START.match(u.text)]
        if sentences:
            found.append(f"**Root cause:** {max(sentences, key=score)}")
    return "; ".join(found) or None


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
        # '{{ $labels.device }}' names what the alert fires for: kept as <device>, other templating dropped.
        summary = re.sub(r"\{\{\s*\$labels\.(\w+)\s*\}\}", r"<\1>", str(m["summary"]))
        summary = re.sub(r"\s*\(?\{\{[^}]*\}\}\)?", "", summary).strip().rstrip(".")
        s += f" ({summary})" if summary else ""
    return s + "."


def cite(text: str, n: int) -> str:
    return attach(text, [n])


def _item_line(u: Unit) -> str:
    return f"{u.marker if u.marker[0].isdigit() else '-'} {u.text}"


class ExtractiveAnswerer:
    """Quotes the units of the top sources that best match the question, with [n] markers."""

    mode = "extractive"

    def __init__(self, stats: CorpusStats | None = None, max_sources: int = 3, max_sentences: int = 4) -> None:
        self.stats = stats
        self.max_sources = max_sources
        self.max_sentences = max_sentences

    def _score(self, text: str, weights: dict[str, float], total: float) -> float:
        ts = term_set(text)
        return sum(w for t, w in weights.items() if t in ts) / total

    def answer(self, question: str, hits: Sequence[Hit]) -> Draft:
        terms = content_terms(question)
        weights = {t: self.stats.idf(t) if self.stats else 1.0 for t in terms}
        total = sum(weights.values()) or 1.0
        top = list(hits[: self.max_sources])
        sources: list[Hit] = []

        def n_of(hit: Hit) -> int:
            if hit not in sources:
                sources.append(hit)
            return sources.index(hit) + 1

        parts: list[Part] = []
        wanted = asked_values(question)
        valued: Hit | None = None
        if wanted:
            for hit in top:
                value = _rule_value(hit, wanted) or _record_value(hit, wanted, lambda t: self._score(t, weights, total))
                if value:
                    valued = hit
                    value = value if value.endswith((".", "!", "?")) else value + "."
                    parts.append(Part("value", cite(value, n_of(hit)), n_of(hit)))
                    break

        quoted_rules = {(valued.chunk.meta.get("alert"), " ".join(str(valued.chunk.meta.get("expr")).split()))} if valued else set()
        budget = self.max_sentences - len(parts)
        block_used = False
        picks: list[tuple[int, float, Part]] = []  # (source rank, score, part)
        for hi, hit in enumerate(top):
            if hit is valued:
                continue
            rule = _rule_sentence(hit)
            if rule:
                same = (hit.chunk.meta.get("alert"), " ".join(str(hit.chunk.meta.get("expr")).split()))
                if same in quoted_rules:
                    continue  # the same rule in a second file (a copy, a rendered manifest) says nothing new
                quoted_rules.add(same)
                picks.append((hi, 2.0 - hi * 0.1, Part("sentence", rule, None)))
                continue
            structured = hit.chunk.path.lower().endswith(STRUCTURED)
            bl = structured_blocks(hit.chunk.text, hit.chunk.line_start) if structured else blocks(hit.chunk.text)
            position = {id(u): i for i, u in enumerate(u for b in bl for u in b.units)}
            scored: list[tuple[float, Unit]] = []
            for b in bl:
                for u in b.units:
                    s = self._score(u.text, weights, total)
                    if u.kind == "code":
                        s *= 0.7  # prose explains; a command is quoted when it is what matches best
                    lead = _lead_in(bl, u.block)
                    if lead and u.kind in ("item", "code"):
                        s = max(s, 0.8 * self._score(lead, weights, total))
                    if u.kind == "sentence" and b.kind == "para" and (not SENTENCE_START.match(u.text) or (
                            position[id(u)] == 0 and not hit.chunk.text.lstrip().startswith("#") and CUT_START.match(u.text))):
                        continue  # the tail of a sentence the chunk boundary cut
                    scored.append((s - 0.01 * position[id(u)], u))
            if not scored:
                continue
            scored.sort(key=lambda x: -x[0])
            best_score, best = scored[0]
            if best_score <= 0.05 and hi > 0:
                continue
            if best.kind == "line":
                lines = [u for sc, u in scored if u.kind == "line" and sc >= 0.5 * best_score][:3]
                picks.append((hi, best_score - 0.15 * hi, self._lines(hit, sorted(lines, key=lambda u: u.line))))
                continue
            if best.kind == "sentence" and best.text.endswith(":") and best.block + 1 < len(bl) and bl[best.block + 1].kind in ("list", "code"):
                best = bl[best.block + 1].units[0]  # a lead-in brings what it introduces
            if best.kind in ("item", "code"):
                # A block is long: one per answer, and from a source below the first only when it matches well.
                if not block_used and (hi == 0 or best_score >= 0.25):
                    block_used = True
                    picks.append((hi, best_score + 1.0, self._block(hit, bl, best, scored)))
                    continue
                prose = [x for x in scored if x[1].kind == "sentence" and not x[1].text.endswith(":")]
                if not prose:  # the list or command is all the source has: its best item, or the command's head
                    picks.append((hi, best_score - 0.15 * hi, self._block(hit, bl, best, scored, compact=True)))
                    continue
                best_score, best = prose[0]
            # A sentence ending with ':' says nothing without the list or command it introduces.
            scored = [x for x in scored if x[1].kind == "sentence" and not x[1].text.endswith(":")]
            take = [u for s, u in scored[: 2 if hi == 0 else 1] if s > 0.05 or u is best]
            if take:
                take.sort(key=lambda u: position[id(u)])  # in the source's order
                picks.append((hi, best_score - 0.15 * hi, Part("sentence", " ".join(u.text for u in take), None)))
        # The strongest picks within the budget, then in evidence (source) order.
        picks.sort(key=lambda x: -x[1])
        kept = sorted(picks[: max(1, budget)], key=lambda x: x[0])
        for hi, _, part in kept:
            n = n_of(top[hi])
            if part.kind == "sentence":
                sentences = [p for p in SENTENCE_END.split(part.text) if p]
                part.text = " ".join(cite(s, n) if i == len(sentences) - 1 else s for i, s in enumerate(sentences))
            else:
                part.text = part.text.replace("\x00", f" [{n}]", 1)
            part.source = n
            parts.append(part)
        return Draft("\n\n".join(p.text for p in parts), sources, self.mode, parts, verified=True)

    def _lines(self, hit: Hit, lines: list[Unit]) -> Part:
        """Config lines verbatim under their file and line numbers."""
        numbers = [u.line for u in lines]
        span = f"L{numbers[0]}-L{numbers[-1]}" if numbers == list(range(numbers[0], numbers[-1] + 1)) and len(numbers) > 1 else \
            ", ".join(f"L{n}" for n in numbers)
        lang = hit.chunk.path.rsplit(".", 1)[-1].lower().replace("yml", "yaml")
        body = "\n".join(u.text for u in lines)
        return Part("value", f"`{hit.chunk.path}:{span.replace(' ', '')}`\x00:\n\n```{lang}\n{body}\n```")

    def _block(self, hit: Hit, bl: list[Block], best: Unit, scored: list[tuple[float, Unit]], compact: bool = False) -> Part:
        """A list (with its lead-in) or a code block (under the sentence before it), as Markdown;
        ``\\x00`` marks where the source's [n] goes. ``compact``: the best item alone, or the
        command's first lines."""
        block = bl[best.block]
        lead = _lead_in(bl, best.block)
        head = (lead[:-1].rstrip() + "\x00:") if lead else f"From *{hit.chunk.title}: {hit.chunk.section.split(' > ')[-1]}*\x00:"
        if block.kind == "code":
            lines = best.text.split("\n")
            cap = 4 if compact else MAX_CODE_LINES
            if len(lines) > cap + 2:
                lines = [*lines[: cap + 1], "# … (the rest is in the source)", lines[-1]]
            return Part("code", head + "\n\n" + "\n".join(lines))
        items = block.units
        if compact:
            return Part("steps", head + "\n\n" + _item_line(best))
        if block.numbered:
            if len(items) > MAX_STEPS:  # a window around the best step, in order
                at = items.index(best)
                start = max(0, min(at - 2, len(items) - MAX_STEPS))
                items = items[start : start + MAX_STEPS]
            return Part("steps", head + "\n\n" + "\n".join(_item_line(u) for u in items))
        if len(items) > 5:
            ranked = {id(u) for _, u in scored if u.block == best.block}
            best_items = [u for _, u in scored if id(u) in ranked][:4]
            items = [u for u in items if u in best_items]
        return Part("steps", head + "\n\n" + "\n".join(_item_line(u) for u in items))
