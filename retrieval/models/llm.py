"""The one place a Gemini client is made (answers, intent, reranking share it)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any


@lru_cache(maxsize=4)
def gemini_client(api_key: str, timeout_s: float) -> Any:
    """A google-genai client with a hard timeout and no retries: a slow or unreachable Gemini must
    fall back to the offline path quickly, never hang a search."""
    from google import genai
    from google.genai import types

    return genai.Client(
        api_key=api_key, http_options=types.HttpOptions(timeout=int(timeout_s * 1000), retry_options=types.HttpRetryOptions(attempts=1))
    )
