"""The wire contract of the HTTP API and of ``srekb --json``, kept apart from the core types.

The contract's values come from the core types' ``to_dict`` (``Hit``, ``SearchResult``,
``Answer``, ``Citation``: what agents get too); the models here type and document them, built in
one place each, a classmethod ``of`` (``HitOut.of``, ``AskResponse.of``, ...), which every JSON
route, the SSE stream and the CLI use. The field names are what the web page and API clients read."""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictInt, StringConstraints

if TYPE_CHECKING:  # the builders only read attributes: the schemas import without the engine
    from srekb import retrieval as core


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

    @classmethod
    def of(cls, r: core.SourceRecord) -> SourceOut:
        return cls(id=r.path, path=r.path, root=r.root, source_type=r.source_type.value, sha256=r.sha256, size=r.size,
                   chunks=r.chunks, ingested_at=r.ingested_at, title=r.title)


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

    @classmethod
    def of(cls, r: core.SourceRecord, by_line: dict[int, str], from_file: bool, changed: bool) -> SourceText:
        return cls(id=r.path, path=r.path, source_type=r.source_type.value, title=r.title, from_file=from_file,
                   changed_since_ingest=changed, lines=[{"n": n, "text": by_line[n]} for n in sorted(by_line)])


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

    @classmethod
    def of(cls, c: core.Citation) -> Citation:
        return cls.model_validate(c.to_dict())


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

    @classmethod
    def of(cls, hit: core.Hit) -> HitOut:
        return cls.model_validate(hit.to_dict())


class Answerability(BaseModel):
    score: float = Field(description="calibrated probability that the sources answer the question (every feature); below the "
                         "caveat point the answer carries a caveat")
    abstain_score: float = Field(1.0, description="the abstention scorer's probability (features a paraphrase does not move); "
                                 "below its point the service abstains")
    outcome: Literal["answer", "caveat", "abstain"]
    missing: list[str] = Field(default_factory=list, description="what the sources do not mention")


class AnswerPart(BaseModel):
    kind: Literal["value", "sentence", "steps", "code", "generated"] = Field(
        description="value: the asked-for value quoted first with its line citation; sentence; steps: a numbered procedure or a "
        "list with its lead-in; code: a verbatim code block; generated: a model's text"
    )
    text: str = Field(description="Markdown, with the [n] marker of its source")
    source: int | None = Field(default=None, description="1-based index into citations (n); null: cites nothing")


class AskResponse(BaseModel):
    question: str
    intent: str
    mode: Literal["generative", "extractive", "abstained"]
    abstained: bool
    outcome: Literal["answered", "caveat", "abstained"] = Field(
        default="answered", description="answered; caveat: answered, but the sources do not mention part of the question; abstained"
    )
    answerability: Answerability | None = None
    answer: str = Field(description="Markdown (numbered steps, code blocks) with [n] markers pointing at citations; render it "
                        "without raw HTML")
    parts: list[AnswerPart] = Field(default_factory=list, description="the answer's pieces in order, each with its source and kind")
    backend: str | None = Field(default=None, description="the model that wrote the answer ('gemini:gemini-2.5-flash', "
                                "'openai:llama3.1:8b'); null: quoted from the sources offline")
    llm_error: str | None = Field(default=None, description="why a configured model did not write it (each backend tried: its "
                                  "error), or what failed before the one that did; the answer is then extractive")
    unsupported: int = Field(default=0, description="generated sentences removed because no cited source states their numbers, "
                             "commands and names")
    citations: list[Citation]
    citation_block: str
    hits: list[HitOut]
    timings_ms: dict[str, float]
    session_id: str | None = None
    standalone_question: str | None = Field(default=None, description="the follow-up rewritten against the session's last turn")

    @classmethod
    def of(cls, answer: core.Answer, session_id: str | None = None, standalone_question: str | None = None) -> AskResponse:
        return cls.model_validate({**answer.to_dict(), "session_id": session_id, "standalone_question": standalone_question})

    def without_session(self) -> dict[str, Any]:
        """The answer without the session fields: what ``srekb ask --json`` prints."""
        return self.model_dump(exclude={"session_id", "standalone_question"})


class SearchResponse(BaseModel):
    question: str
    intent: str
    hits: list[HitOut]
    timings_ms: dict[str, float]

    @classmethod
    def of(cls, result: core.SearchResult) -> SearchResponse:
        return cls.model_validate(result.to_dict())


class ComponentHealth(BaseModel):
    status: Literal["ok", "degraded", "down", "off"]
    latency_ms: float | None = None
    detail: str | None = None


class HealthResponse(BaseModel):
    status: Literal["healthy", "unhealthy"]
    timestamp: str
    components: dict[str, ComponentHealth]
