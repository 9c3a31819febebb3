"""The HTTP service: thin routes over one ``KnowledgeBase`` owned by the app's lifespan."""

from __future__ import annotations

import json
import logging
import re
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, File, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.jobs import Job, JobRunner
from api.schemas import (
    AskResponse,
    ComponentHealth,
    ErrorBody,
    HealthResponse,
    IngestRequest,
    JobOut,
    QuestionRequest,
    SearchResponse,
    SourcePage,
    SourceText,
)
from api.sessions import SessionStore, rewrite
from retrieval.errors import QueryError, SreKbError, StoreError
from retrieval.kb import KnowledgeBase, hit_to_dict
from retrieval.settings import Settings, get_settings
from retrieval.types import SourceType

log = logging.getLogger(__name__)
bearer = HTTPBearer(auto_error=False)


class ApiError(Exception):
    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.status, self.kind, self.message = status, kind, message


def _error(status: int, kind: str, message: str, detail: Any = None) -> JSONResponse:
    body: dict[str, Any] = {"error": {"type": kind, "message": message}}
    if detail is not None:
        body["error"]["detail"] = detail
    return JSONResponse(status_code=status, content=body)


def get_kb(request: Request) -> KnowledgeBase:
    return request.app.state.kb  # type: ignore[no-any-return]


def require_key(request: Request, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> None:
    """When API keys are configured, every route but health needs ``Authorization: Bearer <key>``."""
    keys = request.app.state.settings.api_keys
    if not keys:
        return
    if creds is None or not any(secrets.compare_digest(creds.credentials, k) for k in keys):
        raise ApiError(401, "unauthorized", "missing or invalid API key: send 'Authorization: Bearer <key>'")


KB = Annotated[KnowledgeBase, Depends(get_kb)]
Auth = Depends(require_key)


class MetricsMiddleware:
    """Request count and latency per route template, as a plain ASGI wrapper (Starlette's
    ``BaseHTTPMiddleware`` costs a task and a stream per request)."""

    def __init__(self, app: Any, requests_total: Counter, latency: Histogram) -> None:
        self.app, self.requests_total, self.latency = app, requests_total, latency

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t = time.perf_counter()
        status = [500]

        async def send_status(message: Any) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            name = getattr(scope.get("route"), "path", "unmatched")
            self.requests_total.labels(name, scope["method"], str(status[0])).inc()
            self.latency.labels(name, scope["method"]).observe(time.perf_counter() - t)


def create_app(settings: Settings | None = None, kb: KnowledgeBase | None = None) -> FastAPI:
    """The FastAPI app; it opens (and owns) the knowledge base unless one is passed in."""
    settings = settings or get_settings()

    registry = CollectorRegistry()
    requests_total = Counter("srekb_http_requests_total", "HTTP requests", ["route", "method", "status"], registry=registry)
    latency = Histogram("srekb_http_request_seconds", "HTTP request latency", ["route", "method"], registry=registry,
                        buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
    ingest_files = Counter("srekb_ingest_files_total", "files processed by ingest jobs", ["outcome"], registry=registry)
    ingest_jobs = Counter("srekb_ingest_jobs_total", "ingest jobs", ["status"], registry=registry)
    chunks_gauge = Gauge("srekb_index_chunks", "chunks in the index", registry=registry)
    sources_gauge = Gauge("srekb_index_sources", "files in the index", registry=registry)

    def job_done(job: Job) -> None:
        ingest_jobs.labels(job.status).inc()
        for outcome in ("added", "updated", "unchanged", "deleted", "skipped"):
            ingest_files.labels(outcome).inc(len((job.report or {}).get(outcome, [])))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.kb = kb or KnowledgeBase(settings)
        app.state.settings = settings
        app.state.jobs = JobRunner(app.state.kb, on_done=job_done)
        app.state.sessions = SessionStore(data_dir(settings) / "sessions.sqlite", ttl_s=settings.session_ttl_s)
        yield
        app.state.jobs.shutdown()
        if kb is None:
            app.state.kb.close()

    app = FastAPI(title="sre-kb", version="0.1.0", description="Answers on-call questions with exact citations.", lifespan=lifespan,
                  responses={400: {"model": ErrorBody}, 401: {"model": ErrorBody}, 422: {"model": ErrorBody}})

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status, exc.kind, exc.message)

    @app.exception_handler(QueryError)
    async def _query_error(_: Request, exc: QueryError) -> JSONResponse:
        return _error(400, "invalid_query", str(exc))

    @app.exception_handler(StoreError)
    async def _store_error(_: Request, exc: StoreError) -> JSONResponse:
        return _error(503, "store_unavailable", str(exc))

    @app.exception_handler(SreKbError)
    async def _srekb_error(_: Request, exc: SreKbError) -> JSONResponse:
        return _error(400, "error", str(exc))

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        detail = [{"loc": list(e.get("loc", [])), "msg": e.get("msg", "")} for e in exc.errors()]
        return _error(422, "validation_error", "the request body does not match the schema", detail)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, "http_error", str(exc.detail))

    app.add_middleware(MetricsMiddleware, requests_total=requests_total, latency=latency)

    @app.post("/v1/ask", response_model=AskResponse, dependencies=[Auth],
              responses={200: {"content": {"text/event-stream": {}}, "description": "the answer, or SSE events when streaming"}})
    async def ask(body: QuestionRequest, kb: KB, request: Request) -> Any:
        filters = body.filters.model_dump(exclude_defaults=True) if body.filters else None
        question = body.question
        sessions: SessionStore = request.app.state.sessions
        if body.session_id:
            history = await run_in_threadpool(sessions.history, body.session_id)
            llm = getattr(kb.answerer, "_client", None)
            question = await run_in_threadpool(rewrite, body.question, history, llm, settings.gemini_model)
        if body.stream or "text/event-stream" in request.headers.get("accept", ""):
            if body.session_id:
                await run_in_threadpool(sessions.add, body.session_id, body.question, question)
            return StreamingResponse(_sse_answer(kb, question, body.k, filters or None), media_type="text/event-stream")
        answer = await run_in_threadpool(kb.ask, question, body.k, filters or None)
        out = answer.to_dict()
        if body.session_id:
            await run_in_threadpool(sessions.add, body.session_id, body.question, question)
            out["session_id"] = body.session_id
            out["standalone_question"] = question
        return out

    @app.post("/v1/search", response_model=SearchResponse, dependencies=[Auth])
    async def search(body: QuestionRequest, kb: KB) -> dict[str, Any]:
        filters = body.filters.model_dump(exclude_defaults=True) if body.filters else None
        res = await run_in_threadpool(kb.search, body.question, body.k, filters or None)
        return {"question": res.question, "intent": res.intent.value, "hits": [hit_to_dict(h) for h in res.hits],
                "timings_ms": {k: round(v, 2) for k, v in res.timings_ms.items()}}

    @app.post("/v1/ingest", response_model=JobOut, status_code=202, dependencies=[Auth])
    async def ingest(body: IngestRequest, request: Request) -> dict[str, Any]:
        roots = [Path(r) for r in settings.allowed_roots]
        if not roots:
            raise ApiError(403, "forbidden", "ingest by path is disabled: set SRE_KB_ALLOWED_ROOTS to the directories it may read")
        paths = [Path(p) for p in body.paths]
        for p in paths:
            try:
                real = p.resolve()
            except (OSError, ValueError) as exc:  # NUL bytes, over-long names, loops
                raise ApiError(400, "invalid_path", f"unusable path {str(p)[:200]!r}: {exc}") from exc
            if not any(real == r.resolve() or r.resolve() in real.parents for r in roots):
                raise ApiError(403, "forbidden", f"{p} is outside the allowed roots ({', '.join(map(str, roots))})")
            if not real.exists():
                raise ApiError(404, "not_found", f"no such file or directory: {p}")
        job = request.app.state.jobs.submit(paths, source_type=SourceType(body.source_type) if body.source_type else None,
                                            allowed_roots=roots, delete_missing=body.delete_missing)
        return job.to_dict()

    @app.post("/v1/ingest/upload", response_model=JobOut, status_code=202, dependencies=[Auth])
    async def ingest_upload(request: Request, files: Annotated[list[UploadFile], File(description="documents to ingest")]) -> dict[str, Any]:
        if len(files) > MAX_UPLOAD_FILES:
            raise ApiError(413, "too_large", f"at most {MAX_UPLOAD_FILES} files per upload")
        target = upload_dir(settings)
        target.mkdir(parents=True, exist_ok=True)
        saved: list[Path] = []
        total = sum(f.size or 0 for f in files)
        if total > settings.max_upload_bytes:
            raise ApiError(413, "too_large", f"the upload is {total:,} bytes, over the {settings.max_upload_bytes:,}-byte limit")
        for f in files:
            name = safe_name(f.filename or "")
            data = await f.read(settings.max_file_bytes + 1)
            if len(data) > settings.max_file_bytes:
                raise ApiError(413, "too_large", f"{name} is over the {settings.max_file_bytes:,}-byte limit")
            path = target / name
            path.write_bytes(data)
            saved.append(path)
        job = request.app.state.jobs.submit(saved, delete_missing=False)
        return job.to_dict()

    @app.get("/v1/jobs/{job_id}", response_model=JobOut, dependencies=[Auth])
    async def job_status(job_id: str, request: Request) -> dict[str, Any]:
        job = request.app.state.jobs.get(job_id)
        if job is None:
            raise ApiError(404, "not_found", f"no job {job_id!r}: job ids come from POST /v1/ingest")
        return job.to_dict()

    @app.get("/v1/sources", response_model=SourcePage, dependencies=[Auth])
    async def sources(kb: KB, offset: Annotated[int, Query(ge=0)] = 0, limit: Annotated[int, Query(ge=1, le=500)] = 50,
                      source_type: Annotated[str | None, Query(pattern="^(runbook|incident|config|doc)$")] = None) -> dict[str, Any]:
        records = sorted((await run_in_threadpool(kb.store.sources)).values(), key=lambda r: r.path)
        if source_type:
            records = [r for r in records if r.source_type.value == source_type]
        page = records[offset : offset + limit]
        return {"items": [_source_out(r) for r in page], "total": len(records), "offset": offset, "limit": limit}

    @app.get("/v1/sources/{source_id:path}", response_model=SourceText, dependencies=[Auth])
    async def source_text(source_id: str, kb: KB) -> dict[str, Any]:
        record = (await run_in_threadpool(kb.store.sources)).get(source_id)
        if record is None:
            raise ApiError(404, "not_found", f"no source {source_id!r}: list them with GET /v1/sources")
        return await run_in_threadpool(_source_text, kb, record)

    @app.delete("/v1/sources/{source_id:path}", status_code=200, dependencies=[Auth])
    async def delete_source(source_id: str, kb: KB) -> dict[str, Any]:
        if source_id not in await run_in_threadpool(kb.store.sources):
            raise ApiError(404, "not_found", f"no source {source_id!r}")
        await run_in_threadpool(kb.store.delete_path, source_id)
        await run_in_threadpool(kb.store.drop_source, source_id)
        kb.invalidate()
        return {"deleted": source_id}

    @app.get("/metrics", include_in_schema=False)
    async def metrics(kb: KB) -> Response:
        try:
            chunks_gauge.set(await run_in_threadpool(kb.store.count))
            sources_gauge.set(len(await run_in_threadpool(kb.store.sources)))
        except Exception as exc:  # the store being down must not hide the other metrics
            log.warning("index size unavailable for /metrics: %s", exc)
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/health", response_model=HealthResponse)
    async def health(kb: KB) -> dict[str, Any]:
        components: dict[str, ComponentHealth] = {}
        t = time.perf_counter()
        try:
            n = await run_in_threadpool(kb.store.count)
            components["store"] = ComponentHealth(status="ok", latency_ms=_ms(t), detail=f"{n} chunks")
        except Exception as exc:
            components["store"] = ComponentHealth(status="down", latency_ms=_ms(t), detail=str(exc))
        t = time.perf_counter()
        try:
            await run_in_threadpool(kb.embedder.embed_batch, ["health check"])
            components["embedding"] = ComponentHealth(status="ok", latency_ms=_ms(t), detail=kb.embedder.name)
        except Exception as exc:
            components["embedding"] = ComponentHealth(status="down", latency_ms=_ms(t), detail=str(exc))
        components["llm"] = ComponentHealth(
            status="ok" if settings.google_api_key else "off",
            detail=f"{settings.gemini_model} configured" if settings.google_api_key else "no key: extractive answers",
        )
        healthy = all(c.status in ("ok", "off") for c in components.values())
        return {"status": "healthy" if healthy else "unhealthy", "timestamp": datetime.now(UTC).isoformat(), "components": components}

    return app


MAX_UPLOAD_FILES = 50
STATIC = Path(__file__).parent / "static"


def data_dir(settings: Settings) -> Path:
    """Where the service keeps its own files: the store directory, or the cache with a server store."""
    return Path(settings.store) if not settings.qdrant_url else settings.model_cache / "service"


def upload_dir(settings: Settings) -> Path:
    return data_dir(settings) / "uploads"


def safe_name(name: str) -> str:
    """A file name from an upload, stripped of any directory part; refuses empty or hidden names."""
    base = re.sub(r"[^A-Za-z0-9._-]", "_", Path(name.replace("\\", "/")).name)
    if not base or base.startswith("."):
        raise ApiError(400, "invalid_upload", f"unusable file name {name!r}")
    return base


def _source_out(r: Any) -> dict[str, Any]:
    return {"id": r.path, "path": r.path, "root": r.root, "source_type": r.source_type.value, "sha256": r.sha256, "size": r.size,
            "chunks": r.chunks, "ingested_at": r.ingested_at, "title": r.title}


def _source_text(kb: KnowledgeBase, record: Any) -> dict[str, Any]:
    """The file's text with line numbers (from disk when it is still there, else from its chunks)."""
    by_line, from_file = kb.source_lines(record)
    return {"id": record.path, "path": record.path, "source_type": record.source_type.value, "title": record.title,
            "from_file": from_file, "lines": [{"n": n, "text": by_line[n]} for n in sorted(by_line)]}


async def _sse_answer(kb: KnowledgeBase, question: str, k: int | None, filters: dict[str, Any] | None) -> AsyncIterator[str]:
    """intent, hits, answer deltas, citations, done; an error event instead of a broken stream."""
    def event(name: str, data: Any) -> str:
        return f"event: {name}\ndata: {json.dumps(data)}\n\n"

    t0 = time.perf_counter()
    try:
        result = await run_in_threadpool(kb.search, question, k, filters)
        yield event("intent", {"intent": result.intent.value})
        yield event("hits", {"hits": [hit_to_dict(h) for h in result.hits]})
        answer = await run_in_threadpool(lambda: kb.answer(result, t0, filtered=filters is not None))
        for piece in re.split(r"(?<=[.!?\]])\s+", answer.text):
            if piece:
                yield event("delta", {"text": piece + " "})
        yield event("citations", {"citations": [c.to_dict() for c in answer.citations], "citation_block": answer.citation_block})
        done = answer.to_dict()
        yield event("done", {k: done[k] for k in ("mode", "abstained", "outcome", "answerability")} | {"timings_ms": answer.timings_ms})
    except SreKbError as exc:
        yield event("error", {"type": "invalid_query" if isinstance(exc, QueryError) else "error", "message": str(exc)})
    except Exception as exc:  # never a broken stream: the client gets an error event
        log.exception("streaming answer failed")
        yield event("error", {"type": "internal", "message": f"{type(exc).__name__}: {exc}"})


def _ms(t: float) -> float:
    return round((time.perf_counter() - t) * 1000, 2)
