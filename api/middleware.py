"""The ASGI wrappers around the app: a body-size limit, load shedding, and per-route metrics.

Plain ASGI callables rather than Starlette's ``BaseHTTPMiddleware``, which costs a task and a
stream per request."""

from __future__ import annotations

import json
import time
from typing import Any

from prometheus_client import Counter, Histogram


class _TooLarge(Exception):
    pass


class BodyLimit:
    """Refuses an over-long request body with a 413 while it streams in: FastAPI reads a whole
    multipart body before the route can look at its size (a 300 MB upload was read in full
    before its 413). ``Content-Length`` is checked first; a chunked body is counted as it arrives."""

    def __init__(self, app: Any, upload_limit: int, json_limit: int = 1 << 20) -> None:
        self.app, self.upload_limit, self.json_limit = app, upload_limit, json_limit

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.upload_limit if scope["path"].endswith("/ingest/upload") else self.json_limit
        declared = dict(scope.get("headers") or []).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            await self._refuse(send, limit)
            return
        seen = [0]
        refused = [False]

        async def counted() -> Any:
            message = await receive()
            if message["type"] == "http.request":
                seen[0] += len(message.get("body", b""))
                if seen[0] > limit:
                    raise _TooLarge
            return message

        async def tracked(message: Any) -> None:
            if seen[0] > limit:  # the app answered its parse error (FastAPI's form parser turns ours into a 400): a 413 instead
                if not refused[0]:
                    refused[0] = True
                    await self._refuse(send, limit)
                return
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except _TooLarge:
            if not refused[0]:
                refused[0] = True
                await self._refuse(send, limit)

    @staticmethod
    async def _refuse(send: Any, limit: int) -> None:
        body = json.dumps({"error": {"type": "too_large", "message": f"the request body is over the {limit:,}-byte limit: "
                                     "send less (uploads: SRE_KB_MAX_UPLOAD_BYTES)"}}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


class Admission:
    """Sheds load: beyond ``limit`` questions in progress (``/v1/ask``, ``/v1/search``) a new one
    gets an immediate 503 with ``Retry-After`` instead of a place in an unbounded queue.
    Measured without it, 200 unique questions/s offered to a 2-core server that answers about 80:
    the queue grew, clients gave up after 10 s while the server still worked through the
    requests they had abandoned, and it answered 26/s (4,957 of 6,000 timed out)."""

    LIMITED = frozenset({"/v1/ask", "/v1/search"})

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit, self.inflight = app, limit, 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] not in self.LIMITED:
            await self.app(scope, receive, send)
            return
        if self.inflight >= self.limit:  # one event loop: the count needs no lock
            body = json.dumps({"error": {"type": "overloaded", "message": f"{self.limit} questions are in progress, this server's "
                                         "limit (SRE_KB_MAX_INFLIGHT): retry in a second"}}).encode()
            await send({"type": "http.response.start", "status": 503, "headers": [
                (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), (b"retry-after", b"1")]})
            await send({"type": "http.response.body", "body": body})
            return
        self.inflight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.inflight -= 1


class MetricsMiddleware:
    """Request count and latency per route template, as a plain ASGI wrapper (Starlette's
    ``BaseHTTPMiddleware`` costs a task and a stream per request)."""

    def __init__(self, app: Any, requests_total: Counter, latency: Histogram) -> None:
        self.app, self.requests_total, self.latency = app, requests_total, latency

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t = time.perf_counter()
        status = [500]

        async def send_status(message: Any) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            name = getattr(scope.get("route"), "path", "unmatched")
            self.requests_total.labels(name, scope["method"], str(status[0])).inc()
            self.latency.labels(name, scope["method"]).observe(time.perf_counter() - t)
