"""Wire schemas of the HTTP API (kept apart from the core types)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictInt, StringConstraints


def _calendar_date(value: str | None) -> str | None:
    """'2024-13-45' matches the pattern but is no date: refused here, not a 500 in the engine."""
    if value is not None:
        try:
            date.fromisoformat(value[:10])
        except ValueError as exc:
            raise ValueError(f"{value!r} is not a calendar date (YYYY-MM-DD)") from exc
    return value


IsoDate = Annotated[str | None, AfterValidator(_calendar_date)]
PathStr = Annotated[str, StringConstraints(min_length=1, max_length=4096)]  # PATH_MAX


class Filters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source_types: list[Literal["runbook", "incident", "config", "doc"]] = Field(default_factory=list)
    services: list[str] = Field(default_factory=list, max_length=50)
    paths: list[str] = Field(default_factory=list, max_length=200)
    date_from: IsoDate = Field(default=None, pattern=r"^\d{4}-\d{2}-\d{2}")
    date_to: IsoDate = Field(default=None, pattern=r"^\d{4}-\d{2}-\d{2}")


class QuestionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=1, max_length=4000, examples=["etcd has no leader, what do I check?"])
    k: StrictInt | None = Field(default=None, ge=1, le=100)  # strict: `true` and "5" are refused, not read as 1 and 5
    filters: Filters | None = None
    stream: StrictBool = Field(default=False, description="stream Server-Sent Events (also with Accept: text/event-stream)")
    session_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{16,64}$",
                                   description="from POST /v1/sessions: follow-ups are resolved against the session's last turns")


class IngestRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    paths: list[PathStr] = Field(min_length=1, max_length=100, description="files or directories under the configured allowed roots")
    source_type: Literal["runbook", "incident", "config", "doc"] | None = None
    delete_missing: bool = True


class SessionOut(BaseModel):
    session_id: str = Field(description="send it with each question of the conversation; bound to the API key that created it")
    idle_expiry_s: float


class JobOut(BaseModel):
    id: str
    status: Literal["queued", "running", "succeeded", "failed", "interrupted"]
    paths: list[str]
    progress: dict[str, Any]
    created_at: float
    finished_at: float | None
    report: dict[str, Any] | None
    error: str | None


class SourceOut(BaseModel):
    id: str
    path: str
    root: str
    source_type: str
    sha256: str
    size: int
    chunks: int
    ingested_at: str
    title: str


class SourcePage(BaseModel):
    items: list[SourceOut]
    total: int
    offset: int
    limit: int


class SourceText(BaseModel):
    id: str
    path: str
    source_type: str
    title: str
    from_file: bool = Field(description="read from the file on disk (unchanged since ingest), else rebuilt from the indexed chunks")
    changed_since_ingest: bool = Field(False, description="the file on disk differs from the indexed version: the lines shown "
                                       "are the indexed ones; re-ingest to update")
    lines: list[dict[str, Any]]


class ErrorBody(BaseModel):
    error: dict[str, Any]


class Citation(BaseModel):
    n: int
    source_type: str
    path: str
    lines: list[int] | None
    incident_id: str | None
    date: str | None
    title: str
    section: str
    text: str
    label: str


class HitOut(BaseModel):
    path: str
    source_type: str
    lines: list[int]
    score: float
    title: str
    section: str
    incident_id: str | None = None
    date: str | None = None
    text: str


class Answerability(BaseModel):
    score: float = Field(description="calibrated probability that the sources answer the question (every feature); below the "
                         "caveat point the answer carries a caveat")
    abstain_score: float = Field(1.0, description="the abstention scorer's probability (features a paraphrase does not move); "
                                 "below its point the service abstains")
    outcome: Literal["answer", "caveat", "abstain"]
    missing: list[str] = Field(default_factory=list, description="what the sources do not mention")


class AskResponse(BaseModel):
    question: str
    intent: str
    mode: Literal["generative", "extractive", "abstained"]
    abstained: bool
    outcome: Literal["answered", "caveat", "abstained"] = Field(
        default="answered", description="answered; caveat: answered, but the sources do not mention part of the question; abstained"
    )
    answerability: Answerability | None = None
    answer: str
    citations: list[Citation]
    citation_block: str
    hits: list[HitOut]
    timings_ms: dict[str, float]
    session_id: str | None = None
    standalone_question: str | None = Field(default=None, description="the follow-up rewritten against the session's last turn")


class SearchResponse(BaseModel):
    question: str
    intent: str
    hits: list[HitOut]
    timings_ms: dict[str, float]


class ComponentHealth(BaseModel):
    status: Literal["ok", "degraded", "down", "off"]
    latency_ms: float | None = None
    detail: str | None = None


class HealthResponse(BaseModel):
    status: Literal["healthy", "unhealthy"]
    timestamp: str
    components: dict[str, ComponentHealth]
