"""The LLM seam through the real google-genai client against a local stub of Gemini's REST API
(no network beyond 127.0.0.1): a reply, a streamed reply, JSON mode, and an error."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from srekb.retrieval.models.llm import LLM, FakeLLM, GeminiLLM


def _candidate(text: str) -> dict:
    return {"candidates": [{"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": "STOP"}]}


class GeminiStub(BaseHTTPRequestHandler):
    requests: list[tuple[str, dict]] = []

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802 - the http.server interface
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        GeminiStub.requests.append((self.path, body))
        prompt = body["contents"][0]["parts"][0]["text"]
        if "fail" in prompt:
            self._json(400, {"error": {"code": 400, "message": "API key not valid", "status": "INVALID_ARGUMENT"}})
        elif ":streamGenerateContent" in self.path:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            for word in ("Restart ", "the ", "member."):
                self.wfile.write(f"data: {json.dumps(_candidate(word))}\n\n".encode())
                self.wfile.flush()
        else:
            self._json(200, _candidate(f"echo: {prompt}"))

    def _json(self, status: int, data: dict) -> None:
        raw = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)


@pytest.fixture(scope="module")
def gemini_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), GeminiStub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_gemini_completes_streams_and_raises_through_the_real_sdk(gemini_url):
    llm = GeminiLLM("test-key", "gemini-test", timeout_s=5, base_url=gemini_url)
    assert isinstance(llm, LLM) and llm.name == "gemini:gemini-test"
    assert llm.complete("etcd has no leader") == "echo: etcd has no leader"
    path, body = GeminiStub.requests[-1]
    assert path.endswith("/models/gemini-test:generateContent")
    assert llm.complete("rank these", json=True, temperature=0.0)
    config = GeminiStub.requests[-1][1]["generationConfig"]
    assert config["responseMimeType"] == "application/json" and config["temperature"] == 0.0
    assert list(llm.stream("what now?")) == ["Restart ", "the ", "member."]
    with pytest.raises(Exception, match="API key not valid"):
        llm.complete("fail please")


def test_the_fake_serves_replies_in_turn_and_raises_what_it_is_given():
    llm = FakeLLM(["one", TimeoutError("slow"), "three"])
    assert llm.complete("a") == "one"
    with pytest.raises(TimeoutError):
        llm.complete("b")
    assert llm.complete("c") == "three" and llm.complete("d") == "three" and llm.prompts == ["a", "b", "c", "d"]
    assert "".join(FakeLLM(lambda p: p.upper()).stream("abc def ghi")) == "ABC DEF GHI"
