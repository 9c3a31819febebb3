"""What the app holds while it runs, on ``app.state``: the knowledge base, the settings, the ingest
jobs, the follow-up sessions and the metrics. The lifespan builds it; ``srekb.api.deps`` reads it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from srekb.api.deps import get_kb
from srekb.api.jobs import Job, JobRunner
from srekb.api.metrics import ServiceMetrics
from srekb.api.sessions import SessionStore
from srekb.retrieval import KnowledgeBase, Settings


def data_dir(settings: Settings) -> Path:
    """Where the service keeps its own files: the store directory, or the cache with a server store."""
    return Path(settings.store) if not settings.qdrant_url else settings.model_cache / "service"


def upload_dir(settings: Settings) -> Path:
    return data_dir(settings) / "uploads"


def lifespan(settings: Settings, metrics: ServiceMetrics, kb: KnowledgeBase | None) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """Opens (and owns) the knowledge base unless one is given: passed in, or set as the override of
    ``get_kb`` (a test's). An override is the knowledge base of the whole app, its ingest jobs too,
    so the jobs never write to a second store the routes do not read."""

    def job_done(job: Job, status: str) -> None:
        metrics.ingest_jobs.labels(status).inc()
        uploads = upload_dir(settings).resolve()
        skipped = {s.get("path") for s in (job.report or {}).get("skipped", [])}
        for path in map(Path, job.paths):  # an uploaded file the ingest refused is not kept
            if path.name in skipped and path.parent.resolve() == uploads:
                path.unlink(missing_ok=True)
        for outcome in ("added", "updated", "unchanged", "deleted", "skipped"):
            metrics.ingest_files.labels(outcome).inc(len((job.report or {}).get(outcome, [])))

    @asynccontextmanager
    async def run(app: FastAPI) -> AsyncIterator[None]:
        override = app.dependency_overrides.get(get_kb)
        given = kb if kb is not None else (override() if override is not None else None)
        app.state.kb = given or KnowledgeBase(settings)
        app.state.jobs = JobRunner(app.state.kb, on_done=job_done, log_path=data_dir(settings) / "sessions.sqlite")
        app.state.sessions = SessionStore(data_dir(settings) / "sessions.sqlite", ttl_s=settings.session_ttl_s, max_sessions=settings.max_sessions)
        yield
        app.state.jobs.shutdown()
        if given is None:
            app.state.kb.close()

    return run
