"""The indexed files: list them, read one's text with line numbers, delete one."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from srekb.api.deps import KB, Auth
from srekb.api.errors import ApiError
from srekb.api.schemas import SourceOut, SourcePage, SourceText
from srekb.retrieval import KnowledgeBase, SourceRecord

router = APIRouter(dependencies=[Auth])


@router.get("/v1/sources", response_model=SourcePage)
async def sources(kb: KB, offset: Annotated[int, Query(ge=0)] = 0, limit: Annotated[int, Query(ge=1, le=500)] = 50,
                  source_type: Annotated[str | None, Query(pattern="^(runbook|incident|config|doc)$")] = None) -> dict[str, Any]:
    records = sorted((await run_in_threadpool(kb.store.sources)).values(), key=lambda r: r.path)
    if source_type:
        records = [r for r in records if r.source_type.value == source_type]
    page = records[offset : offset + limit]
    return {"items": [SourceOut.of(r) for r in page], "total": len(records), "offset": offset, "limit": limit}


@router.get("/v1/sources/{source_id:path}", response_model=SourceText)
async def source_text(source_id: str, kb: KB) -> SourceText:
    record = (await run_in_threadpool(kb.store.sources)).get(source_id)
    if record is None:
        raise ApiError(404, "not_found", f"no source {source_id!r}: list them with GET /v1/sources")
    return await run_in_threadpool(_source_text, kb, record)


@router.delete("/v1/sources/{source_id:path}", status_code=200)
async def delete_source(source_id: str, kb: KB) -> dict[str, Any]:
    if source_id not in await run_in_threadpool(kb.store.sources):
        raise ApiError(404, "not_found", f"no source {source_id!r}")
    await run_in_threadpool(kb.store.delete_path, source_id)
    await run_in_threadpool(kb.store.drop_source, source_id)
    kb.invalidate()
    return {"deleted": source_id}


def _source_text(kb: KnowledgeBase, record: SourceRecord) -> SourceText:
    """The indexed text with line numbers (from disk while the file is unchanged, else from its chunks)."""
    by_line, from_file, changed = kb.source_lines(record)
    return SourceText.of(record, by_line, from_file, changed)
