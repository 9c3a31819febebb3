"""``POST /v1/sessions``: a follow-up session for a conversation of questions."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from srekb.api.deps import AppSettings, Auth, Owner, Sessions
from srekb.api.schemas import SessionOut

router = APIRouter(dependencies=[Auth])


@router.post("/v1/sessions", response_model=SessionOut, status_code=201)
async def new_session(owner: Owner, sessions: Sessions, settings: AppSettings) -> dict[str, Any]:
    """Start a follow-up session: send its ``session_id`` with each question of the conversation."""
    sid = await run_in_threadpool(sessions.create, owner)
    return {"session_id": sid, "idle_expiry_s": settings.session_ttl_s}
