"""Markdown (and HTML / plain text) into one chunk per section, keeping the heading path."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import PurePosixPath
from typing import Any

import yaml
from srekb.ingest.text import TokenCounter, split_lines
from srekb.retrieval.types import Chunk, SourceType

HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
FENCE = re.compile(r"^\s*(```|~~~)")
INCIDENT_ID = re.compile(r"\b(INC-\d{4}-\d{2,5}|INC-\d{3,6})\b", re.I)
ISO_DATE = re.compile(r"(?<!\d)(20\d\d|19\d\d)-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])(?!\d)")
FIELD_LINE = re.compile(r"^\s*[-*]?\s*\**(?P<key>[A-Za-z][A-Za-z /_-]{1,30}?)\**\s*[:：]\s*\**\s*(?P<value>.+?)\s*$")
SEVERITY = re.compile(r"\b(SEV ?[0-5]|P[0-4])\b", re.I)
IDENTIFIER = re.compile(r"^[A-Z][a-z0-9]+(?:[A-Z][A-Za-z0-9]*)+$")


@dataclass
class Section:
    heading_path: list[str]
    start: int  # 1-based line of the heading (or of the first body line for the preamble)
    lines: list[str] = field(default_factory=list)


def front_matter(lines: list[str]) -> tuple[dict[str, Any], int]:
    """Parse YAML (``---``) or TOML (``+++``) front matter; returns (fields, lines consumed)."""
    if not lines or lines[0].strip() not in ("---", "+++"):
        return {}, 0
    fence = lines[0].strip()
    for i in range(1, min(len(lines), 200)):
        if lines[i].strip() == fence:
            body = "\n".join(lines[1:i])
            try:
                if fence == "---":
                    data = yaml.safe_load(body)
                else:
                    import tomllib

                    data = tomllib.loads(body)
            except Exception:
                data = {}
            return (data if isinstance(data, dict) else {}), i + 1
    return {}, 0


def split_sections(lines: list[str], offset: int) -> tuple[str | None, list[Section]]:
    """Sections by ATX heading (ignoring ``#`` inside fenced code); returns (first H1, sections)."""
    h1: str | None = None
    stack: list[tuple[int, str]] = []
    sections: list[Section] = [Section([], offset + 1)]
    in_fence = False
    for i, line in enumerate(lines):
        if FENCE.match(line):
            in_fence = not in_fence
        m = None if in_fence else HEADING.match(line)
        if m:
            level, text = len(m.group(1)), _clean_heading(m.group(2))
            if level == 1 and h1 is None and not stack:
                h1 = text
                sections.append(Section([], offset + i + 1, [line]))
                continue
            while stack and stack[-1][0] >= level:
                stack.pop()
            stack.append((level, text))
            sections.append(Section([t for _, t in stack], offset + i + 1, [line]))
            continue
        sections[-1].lines.append(line)
    return h1, sections


def _clean_heading(text: str) -> str:
    text = re.sub(r"\{#[^}]*\}$", "", text)  # {#anchor}
    text = re.sub(r"`([^`]*)`", r"\1", text)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    return text.strip().strip("*_").strip()


def title_from_path(path: str) -> str:
    stem = PurePosixPath(path).stem
    if stem.lower() in ("_index", "index", "readme"):
        stem = PurePosixPath(path).parent.name or stem
    return re.sub(r"[-_]+", " ", stem).strip().capitalize() if not IDENTIFIER.match(stem) else stem


def header_fields(lines: list[str]) -> dict[str, str]:
    """``Key: value`` lines (optionally bold / bulleted / tabled) near the top of a document."""
    out: dict[str, str] = {}
    for line in lines[:40]:
        if line.lstrip().startswith("|"):
            cells = [c.strip().strip("*") for c in line.strip().strip("|").split("|")]
            if len(cells) == 2 and cells[0] and not set(cells[0]) <= set("-: "):
                out.setdefault(cells[0].lower(), cells[1])
            continue
        m = FIELD_LINE.match(line)
        if m and not line.strip().startswith("#"):
            out.setdefault(m.group("key").strip().lower(), m.group("value").strip().strip("*").strip())
    return out


def markdown_meta(source_type: SourceType, path: str, title: str, preamble: list[str], fm: dict[str, Any]) -> dict[str, Any]:
    """Source-specific metadata: service / alert for runbooks, id / date / severity for incidents."""
    fields = header_fields(preamble)
    meta: dict[str, Any] = {}
    for key in ("service", "team", "owner", "owner team", "alert", "severity"):
        if key in fields:
            meta[key.replace("owner team", "team")] = re.sub(r"[`*]", "", fields[key])
    if source_type is SourceType.RUNBOOK and "alert" not in meta and IDENTIFIER.match(title):
        meta["alert"] = title
    if source_type is SourceType.INCIDENT:
        blob = "\n".join([title, *preamble[:40]])
        m = INCIDENT_ID.search(blob)
        meta["incident_id"] = m.group(1).upper() if m else PurePosixPath(path).stem
        date = fields.get("date") or str(fm.get("date", ""))
        d = ISO_DATE.search(date) or ISO_DATE.search(PurePosixPath(path).name) or ISO_DATE.search(blob)
        if d:
            meta["date"] = d.group(0)
        else:
            parsed = _prose_date(blob)
            if parsed:
                meta["date"] = parsed
        sev = SEVERITY.search(fields.get("severity", "")) or SEVERITY.search(blob)
        if sev:
            meta["severity"] = sev.group(1).upper().replace(" ", "")
    return meta


_MONTHS = {m: i for i, m in enumerate(["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], 1)}


def _prose_date(text: str) -> str | None:
    """'May 30th, 2019' -> '2019-05-30'."""
    m = re.search(r"\b([A-Z][a-z]{2,8})\.? (\d{1,2})(?:st|nd|rd|th)?,? (\d{4})\b", text)
    if m and m.group(1)[:3].lower() in _MONTHS:
        return f"{m.group(3)}-{_MONTHS[m.group(1)[:3].lower()]:02d}-{int(m.group(2)):02d}"
    return None


def chunk_markdown(path: str, text: str, source_type: SourceType, budget: int, count: TokenCounter) -> list[Chunk]:
    """One chunk per section (split further to fit ``budget`` tokens)."""
    lines = text.splitlines()
    fm, consumed = front_matter(lines)
    h1, sections = split_sections(lines[consumed:], consumed)
    fm_title = str(fm.get("title") or "").strip() or None
    title = h1 or fm_title or title_from_path(path)
    meta = markdown_meta(source_type, path, title, [ln for s in sections[:3] for ln in s.lines], fm)
    if fm_title and fm_title != title:
        meta["aliases"] = [fm_title]
    chunks = _sections_to_chunks(path, title, sections, source_type, meta, budget, count)
    if not chunks and consumed and (fm.get("description") or fm.get("summary")):
        # A section landing page (Hugo _index.md) whose only content is its front matter.
        body = [f"{k}: {v}" for k, v in fm.items() if k in ("title", "description", "summary") and v]
        chunks = [Chunk(path, source_type, title, "Overview", "\n".join(body), 1, consumed, key="s:Overview#0", meta=meta)]
    return chunks


def _sections_to_chunks(
    path: str, title: str, sections: list[Section], source_type: SourceType, meta: dict[str, Any], budget: int, count: TokenCounter
) -> list[Chunk]:
    chunks: list[Chunk] = []
    seen: dict[str, int] = {}
    for sec in sections:
        body = [ln for ln in sec.lines if ln.strip()]
        if not body or (len(body) == 1 and HEADING.match(body[0])):
            continue  # a heading with nothing under it: its name lives on in its children's paths
        name = " > ".join(sec.heading_path) or "Overview"
        header_cost = count(f"{title}: {name}") + 2
        for span in split_lines(sec.lines, sec.start, max(32, budget - header_cost), count):
            n = seen.get(name, 0)
            seen[name] = n + 1
            chunks.append(
                Chunk(
                    path=path,
                    source_type=source_type,
                    title=title,
                    section=name,
                    text=span.text,
                    line_start=span.start,
                    line_end=span.end,
                    key=f"s:{name}#{n}",
                    meta=dict(meta),
                )
            )
    return chunks


class _HtmlSections(HTMLParser):
    """Collects (line, heading level or 0, text) from HTML, skipping script/style."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.items: list[tuple[int, int, str]] = []
        self._level = 0
        self._skip = 0
        self._buf: list[str] = []
        self._line = 1

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        elif re.fullmatch(r"h[1-6]", tag):
            self._flush()
            self._level = int(tag[1])
        elif tag in ("p", "li", "pre", "tr", "br", "div", "table", "ul", "ol"):
            self._flush()

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skip = max(0, self._skip - 1)
        elif re.fullmatch(r"h[1-6]", tag) or tag in ("p", "li", "pre", "tr", "div"):
            self._flush()

    def handle_data(self, data: str) -> None:
        if self._skip or not data.strip():
            return
        if not self._buf:
            self._line = self.getpos()[0]
        self._buf.append(data.strip())

    def _flush(self) -> None:
        if self._buf:
            self.items.append((self._line, self._level, " ".join(self._buf)))
        self._buf = []
        self._level = 0


def html_to_markdown(text: str) -> tuple[str, dict[int, int]]:
    """HTML as Markdown-ish lines plus a map from those lines to the HTML's own line numbers."""
    parser = _HtmlSections()
    parser.feed(text)
    parser.close()
    parser._flush()
    out: list[str] = []
    line_map: dict[int, int] = {}
    for line, level, content in parser.items:
        out.append(("#" * level + " " + content) if level else content)
        line_map[len(out)] = line
        out.append("")
        line_map[len(out)] = line
    return "\n".join(out), line_map


def chunk_html(path: str, text: str, source_type: SourceType, budget: int, count: TokenCounter) -> list[Chunk]:
    md, line_map = html_to_markdown(text)
    chunks = chunk_markdown(path, md, source_type, budget, count)
    for c in chunks:
        c.line_start = line_map.get(c.line_start, c.line_start)
        c.line_end = line_map.get(c.line_end, c.line_end)
    return chunks


def chunk_plain(path: str, text: str, source_type: SourceType, budget: int, count: TokenCounter) -> list[Chunk]:
    title = title_from_path(path)
    lines = text.splitlines()
    chunks = []
    for n, span in enumerate(split_lines(lines, 1, budget - count(title) - 2, count)):
        chunks.append(Chunk(path, source_type, title, title, span.text, span.start, span.end, key=f"p#{n}"))
    return chunks
