"""``GET /metrics``: Prometheus text, with the index size read at scrape time."""

from __future__ import annotations

import logging

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from srekb.api.deps import KB, Metrics

log = logging.getLogger(__name__)
router = APIRouter()


@router.get("/metrics", include_in_schema=False)
async def metrics(kb: KB, service: Metrics) -> Response:
    try:
        service.chunks.set(await run_in_threadpool(kb.store.count))
        service.sources.set(len(await run_in_threadpool(kb.store.sources)))
    except Exception as exc:  # the store being down must not hide the other metrics
        log.warning("index size unavailable for /metrics: %s", exc)
    return Response(generate_latest(service.registry), media_type=CONTENT_TYPE_LATEST)
