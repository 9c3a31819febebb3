"""``POST /v1/ask``: an answer with citations, as JSON or as Server-Sent Events."""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from srekb.api.deps import KB, Auth, Owner, Sessions
from srekb.api.errors import ApiError
from srekb.api.schemas import AskResponse, HitOut, QuestionRequest
from srekb.api.sessions import UnknownSession, rewrite
from srekb.retrieval import KnowledgeBase, QueryError, SreKbError

log = logging.getLogger(__name__)
router = APIRouter(dependencies=[Auth])


@router.post("/v1/ask", response_model=AskResponse,
             responses={200: {"content": {"text/event-stream": {}}, "description": "the answer, or SSE events when streaming"}})
async def ask(body: QuestionRequest, kb: KB, request: Request, owner: Owner, sessions: Sessions) -> Any:
    filters = body.filters.model_dump(exclude_defaults=True) if body.filters else None
    question = body.question
    if body.session_id:
        try:
            history = await run_in_threadpool(sessions.history, body.session_id, owner)
        except UnknownSession:
            raise ApiError(404, "unknown_session", "no live session with that id for this API key (expired, evicted or never "
                           "issued): start one with POST /v1/sessions and send its session_id") from None
        question = await run_in_threadpool(rewrite, body.question, history, kb.llm)
    if body.stream or "text/event-stream" in request.headers.get("accept", ""):
        if body.session_id:
            await run_in_threadpool(sessions.add, body.session_id, owner, body.question, question)
        session = {"session_id": body.session_id, "standalone_question": question} if body.session_id else {}
        return StreamingResponse(_sse_answer(kb, question, body.k, filters or None, session), media_type="text/event-stream")
    answer = await run_in_threadpool(kb.ask, question, body.k, filters or None)
    if not body.session_id:
        return AskResponse.of(answer)
    await run_in_threadpool(sessions.add, body.session_id, owner, body.question, question)
    return AskResponse.of(answer, session_id=body.session_id, standalone_question=question)


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
        yield event("hits", {"hits": [HitOut.of(h).model_dump() for h in result.hits]})
        answer = await run_in_threadpool(lambda: kb.answer(result, t0, filtered=filters is not None))
        for piece in re.split(r"(?<=[.!?\]])\s+", answer.text):
            if piece:
                yield event("delta", {"text": piece + " "})
        wire = AskResponse.of(answer)
        yield event("citations", {"citations": [c.model_dump() for c in wire.citations], "citation_block": wire.citation_block})
        # The done event carries the timings unrounded (the JSON answer rounds them to 0.01 ms).
        yield event("done", wire.model_dump(include={"mode", "abstained", "outcome", "answerability"}) | {"timings_ms": answer.timings_ms}
                    | (session or {}))
    except SreKbError as exc:
        yield event("error", {"type": "invalid_query" if isinstance(exc, QueryError) else "error", "message": str(exc)})
    except Exception as exc:  # never a broken stream: the client gets an error event
        log.exception("streaming answer failed")
        yield event("error", {"type": "internal", "message": f"{type(exc).__name__}: {exc}"})
