"""The one error shape of the HTTP API, ``{"error": {"type", "message"[, "detail"]}}``, and the
handlers that give it to every failure: a route's ``ApiError``, the core library's errors, a body
that does not match its schema, and Starlette's own 404/405."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from srekb.retrieval import QueryError, SreKbError, StoreError
from starlette.exceptions import HTTPException as StarletteHTTPException


class ApiError(Exception):
    """A refusal a route decides on: its status, ``error.type`` and a message that says how to fix it."""

    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.status, self.kind, self.message = status, kind, message


def error_response(status: int, kind: str, message: str, detail: Any = None) -> JSONResponse:
    body: dict[str, Any] = {"error": {"type": kind, "message": message}}
    if detail is not None:
        body["error"]["detail"] = detail
    return JSONResponse(status_code=status, content=body)


async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
    return error_response(exc.status, exc.kind, exc.message)


async def _query_error(_: Request, exc: QueryError) -> JSONResponse:
    return error_response(400, "invalid_query", str(exc))


async def _store_error(_: Request, exc: StoreError) -> JSONResponse:
    return error_response(503, "store_unavailable", str(exc))


async def _srekb_error(_: Request, exc: SreKbError) -> JSONResponse:
    return error_response(400, "error", str(exc))


async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
    detail = [{"loc": list(e.get("loc", [])), "msg": e.get("msg", "")} for e in exc.errors()]
    return error_response(422, "validation_error", "the request body does not match the schema", detail)


async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
    response = error_response(exc.status_code, "http_error", str(exc.detail))
    response.headers.update(exc.headers or {})  # a 405 keeps its Allow header
    return response


# Starlette picks the handler of the closest class in an exception's MRO, so QueryError and
# StoreError win over their root SreKbError whatever the order here.
EXCEPTION_HANDLERS: dict[int | type[Exception], Callable[[Request, Any], Coroutine[Any, Any, Response]]] = {
    ApiError: _api_error,
    QueryError: _query_error,
    StoreError: _store_error,
    SreKbError: _srekb_error,
    RequestValidationError: _validation,
    StarletteHTTPException: _http,
}
