"""The HTTP service: thin routes over one ``KnowledgeBase`` owned by the app's lifespan."""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.schemas import AskResponse, ComponentHealth, ErrorBody, HealthResponse, QuestionRequest, SearchResponse
from retrieval.errors import QueryError, SreKbError, StoreError
from retrieval.kb import KnowledgeBase, hit_to_dict
from retrieval.settings import Settings, get_settings

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


def create_app(settings: Settings | None = None, kb: KnowledgeBase | None = None) -> FastAPI:
    """The FastAPI app; it opens (and owns) the knowledge base unless one is passed in."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.kb = kb or KnowledgeBase(settings)
        app.state.settings = settings
        yield
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

    @app.post("/v1/ask", response_model=AskResponse, dependencies=[Auth])
    async def ask(body: QuestionRequest, kb: KB) -> dict[str, Any]:
        filters = body.filters.model_dump(exclude_defaults=True) if body.filters else None
        answer = await run_in_threadpool(kb.ask, body.question, body.k, filters or None)
        return answer.to_dict()

    @app.post("/v1/search", response_model=SearchResponse, dependencies=[Auth])
    async def search(body: QuestionRequest, kb: KB) -> dict[str, Any]:
        filters = body.filters.model_dump(exclude_defaults=True) if body.filters else None
        res = await run_in_threadpool(kb.search, body.question, body.k, filters or None)
        return {"question": res.question, "intent": res.intent.value, "hits": [hit_to_dict(h) for h in res.hits],
                "timings_ms": {k: round(v, 2) for k, v in res.timings_ms.items()}}

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


def _ms(t: float) -> float:
    return round((time.perf_counter() - t) * 1000, 2)
