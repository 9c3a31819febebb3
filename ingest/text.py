"""Token-aware splitting that keeps 1-based line ranges.

Chunks are sized to what the encoder reads (256 word pieces for MiniLM): a longer chunk would be
embedded truncated, so its tail could never be found by meaning.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

TokenCounter = Callable[[str], int]


@lru_cache(maxsize=4)
def wordpiece_tokenizer(model: str = "all-MiniLM-L6-v2") -> Callable[[str], list[int]] | None:
    """The encoder's word-piece ids of a text (no special tokens, no truncation); None for a model
    without a packaged ``tokenizer.json``."""
    from srekb.retrieval.models.embedding import resolve_model_path
    from tokenizers import Tokenizer

    path = resolve_model_path(model) / "tokenizer.json"
    if not path.exists():
        return None
    tok = Tokenizer.from_file(str(path))
    tok.no_truncation()
    tok.no_padding()

    def encode(text: str) -> list[int]:
        return tok.encode(text, add_special_tokens=False).ids  # type: ignore[no-any-return]

    return encode


def wordpiece_counter(model: str = "all-MiniLM-L6-v2") -> TokenCounter:
    """Counts the encoder's word pieces (falls back to a word-based estimate for unknown models)."""
    encode = wordpiece_tokenizer(model)
    if encode is None:
        return approx_counter
    return lambda text: len(encode(text))


def approx_counter(text: str) -> int:
    """~1.3 word pieces per word, punctuation counted: close enough for tests and fallbacks."""
    return len(re.findall(r"\w+|[^\w\s]", text))


@dataclass
class Span:
    """A block of lines: 1-based inclusive ``start``..``end`` and its text."""

    start: int
    end: int
    text: str


def split_lines(lines: Sequence[str], first_line: int, budget: int, count: TokenCounter) -> list[Span]:
    """Split consecutive lines into spans of at most ``budget`` tokens.

    Prefers to cut at blank lines (paragraph ends) and never cuts inside a line unless a single
    line is itself over budget, in which case that line is cut by words.
    """
    spans: list[Span] = []
    # Group into paragraphs first (blank-line separated), keeping line numbers.
    paras: list[tuple[int, list[str]]] = []
    cur: list[str] = []
    cur_start = first_line
    for i, line in enumerate(lines):
        if not line.strip():
            if cur:
                paras.append((cur_start, cur))
                cur = []
            continue
        if not cur:
            cur_start = first_line + i
        cur.append(line)
    if cur:
        paras.append((cur_start, cur))

    buf: list[str] = []
    buf_start = buf_end = 0
    buf_tokens = 0

    def flush() -> None:
        nonlocal buf, buf_tokens
        if buf:
            spans.append(Span(buf_start, buf_end, "\n".join(buf).strip("\n")))
        buf, buf_tokens = [], 0

    for p_start, p_lines in paras:
        p_text = "\n".join(p_lines)
        p_tokens = count(p_text)
        if p_tokens > budget:
            # The paragraph alone is too big: go line by line.
            flush()
            for j, line in enumerate(p_lines):
                ln = p_start + j
                t = count(line)
                if t > budget:
                    flush()
                    for piece in _split_long_line(line, budget, count):
                        spans.append(Span(ln, ln, piece))
                    continue
                if buf and buf_tokens + t > budget:
                    flush()
                if not buf:
                    buf_start = ln
                buf.append(line)
                buf_end = ln
                buf_tokens += t
            continue
        if buf and buf_tokens + p_tokens > budget:
            flush()
        if not buf:
            buf_start = p_start
        elif buf:
            buf.append("")
        buf.extend(p_lines)
        buf_end = p_start + len(p_lines) - 1
        buf_tokens += p_tokens
    flush()
    return spans


def _split_long_line(line: str, budget: int, count: TokenCounter) -> list[str]:
    """Cut one over-long line by words (word costs summed: linear even for a minified file)."""
    out: list[str] = []
    cur: list[str] = []
    used = 0
    for w in line.split(" "):
        t = max(1, count(w))
        if cur and used + t > budget:
            out.append(" ".join(cur))
            cur, used = [], 0
        cur.append(w[: budget * 4] if t > budget else w)
        used += min(t, budget)
    if cur:
        out.append(" ".join(cur))
    return out
