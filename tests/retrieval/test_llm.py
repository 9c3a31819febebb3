"""The LLM seam's deterministic fake. The real backends (google-genai, openai) run through the
same suite against the one local stub of both APIs: ``test_llm_backends.py`` (``tests/llm_stub.py``)."""

from __future__ import annotations

import pytest
from srekb.retrieval.models.llm import LLM, FakeLLM


def test_the_fake_serves_replies_in_turn_and_raises_what_it_is_given():
    llm = FakeLLM(["one", TimeoutError("slow"), "three"])
    assert isinstance(llm, LLM)
    assert llm.complete("a") == "one"
    with pytest.raises(TimeoutError):
        llm.complete("b")
    assert llm.complete("c") == "three" and llm.complete("d") == "three" and llm.prompts == ["a", "b", "c", "d"]
    assert "".join(FakeLLM(lambda p: p.upper()).stream("abc def ghi")) == "ABC DEF GHI"
