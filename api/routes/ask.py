"""``POST /v1/ask``: an answer with citations, as JSON or as Server-Sent Events."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from pydantic.json_schema import models_json_schema
from srekb.api.deps import KB, Auth, Owner, Sessions
from srekb.api.errors import ApiError
from srekb.api.schemas import AskResponse, Citation, HitOut, QuestionRequest
from srekb.api.sessions import UnknownSession, rewrite
from srekb.retrieval import Answer, KnowledgeBase, QueryError, SreKbError

log = logging.getLogger(__name__)
router = APIRouter(dependencies=[Auth])


class IntentEvent(BaseModel):
    intent: str


class HitsEvent(BaseModel):
    hits: list[HitOut]


class DeltaEvent(BaseModel):
    text: str = Field(description="the next piece of the answer as the model writes it (Markdown); an extractive answer "
                      "comes as one delta per Markdown block")


class CitationsEvent(BaseModel):
    citations: list[Citation]
    citation_block: str


class DoneEvent(AskResponse):
    """The whole answer, the same fields as the JSON one (timings unrounded). Its ``answer`` is the
    checked text: it replaces the deltas, which differ when a marker was corrected, an unsupported
    sentence removed, or a model failed mid-reply (the answer is then extractive)."""


class ErrorEvent(BaseModel):
    type: Literal["invalid_query", "error", "internal"]
    message: str


EVENTS = {"intent": IntentEvent, "hits": HitsEvent, "delta": DeltaEvent, "citations": CitationsEvent, "done": DoneEvent,
          "error": ErrorEvent}
SSE_DOC = ("With `stream: true` (or `Accept: text/event-stream`): Server-Sent Events, each `event: NAME` with one JSON `data:` "
           "line, in this order: " + ", ".join(f"`{name}` ({model.__name__})" for name, model in EVENTS.items()) +
           ". `delta` repeats; `error` replaces the rest when the question fails.")


@router.post("/v1/ask", response_model=AskResponse,
             responses={200: {"content": {"text/event-stream": {}}, "description": "the answer (JSON), or SSE events when streaming"}},
             description="An answer with citations, or an abstention listing the nearest sources.\n\n" + SSE_DOC)
async def ask(body: QuestionRequest, kb: KB, request: Request, owner: Owner, sessions: Sessions) -> Any:
    filters = body.filters.model_dump(exclude_defaults=True) if body.filters else None
    question = body.question
    if body.session_id:
        try:
            history = await run_in_threadpool(sessions.history, body.session_id, owner)
        except UnknownSession:
            raise ApiError(404, "unknown_session", "no live session with that id for this API key (expired, evicted or never "
                           "issued): start one with POST /v1/sessions and send its session_id") from None
        question = await run_in_threadpool(rewrite, body.question, history, kb.llm_for("sessions"))
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


def document_events(openapi: dict[str, Any]) -> dict[str, Any]:
    """Put the SSE event payloads in the OpenAPI document (FastAPI lists only the JSON models)."""
    schemas = openapi.setdefault("components", {}).setdefault("schemas", {})
    _, defs = models_json_schema([(m, "serialization") for m in EVENTS.values()], ref_template="#/components/schemas/{model}")
    for name, schema in defs.get("$defs", {}).items():
        schemas.setdefault(name, schema)
    sse = openapi["paths"]["/v1/ask"]["post"]["responses"]["200"]["content"]["text/event-stream"]
    sse["schema"] = {"oneOf": [{"$ref": f"#/components/schemas/{m.__name__}"} for m in EVENTS.values()]}
    return openapi


async def _sse_answer(kb: KnowledgeBase, question: str, k: int | None, filters: dict[str, Any] | None,
                      session: dict[str, str] | None = None) -> AsyncIterator[str]:
    """intent, hits, answer deltas (the model's tokens as they arrive), citations, done (the whole
    answer, with the session's id and the standalone question); an error event instead of a broken stream."""
    def event(name: str, data: BaseModel) -> str:
        return f"event: {name}\ndata: {data.model_dump_json()}\n\n"

    t0 = time.perf_counter()
    try:
        result = await run_in_threadpool(kb.search, question, k, filters)
        yield event("intent", IntentEvent(intent=result.intent.value))
        yield event("hits", HitsEvent(hits=[HitOut.of(h) for h in result.hits]))
        loop = asyncio.get_running_loop()
        deltas: asyncio.Queue[str | None] = asyncio.Queue()
        streamed = False

        def on_delta(text: str) -> None:
            loop.call_soon_threadsafe(deltas.put_nowait, text)

        def write() -> Answer:
            try:
                return kb.answer(result, t0, filtered=filters is not None, on_delta=on_delta)
            finally:
                loop.call_soon_threadsafe(deltas.put_nowait, None)

        job = asyncio.ensure_future(run_in_threadpool(write))
        while (piece := await deltas.get()) is not None:
            streamed = True
            yield event("delta", DeltaEvent(text=piece))
        answer = await job
        if not streamed:  # an extractive (or abstained) answer: its blocks (the caveat, then each part), in order
            for block in answer.text.split("\n\n"):
                yield event("delta", DeltaEvent(text=block + "\n\n"))
        wire = AskResponse.of(answer, **session) if session else AskResponse.of(answer)
        yield event("citations", CitationsEvent(citations=wire.citations, citation_block=wire.citation_block))
        done = DoneEvent.model_validate(wire.model_dump() | {"timings_ms": answer.timings_ms})
        yield event("done", done)
    except SreKbError as exc:
        yield event("error", ErrorEvent(type="invalid_query" if isinstance(exc, QueryError) else "error", message=str(exc)))
    except Exception as exc:  # never a broken stream: the client gets an error event
        log.exception("streaming answer failed")
        yield event("error", ErrorEvent(type="internal", message=f"{type(exc).__name__}: {exc}"))
