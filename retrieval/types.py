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


@dataclass
class Features:
    """The feature reranker's inputs for one candidate, each named as its weight in
    ``RerankWeights`` (what ``srekb eval --write-model`` fits)."""

    fused: float = 0.0  # the engine's fused score over the candidates' best
    dense: float = 0.0  # cosine of the question and the whole chunk
    bm25: float = 0.0  # BM25 over the candidates' best
    ident: float = 0.0  # the question's identifiers (alert names, metrics, ids) the chunk holds, weighted by rarity
    title: float = 0.0  # share of the question's terms in the title and section
    prior: float = 0.0  # the intent's prior for the chunk's source type
    recency: float = 0.0  # an incident's age, decayed
    path: float = 0.0  # the question names the file or its directory
    section: float = 0.0  # the section answers this intent (1), rarely answers anything (-1)
    rule: float = 0.0  # an alert rule: +1 when the question asks about a definition, else -1
    support: float = 0.0  # other candidate sections from the same file

    def as_dict(self) -> dict[str, float]:
        return dict(vars(self))


@dataclass
class Scores:
    """What each stage of a search said of one hit (the final order is ``Hit.score``)."""

    fused: float = 0.0  # the engine's weighted-RRF score
    dense: float = 0.0  # dense cosine
    bm25: float = 0.0  # BM25 score (0 when the sparse channel did not find it)
    features: Features | None = None  # set by the feature reranker
    companion: bool = False  # placed by its alert rule <-> runbook link
    asked_section: bool = False  # the section the question asks for, added to the evidence
    judge: float | None = None  # a second-stage judge's score (cross-encoder) or rank (LLM, 1 = best)


@dataclass
class Hit:
    """A chunk returned by a search with its score (higher is better) and per-stage scores."""

    chunk: Chunk
    score: float
    id: str = ""
    scores: Scores = field(default_factory=Scores)

    def to_dict(self) -> dict[str, Any]:
        """The hit in the JSON contract (API, CLI, agents): the chunk's place and text, the score."""
        c = self.chunk
        return {"path": c.path, "source_type": c.source_type.value, "lines": [c.line_start, c.line_end], "score": round(self.score, 4),
                "title": c.title, "section": c.section, "incident_id": c.meta.get("incident_id"), "date": c.meta.get("date"), "text": c.text}


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
