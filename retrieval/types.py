"""Core types shared by ingestion, retrieval, the API and evaluation."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any, TypeVar


class SourceType(str, Enum):
    """What kind of SRE document a chunk comes from."""

    RUNBOOK = "runbook"
    INCIDENT = "incident"
    CONFIG = "config"
    DOC = "doc"


class Intent(str, Enum):
    """What the on-call engineer is trying to do; picks the retrieval strategy."""

    TROUBLESHOOTING = "troubleshooting"
    CONFIGURATION = "configuration"
    MONITORING = "monitoring"
    GENERAL = "general"


@dataclass
class Chunk:
    """One retrievable unit: a Markdown section, one alert rule, one k8s object, one incident.

    ``path`` is relative to the ingest root (what citations show); ``lines`` are 1-based and
    inclusive. ``title``/``section`` feed the citation label; ``meta`` carries source-specific
    fields (incident_id, date, severity, service, alert, expr, for, kind, name, namespace...).
    """

    path: str
    source_type: SourceType
    title: str
    section: str
    text: str
    line_start: int
    line_end: int
    key: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def embed_text(self) -> str:
        """Text given to the encoders: the heading path gives a section its context."""
        head = self.title if not self.section or self.section == self.title else f"{self.title}: {self.section}"
        return f"{head}\n{self.text}"

    def to_payload(self) -> dict[str, Any]:
        payload = asdict(self)
        payload["source_type"] = self.source_type.value
        return payload

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> Chunk:
        known = {k: payload[k] for k in ("path", "title", "section", "text", "line_start", "line_end", "key") if k in payload}
        return cls(source_type=SourceType(payload["source_type"]), meta=dict(payload.get("meta") or {}), **known)


T = TypeVar("T")


def per_chunk(fn: Callable[[Chunk], T]) -> Callable[[Chunk], T]:
    """Remember ``fn``'s result per chunk object: search asks the same questions of the same
    chunks (the embedded store hands out one object per chunk) several times a query. A chunk is
    not changed after it is built; a rewritten chunk is a new object."""
    memo: dict[int, tuple[Chunk, T]] = {}

    @functools.wraps(fn)
    def remembered(chunk: Chunk) -> T:
        entry = memo.get(id(chunk))
        if entry is not None and entry[0] is chunk:  # the entry holds the chunk, so its id cannot be reused
            return entry[1]
        value = fn(chunk)
        if len(memo) >= 16384:
            memo.clear()
        memo[id(chunk)] = (chunk, value)
        return value

    return remembered


@per_chunk
def link_names(chunk: Chunk) -> frozenset[tuple[str, str]]:
    """What a chunk is, for linking an alert rule with its runbook: ('rule', name) for an alert
    rule (its alert and the last part of its ``runbook_url``), ('runbook', name) for a runbook
    (its file name and alert); else none."""
    if chunk.source_type is SourceType.CONFIG and chunk.meta.get("alert"):
        names = {str(chunk.meta["alert"]).lower()}
        url = str(chunk.meta.get("runbook_url") or "")
        if url:
            names.add(url.rstrip("/").rsplit("/", 1)[-1].lower().removesuffix(".md"))
        return frozenset(("rule", n) for n in names)
    if chunk.source_type is SourceType.RUNBOOK:
        names = {chunk.path.rsplit("/", 1)[-1].lower().removesuffix(".md")}
        if chunk.meta.get("alert"):
            names.add(str(chunk.meta["alert"]).lower())
        return frozenset(("runbook", n) for n in names)
    return frozenset()


@dataclass
class Hit:
    """A chunk returned by a search with its score (higher is better) and per-stage scores."""

    chunk: Chunk
    score: float
    id: str = ""
    scores: dict[str, float] = field(default_factory=dict)


@dataclass
class SourceRecord:
    """What the store remembers about one ingested file (drives incremental re-ingest)."""

    path: str
    root: str
    source_type: SourceType
    sha256: str
    size: int
    chunks: int
    ingested_at: str
    title: str = ""
    pipeline: str = ""  # chunker version + type + budget + model: a change re-ingests the file
