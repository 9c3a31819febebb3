"""The one seam to a language model: every model call (answers, intent, reranking, session
titles and rewrites, eval's ragas judge) goes through :class:`LLM`.

* :class:`GeminiLLM`: Gemini through ``google-genai`` (the only module that imports it).
* :class:`OpenAILLM`: any OpenAI-compatible chat endpoint through the ``openai`` SDK: OpenAI
  itself, or a local / self-hosted server (llama.cpp server, vLLM, Ollama's ``/v1``, a LiteLLM
  proxy) by its base URL.
* :class:`FakeLLM`: deterministic replies for tests, recording every prompt.

A backend raises on failure (timeout, quota, key) and never retries: ``routing.py`` decides the
fallback (the next backend, a circuit breaker, finally the offline path).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class LLM(Protocol):
    """A text-completion model."""

    name: str  # "backend:model", shown with answers

    def complete(self, prompt: str, *, json: bool = False, temperature: float | None = None) -> str:
        """The model's reply to ``prompt`` (with ``json``, a JSON document)."""
        ...

    def stream(self, prompt: str) -> Iterator[str]:
        """The reply as it is generated, in text deltas."""
        ...


@lru_cache(maxsize=4)
def _gemini_client(api_key: str, timeout_s: float, base_url: str | None = None) -> Any:
    """A google-genai client with a hard timeout and no retries: a slow or unreachable Gemini must
    fall back to the offline path quickly, never hang a search."""
    from google import genai
    from google.genai import types

    return genai.Client(
        api_key=api_key,
        http_options=types.HttpOptions(timeout=int(timeout_s * 1000), retry_options=types.HttpRetryOptions(attempts=1), base_url=base_url),
    )


class GeminiLLM:
    """Gemini through google-genai (one client per key, timeout and endpoint, shared by every task)."""

    def __init__(self, api_key: str, model: str, timeout_s: float = 20.0, base_url: str | None = None) -> None:
        self._client = _gemini_client(api_key, timeout_s, base_url)
        self.model = model
        self.name = f"gemini:{model}"

    def _config(self, json: bool, temperature: float | None) -> dict[str, Any] | None:
        config: dict[str, Any] = {}
        if json:
            config["response_mime_type"] = "application/json"
        if temperature is not None:
            config["temperature"] = temperature
        return config or None

    def complete(self, prompt: str, *, json: bool = False, temperature: float | None = None) -> str:
        resp = self._client.models.generate_content(model=self.model, contents=prompt, config=self._config(json, temperature))
        return resp.text or ""

    def stream(self, prompt: str) -> Iterator[str]:
        for part in self._client.models.generate_content_stream(model=self.model, contents=prompt):
            if part.text:
                yield part.text


@lru_cache(maxsize=8)
def _openai_client(base_url: str | None, api_key: str | None, timeout_s: float) -> Any:
    from openai import OpenAI

    # A local server needs no key, but the SDK refuses to start without one.
    return OpenAI(base_url=base_url, api_key=api_key or "not-needed", timeout=timeout_s, max_retries=0)


class OpenAILLM:
    """An OpenAI-compatible chat endpoint through the ``openai`` SDK (one client per endpoint)."""

    def __init__(self, model: str, base_url: str | None = None, api_key: str | None = None, timeout_s: float = 20.0) -> None:
        self._client = _openai_client(base_url, api_key, timeout_s)
        self.model = model
        self.name = f"openai:{model}"

    def _args(self, prompt: str, json: bool, temperature: float | None) -> dict[str, Any]:
        args: dict[str, Any] = {"model": self.model, "messages": [{"role": "user", "content": prompt}]}
        if json:
            args["response_format"] = {"type": "json_object"}
        if temperature is not None:
            args["temperature"] = temperature
        return args

    def complete(self, prompt: str, *, json: bool = False, temperature: float | None = None) -> str:
        resp = self._client.chat.completions.create(**self._args(prompt, json, temperature))
        return (resp.choices[0].message.content or "") if resp.choices else ""

    def stream(self, prompt: str) -> Iterator[str]:
        # The context closes the response when the caller stops early (a reply abandoned mid-way), not at garbage collection.
        with self._client.chat.completions.create(**self._args(prompt, False, None), stream=True) as chunks:
            for chunk in chunks:
                if chunk.choices and chunk.choices[0].delta.content:
                    yield chunk.choices[0].delta.content


@dataclass
class FakeLLM:
    """A deterministic model for tests: ``reply`` is a fixed text, a list served in turn (the last
    one repeats), or a function of the prompt; an exception instance (or one returned) is raised.
    Every prompt is kept in ``prompts``."""

    reply: str | Sequence[str | BaseException] | Callable[[str], str | BaseException] | BaseException = ""
    name: str = "fake:model"
    prompts: list[str] = field(default_factory=list)

    def complete(self, prompt: str, *, json: bool = False, temperature: float | None = None) -> str:
        self.prompts.append(prompt)
        r = self.reply
        if callable(r) and not isinstance(r, BaseException):
            out = r(prompt)
        elif isinstance(r, str | BaseException):
            out = r
        else:
            out = r[min(len(self.prompts), len(r)) - 1]
        if isinstance(out, BaseException):
            raise out
        return out

    def stream(self, prompt: str) -> Iterator[str]:
        text = self.complete(prompt)
        for i in range(0, len(text), 8):
            yield text[i : i + 8]
