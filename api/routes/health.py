"""``/healthz`` (the process answers) and ``/health`` (store, embedding model and LLM, each probed). Neither needs a key."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from srekb.api.deps import KB, AppSettings
from srekb.api.schemas import ComponentHealth, HealthResponse
from srekb.retrieval import KnowledgeBase
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
    components["llm"] = await run_in_threadpool(_llm_health, kb)
    # A model that is down costs answers their prose, not their citations: they come back
    # extractive, so it degrades the service without making it unhealthy.
    healthy = all(c.status in ("ok", "off") for name, c in components.items() if name != "llm")
    return {"status": "healthy" if healthy else "unhealthy", "timestamp": datetime.now(UTC).isoformat(), "components": components}


def _llm_health(kb: KnowledgeBase) -> ComponentHealth:
    """The answer model's backends, each probed with a one-word completion (cached a minute)."""
    chain = kb.llm_for("answer")
    if chain is None:
        return ComponentHealth(status="off", detail="no model configured: extractive answers (set GOOGLE_API_KEY or SRE_KB_OPENAI_BASE_URL)")
    probes = chain.probe()
    ok = [name for name, p in probes.items() if p.status == "ok"]
    detail = "; ".join(f"{name}: {p.status} ({p.detail})" for name, p in probes.items())
    latency = next((p.latency_ms for p in probes.values() if p.status == "ok"), None)
    status = "ok" if len(ok) == len(probes) else "degraded" if ok else "down"
    return ComponentHealth(status=status, latency_ms=latency, detail=detail)


def _ms(t: float) -> float:
    return round((time.perf_counter() - t) * 1000, 2)
