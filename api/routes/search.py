"""``POST /v1/search``: retrieval only, the ranked chunks with their scores."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from srekb.api.deps import KB, Auth
from srekb.api.schemas import QuestionRequest, SearchResponse

router = APIRouter(dependencies=[Auth])


@router.post("/v1/search", response_model=SearchResponse)
async def search(body: QuestionRequest, kb: KB) -> SearchResponse:
    filters = body.filters.model_dump(exclude_defaults=True) if body.filters else None
    return SearchResponse.of(await run_in_threadpool(kb.search, body.question, body.k, filters or None))
