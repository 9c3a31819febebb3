"""The HTTP service: thin routes (``srekb.api.routes``) over one ``KnowledgeBase`` owned by the app's lifespan."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from srekb.api.errors import EXCEPTION_HANDLERS
from srekb.api.metrics import ServiceMetrics
from srekb.api.middleware import Admission, BodyLimit, MetricsMiddleware
from srekb.api.routes import ask, health, ingest, metrics, search, sessions, sources, web
from srekb.api.schemas import ErrorBody
from srekb.api.state import lifespan
from srekb.retrieval import KnowledgeBase, Settings, get_settings


def create_app(settings: Settings | None = None, kb: KnowledgeBase | None = None) -> FastAPI:
    """The FastAPI app; it opens (and owns) the knowledge base unless one is passed in or set as
    the override of ``srekb.api.deps.get_kb``."""
    settings = settings or get_settings()
    service = ServiceMetrics()
    app = FastAPI(title="sre-kb", version="0.1.0", description="Answers on-call questions with exact citations.",
                  lifespan=lifespan(settings, service, kb), exception_handlers=EXCEPTION_HANDLERS,
                  # Every error has the one ErrorBody shape; 413 comes from BodyLimit, 503 from a store that fails.
                  responses={code: {"model": ErrorBody} for code in (400, 401, 403, 404, 409, 413, 422, 503)})
    app.state.settings, app.state.metrics = settings, service
    app.add_middleware(BodyLimit, upload_limit=settings.max_upload_bytes + (1 << 20))  # + multipart framing
    app.add_middleware(Admission, limit=settings.max_inflight)
    app.add_middleware(MetricsMiddleware, requests_total=service.requests_total, latency=service.latency)
    # This order is the order of the paths in the OpenAPI document.
    for routes in (ask, sessions, search, ingest, sources, metrics, web):
        app.include_router(routes.router)
    app.mount("/static", StaticFiles(directory=web.STATIC), name="static")
    app.include_router(health.router)
    generate = app.openapi
    app.openapi = lambda: ask.document_events(generate())  # type: ignore[method-assign]  # + the SSE event payloads
    return app
