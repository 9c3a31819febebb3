"""One local model server for the LLM tests: it speaks Gemini's REST API (``generateContent``,
``streamGenerateContent?alt=sse``) and OpenAI's chat completions (``/v1/chat/completions``, JSON
or ``stream: true`` SSE ending in ``data: [DONE]``), so both real SDKs run against it on
127.0.0.1 and nothing leaves the machine.

    with LLMStub() as stub:
        GeminiLLM("key", "gemini-stub", base_url=stub.url)      # Gemini: the server's root
        OpenAILLM("stub-model", base_url=stub.openai_url)        # OpenAI: its /v1
        stub.behave("429")                                       # per test: see BEHAVIOURS

Every request is recorded (``requests``) before the behaviour acts, so a test can tell a call
that timed out from one a circuit breaker never made.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

BEHAVIOURS = ("ok", "slow", "hang", "429", "500", "empty", "broken")
"""ok: the reply (streamed as ``tokens`` when asked to stream); slow: the reply after ``delay_s``
(longer than a client's timeout); hang: no reply until the stub closes; 429 / 500: the API's own
error JSON; empty: a well-formed reply with no text; broken: a streamed reply that breaks off after
its first delta (the next event is not JSON), a plain reply that is not JSON."""

ERROR_BODIES: dict[str, dict[int, dict[str, Any]]] = {
    "gemini": {
        429: {"error": {"code": 429, "message": "Resource has been exhausted (e.g. check quota).", "status": "RESOURCE_EXHAUSTED"}},
        500: {"error": {"code": 500, "message": "An internal error has occurred. Please retry.", "status": "INTERNAL"}},
    },
    "openai": {
        429: {"error": {"message": "Rate limit reached for requests", "type": "requests", "param": None, "code": "rate_limit_exceeded"}},
        500: {"error": {"message": "The server had an error while processing your request.", "type": "server_error", "param": None,
                        "code": None}},
    },
}

GEMINI_PATH = re.compile(r"^/v1\w*/models/(?P<model>[^:/?]+):(?P<method>generateContent|streamGenerateContent)")


@dataclass
class StubRequest:
    api: str  # gemini | openai
    path: str
    body: dict[str, Any]
    prompt: str
    stream: bool


def words(text: str) -> list[str]:
    """'Restart the member.' -> ['Restart ', 'the ', 'member.']: the deltas a streamed reply comes in."""
    return re.findall(r"\S+\s*", text)


class LLMStub:
    """The server; ``behave`` switches what it does next (it starts as ``ok``, echoing the prompt)."""

    def __init__(self) -> None:
        self.requests: list[StubRequest] = []
        self.behaviour = "ok"
        self.reply: str | Callable[[str], str] = lambda prompt: f"echo: {prompt}"
        self.tokens: Sequence[str] | None = None
        self.delay_s = 3.0
        self._release = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def url(self) -> str:
        """The root: Gemini's base URL (google-genai adds ``/v1beta/models/...``)."""
        return f"http://127.0.0.1:{self._server.server_port}"

    @property
    def openai_url(self) -> str:
        """OpenAI's base URL (the SDK adds ``/chat/completions``)."""
        return f"{self.url}/v1"

    def behave(self, behaviour: str, reply: str | Callable[[str], str] | None = None, *, tokens: Sequence[str] | None = None,
               delay_s: float | None = None) -> LLMStub:
        """What the next requests get: one of BEHAVIOURS, with the reply text (or a function of
        the prompt), the deltas of a streamed reply (default: the reply's words), a slow reply's delay."""
        if behaviour not in BEHAVIOURS:
            raise ValueError(f"unknown behaviour {behaviour!r}: one of {', '.join(BEHAVIOURS)}")
        self.behaviour = behaviour
        if reply is not None:
            self.reply = reply
        self.tokens = tokens
        if delay_s is not None:
            self.delay_s = delay_s
        return self

    def text_for(self, prompt: str) -> str:
        return self.reply(prompt) if callable(self.reply) else self.reply

    def __enter__(self) -> LLMStub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._release.set()  # hanging and slow handlers return now
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - the http.server interface
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                body = json.loads(raw or b"{}")
                path = self.path.split("?", 1)[0]
                if (m := GEMINI_PATH.match(path)) is not None:
                    req = StubRequest("gemini", self.path, body, _gemini_prompt(body), m["method"] == "streamGenerateContent")
                elif path.rstrip("/").endswith("/chat/completions"):
                    req = StubRequest("openai", self.path, body, _openai_prompt(body), bool(body.get("stream")))
                else:
                    self._json(404, {"error": {"code": 404, "message": f"no such route {path}", "status": "NOT_FOUND"}})
                    return
                stub.requests.append(req)
                try:
                    self._serve(req)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (its timeout)
                    pass

            def _serve(self, req: StubRequest) -> None:
                behaviour = stub.behaviour
                if behaviour == "hang":
                    stub._release.wait(60)
                    return
                if behaviour == "slow" and stub._release.wait(stub.delay_s):
                    return
                if behaviour in ("429", "500"):
                    self._json(int(behaviour), ERROR_BODIES[req.api][int(behaviour)])
                    return
                text = "" if behaviour == "empty" else stub.text_for(req.prompt)
                pieces = ([] if not text else list(stub.tokens or words(text)))
                if behaviour == "broken":
                    self._broken(req, pieces[0] if pieces else "x")
                    return
                if req.api == "gemini":
                    if req.stream:
                        self._sse([_gemini_reply(p) for p in pieces or [""]])
                    else:
                        self._json(200, _gemini_reply(text))
                elif req.stream:
                    model = req.body.get("model", "")
                    first = [_openai_chunk(model, {"role": "assistant", "content": ""})]
                    last = [_openai_chunk(model, {}, "stop")]
                    self._sse(first + [_openai_chunk(model, {"content": p}) for p in pieces] + last, done=True)
                else:
                    self._json(200, _openai_reply(req.body.get("model", ""), text))

            def _broken(self, req: StubRequest, first: str) -> None:
                if not req.stream:
                    self._raw(200, "application/json", b'{"candidates": [')
                    return
                if req.api == "gemini":
                    head = _gemini_reply(first)
                else:
                    head = _openai_chunk(req.body.get("model", ""), {"content": first})
                self._raw(200, "text/event-stream", f"data: {json.dumps(head)}\n\n".encode() + b"data: {not json\n\n")

            def _raw(self, status: int, content_type: str, out: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.end_headers()
                self.wfile.write(out)

            def _json(self, status: int, data: dict[str, Any]) -> None:
                out = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def _sse(self, events: list[dict[str, Any]], done: bool = False) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                for data in _events(events, done):
                    self.wfile.write(data)
                    self.wfile.flush()

        return Handler


def _events(events: list[dict[str, Any]], done: bool) -> Iterator[bytes]:
    for data in events:
        yield f"data: {json.dumps(data)}\n\n".encode()
    if done:
        yield b"data: [DONE]\n\n"


def _gemini_prompt(body: dict[str, Any]) -> str:
    return "".join(p.get("text", "") for c in body.get("contents", []) for p in c.get("parts", []))


def _openai_prompt(body: dict[str, Any]) -> str:
    return "".join(str(m.get("content", "")) for m in body.get("messages", []) if m.get("role") == "user")


def _gemini_reply(text: str) -> dict[str, Any]:
    return {"candidates": [{"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": "STOP", "index": 0}],
            "modelVersion": "gemini-stub"}


def _openai_reply(model: str, text: str) -> dict[str, Any]:
    return {"id": "chatcmpl-stub", "object": "chat.completion", "created": 0, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}


def _openai_chunk(model: str, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"id": "chatcmpl-stub", "object": "chat.completion.chunk", "created": 0, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


SOURCE = re.compile(r"^\[(\d+)\] [^\n]*\n(.*?)(?=\n\n\[\d+\] |\n\nQuestion:)", re.S | re.M)
LIST_MARK = re.compile(r"^\s*(?:[-*>#]+|\d+\.)\s*")


def cited_answer(prompt: str, sources: int = 2) -> str:
    """What a model that cites well replies: one line of each of the first ``sources`` numbered
    sources, copied verbatim and marked [n]; 'ok' to a prompt without sources (a health probe)."""
    out: list[str] = []
    for m in SOURCE.finditer(prompt):
        for raw in m[2].splitlines():
            line = LIST_MARK.sub("", raw).strip().rstrip(".:;,")
            if len(line.split()) >= 5 and not line.startswith(("```", "~~~")) and not re.search(r"[\[\]{}|!?]|[.!?]\s", line):
                out.append(f"{line} [{m[1]}].")
                break
        if len(out) == sources:
            break
    return " ".join(out) or "ok"
