"""``/healthz`` (the process answers) and ``/health`` (store, embedding model and LLM, each probed). Neither needs a key."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from srekb.api.deps import KB, AppSettings
from srekb.api.schemas import ComponentHealth, HealthResponse
from srekb.retrieval.errors import StoreDamagedError
from srekb.retrieval.store import probe

router = APIRouter()


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/health", response_model=HealthResponse)
async def health(kb: KB, settings: AppSettings) -> dict[str, Any]:
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


def _ms(t: float) -> float:
    return round((time.perf_counter() - t) * 1000, 2)
