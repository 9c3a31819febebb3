"""The HTTP service: thin routes over one ``KnowledgeBase`` owned by the app's lifespan."""

from __future__ import annotations

import hashlib
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
from srekb.api.jobs import Job, JobRunner
from srekb.api.schemas import (
    AskResponse,
    ComponentHealth,
    ErrorBody,
    HealthResponse,
    IngestRequest,
    JobOut,
    QuestionRequest,
    SearchResponse,
    SessionOut,
    SourcePage,
    SourceText,
)
from srekb.api.sessions import SessionStore, UnknownSession, rewrite
from srekb.retrieval.errors import QueryError, SreKbError, StoreDamagedError, StoreError
from srekb.retrieval.kb import KnowledgeBase, hit_to_dict
from srekb.retrieval.settings import Settings, get_settings
from srekb.retrieval.store import probe
from srekb.retrieval.types import SourceType
from starlette.exceptions import HTTPException as StarletteHTTPException

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


def _token(creds: HTTPAuthorizationCredentials) -> bytes:
    """The bearer token as UTF-8 bytes: compare_digest refuses a str with non-ASCII characters, and
    any client can send one (a 500 and a traceback per request, before any key is checked)."""
    return creds.credentials.encode("utf-8", "surrogateescape")


def require_key(request: Request, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> None:
    """When API keys are configured, every route but health needs ``Authorization: Bearer <key>``."""
    keys = request.app.state.settings.api_keys
    if not keys:
        return
    if creds is None or not any(secrets.compare_digest(_token(creds), k.encode("utf-8")) for k in keys):
        raise ApiError(401, "unauthorized", "missing or invalid API key: send 'Authorization: Bearer <key>'")


def session_owner(creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> str:
    """Who a session belongs to: a digest of the caller's API key ('' when the service has none)."""
    if creds is None:
        return ""
    return hashlib.sha256(_token(creds)).hexdigest()[:32]


KB = Annotated[KnowledgeBase, Depends(get_kb)]
Owner = Annotated[str, Depends(session_owner)]
Auth = Depends(require_key)


class _TooLarge(Exception):
    pass


class BodyLimit:
    """Refuses an over-long request body with a 413 while it streams in: FastAPI reads a whole
    multipart body before the route can look at its size (a 300 MB upload was read in full
    before its 413). ``Content-Length`` is checked first; a chunked body is counted as it arrives."""

    def __init__(self, app: Any, upload_limit: int, json_limit: int = 1 << 20) -> None:
        self.app, self.upload_limit, self.json_limit = app, upload_limit, json_limit

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.upload_limit if scope["path"].endswith("/ingest/upload") else self.json_limit
        declared = dict(scope.get("headers") or []).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            await self._refuse(send, limit)
            return
        seen = [0]
        refused = [False]

        async def counted() -> Any:
            message = await receive()
            if message["type"] == "http.request":
                seen[0] += len(message.get("body", b""))
                if seen[0] > limit:
                    raise _TooLarge
            return message

        async def tracked(message: Any) -> None:
            if seen[0] > limit:  # the app answered its parse error (FastAPI's form parser turns ours into a 400): a 413 instead
                if not refused[0]:
                    refused[0] = True
                    await self._refuse(send, limit)
                return
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except _TooLarge:
            if not refused[0]:
                refused[0] = True
                await self._refuse(send, limit)

    @staticmethod
    async def _refuse(send: Any, limit: int) -> None:
        body = json.dumps({"error": {"type": "too_large", "message": f"the request body is over the {limit:,}-byte limit: "
                                     "send less (uploads: SRE_KB_MAX_UPLOAD_BYTES)"}}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


class Admission:
    """Sheds load: beyond ``limit`` questions in progress (``/v1/ask``, ``/v1/search``) a new one
    gets an immediate 503 with ``Retry-After`` instead of a place in an unbounded queue.
    Measured without it, 200 unique questions/s offered to a 2-core server that answers about 80:
    the queue grew, clients gave up after 10 s while the server still worked through the
    requests they had abandoned, and it answered 26/s (4,957 of 6,000 timed out)."""

    LIMITED = frozenset({"/v1/ask", "/v1/search"})

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit, self.inflight = app, limit, 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] not in self.LIMITED:
            await self.app(scope, receive, send)
            return
        if self.inflight >= self.limit:  # one event loop: the count needs no lock
            body = json.dumps({"error": {"type": "overloaded", "message": f"{self.limit} questions are in progress, this server's "
                                         "limit (SRE_KB_MAX_INFLIGHT): retry in a second"}}).encode()
            await send({"type": "http.response.start", "status": 503, "headers": [
                (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), (b"retry-after", b"1")]})
            await send({"type": "http.response.body", "body": body})
            return
        self.inflight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.inflight -= 1


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

    def job_done(job: Job, status: str) -> None:
        ingest_jobs.labels(status).inc()
        uploads = upload_dir(settings).resolve()
        skipped = {s.get("path") for s in (job.report or {}).get("skipped", [])}
        for path in map(Path, job.paths):  # an uploaded file the ingest refused is not kept
            if path.name in skipped and path.parent.resolve() == uploads:
                path.unlink(missing_ok=True)
        for outcome in ("added", "updated", "unchanged", "deleted", "skipped"):
            ingest_files.labels(outcome).inc(len((job.report or {}).get(outcome, [])))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.kb = kb or KnowledgeBase(settings)
        app.state.settings = settings
        app.state.jobs = JobRunner(app.state.kb, on_done=job_done, log_path=data_dir(settings) / "sessions.sqlite")
        app.state.sessions = SessionStore(data_dir(settings) / "sessions.sqlite", ttl_s=settings.session_ttl_s, max_sessions=settings.max_sessions)
        yield
        app.state.jobs.shutdown()
        if kb is None:
            app.state.kb.close()

    app = FastAPI(title="sre-kb", version="0.1.0", description="Answers on-call questions with exact citations.", lifespan=lifespan,
                  # Every error has the one ErrorBody shape; 413 comes from BodyLimit, 503 from a store that fails.
                  responses={code: {"model": ErrorBody} for code in (400, 401, 403, 404, 409, 413, 422, 503)})

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
        response = _error(exc.status_code, "http_error", str(exc.detail))
        response.headers.update(exc.headers or {})  # a 405 keeps its Allow header
        return response

    app.add_middleware(BodyLimit, upload_limit=settings.max_upload_bytes + (1 << 20))  # + multipart framing
    app.add_middleware(Admission, limit=settings.max_inflight)
    app.add_middleware(MetricsMiddleware, requests_total=requests_total, latency=latency)

    @app.post("/v1/ask", response_model=AskResponse, dependencies=[Auth],
              responses={200: {"content": {"text/event-stream": {}}, "description": "the answer, or SSE events when streaming"}})
    async def ask(body: QuestionRequest, kb: KB, request: Request, owner: Owner) -> Any:
        filters = body.filters.model_dump(exclude_defaults=True) if body.filters else None
        question = body.question
        sessions: SessionStore = request.app.state.sessions
        if body.session_id:
            try:
                history = await run_in_threadpool(sessions.history, body.session_id, owner)
            except UnknownSession:
                raise ApiError(404, "unknown_session", "no live session with that id for this API key (expired, evicted or never "
                               "issued): start one with POST /v1/sessions and send its session_id") from None
            llm = getattr(kb.answerer, "_client", None)
            question = await run_in_threadpool(rewrite, body.question, history, llm, settings.gemini_model)
        if body.stream or "text/event-stream" in request.headers.get("accept", ""):
            if body.session_id:
                await run_in_threadpool(sessions.add, body.session_id, owner, body.question, question)
            session = {"session_id": body.session_id, "standalone_question": question} if body.session_id else {}
            return StreamingResponse(_sse_answer(kb, question, body.k, filters or None, session), media_type="text/event-stream")
        answer = await run_in_threadpool(kb.ask, question, body.k, filters or None)
        out = answer.to_dict()
        if body.session_id:
            await run_in_threadpool(sessions.add, body.session_id, owner, body.question, question)
            out["session_id"] = body.session_id
            out["standalone_question"] = question
        return out

    @app.post("/v1/sessions", response_model=SessionOut, status_code=201, dependencies=[Auth])
    async def new_session(request: Request, owner: Owner) -> dict[str, Any]:
        """Start a follow-up session: send its ``session_id`` with each question of the conversation."""
        sid = await run_in_threadpool(request.app.state.sessions.create, owner)
        return {"session_id": sid, "idle_expiry_s": settings.session_ttl_s}

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
                inside = any(real == r.resolve() or r.resolve() in real.parents for r in roots)
                exists = inside and real.exists()
            except (OSError, ValueError, RuntimeError) as exc:  # NUL bytes, over-long names, symlink loops (RuntimeError before 3.13)
                raise ApiError(400, "invalid_path", f"unusable path {str(p)[:200]!r}: {str(exc)[:200]}") from exc
            if not inside:
                raise ApiError(403, "forbidden", f"{str(p)[:200]} is outside the allowed roots ({', '.join(map(str, roots))})")
            if not exists:
                raise ApiError(404, "not_found", f"no such file or directory: {str(p)[:200]}")
        job = request.app.state.jobs.submit(paths, source_type=SourceType(body.source_type) if body.source_type else None,
                                            allowed_roots=roots, delete_missing=body.delete_missing)
        return job.to_dict()

    @app.post("/v1/ingest/upload", response_model=JobOut, status_code=202, dependencies=[Auth])
    async def ingest_upload(request: Request, kb: KB, files: Annotated[list[UploadFile], File(description="documents to ingest")]) -> dict[str, Any]:
        if len(files) > MAX_UPLOAD_FILES:
            raise ApiError(413, "too_large", f"at most {MAX_UPLOAD_FILES} files per upload")
        target = upload_dir(settings)
        target.mkdir(parents=True, exist_ok=True)
        total = sum(f.size or 0 for f in files)
        if total > settings.max_upload_bytes:
            raise ApiError(413, "too_large", f"the upload is {total:,} bytes, over the {settings.max_upload_bytes:,}-byte limit")
        names = [safe_name(f.filename or "") for f in files]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:  # the last would silently win, and the report would say "added" twice
            raise ApiError(400, "invalid_upload", f"two files named {twice[0]} in one upload: rename one, or upload them separately")
        known = await run_in_threadpool(kb.store.sources)
        for name in names:
            rec = known.get(name)
            if rec is not None and Path(rec.root).resolve() != target.resolve():
                raise ApiError(409, "conflict", f"{name} is already ingested from {rec.root}: an upload of the same name would replace it; "
                               "rename the upload, or re-ingest that folder")
        blobs = []
        for f, name in zip(files, names, strict=True):
            data = await f.read(settings.max_file_bytes + 1)
            if len(data) > settings.max_file_bytes:
                raise ApiError(413, "too_large", f"{name} is over the {settings.max_file_bytes:,}-byte limit")
            blobs.append((target / name, data))
        for path, data in blobs:  # written only once the whole upload is accepted: a refused upload leaves nothing on disk
            path.write_bytes(data)
        job = request.app.state.jobs.submit([p for p, _ in blobs], delete_missing=False)
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
        try:  # a count alone said healthy for a store whose vector file was truncated (every search failed)
            n = await run_in_threadpool(lambda: probe(kb.store, settings.qdrant_url or settings.store, server=bool(settings.qdrant_url)))
            components["store"] = ComponentHealth(status="ok", latency_ms=_ms(t), detail=f"{n} chunks")
        except StoreDamagedError as exc:
            components["store"] = ComponentHealth(status="degraded", latency_ms=_ms(t), detail=str(exc))
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


MAX_NAME = 255  # bytes in a file name on every common file system


def safe_name(name: str) -> str:
    """A file name from an upload, stripped of any directory part; refuses empty, hidden or over-long names."""
    base = re.sub(r"[^A-Za-z0-9._-]", "_", Path(name.replace("\\", "/")).name)
    if not base or base.startswith("."):
        raise ApiError(400, "invalid_upload", f"unusable file name {name[:200]!r}")
    if len(base) > MAX_NAME:
        raise ApiError(400, "invalid_upload", f"the file name is {len(base)} characters, over the {MAX_NAME}-character limit: rename it")
    return base


def _source_out(r: Any) -> dict[str, Any]:
    return {"id": r.path, "path": r.path, "root": r.root, "source_type": r.source_type.value, "sha256": r.sha256, "size": r.size,
            "chunks": r.chunks, "ingested_at": r.ingested_at, "title": r.title}


def _source_text(kb: KnowledgeBase, record: Any) -> dict[str, Any]:
    """The indexed text with line numbers (from disk while the file is unchanged, else from its chunks)."""
    by_line, from_file, changed = kb.source_lines(record)
    return {"id": record.path, "path": record.path, "source_type": record.source_type.value, "title": record.title,
            "from_file": from_file, "changed_since_ingest": changed, "lines": [{"n": n, "text": by_line[n]} for n in sorted(by_line)]}


async def _sse_answer(kb: KnowledgeBase, question: str, k: int | None, filters: dict[str, Any] | None,
                      session: dict[str, str] | None = None) -> AsyncIterator[str]:
    """intent, hits, answer deltas, citations, done (with the session's id and the standalone
    question, as the JSON answer has them); an error event instead of a broken stream."""
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
        yield event("done", {k: done[k] for k in ("mode", "abstained", "outcome", "answerability")} | {"timings_ms": answer.timings_ms}
                    | (session or {}))
    except SreKbError as exc:
        yield event("error", {"type": "invalid_query" if isinstance(exc, QueryError) else "error", "message": str(exc)})
    except Exception as exc:  # never a broken stream: the client gets an error event
        log.exception("streaming answer failed")
        yield event("error", {"type": "internal", "message": f"{type(exc).__name__}: {exc}"})


def _ms(t: float) -> float:
    return round((time.perf_counter() - t) * 1000, 2)
