"""With a key but no reachable Gemini, answers still come back (extractive) and say so; a
working model answers through the one LLM seam, its markers checked."""

import socket

from srekb.retrieval.answer.draft import Draft
from srekb.retrieval.kb import KnowledgeBase
from srekb.retrieval.search.rerank import FeatureReranker


def _closed_port() -> int:
    """A loopback port nothing listens on: the connection is refused at once, nothing leaves the machine."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_key_without_network_falls_back_to_extractive(shipped_kb):
    s = shipped_kb.settings.model_copy(update={"google_api_key": "test-key-no-network", "llm_timeout_s": 2.0,
                                               "gemini_base_url": f"http://127.0.0.1:{_closed_port()}"})
    kb = KnowledgeBase(s, store=shipped_kb.store, embedder=shipped_kb.embedder)
    question = "PatroniNoLeader is firing, what should I check?"
    ans = kb.ask(question)
    assert not ans.abstained and ans.mode == "extractive" and ans.citations
    assert ans.llm_error is not None and ans.llm_error.startswith("gemini:gemini-2.5-flash: ConnectError")
    # A key alone does not turn on model reranking (it would add a model call to every search):
    # the feature reranker ranks, in the same order as without a key.
    assert type(kb.reranker) is FeatureReranker
    assert [h.id for h in ans.hits] == [h.id for h in shipped_kb.search(question).hits]
    kb.close()


class FakeGenerative:
    """A deterministic stand-in for an LLM that cites one source wrongly and invents a sentence."""

    mode = "generative"

    def answer(self, question, hits):
        first = hits[0].chunk.text.splitlines()[-1].strip().rstrip(".")
        return Draft(f"{first} [2]. Also reboot the moon [1].", list(hits[:2]), "generative")


def test_generative_markers_are_checked_against_sources(shipped_kb):
    kb = KnowledgeBase(shipped_kb.settings, store=shipped_kb.store, embedder=shipped_kb.embedder, answerer=FakeGenerative())
    ans = kb.ask("PatroniNoLeader is firing, what should I check?")
    assert ans.mode == "generative" and ans.checked == 2
    # The marked claim no source supports is removed and counted, not kept without its marker.
    assert "moon" not in ans.text and ans.unsupported == 1
    assert ans.text.endswith("[1].") and "[2]" not in ans.text  # the quoted sentence points at its real source, renumbered
    assert len(ans.citations) == 1 and ans.citations[0].path == ans.hits[0].chunk.path
    kb.close()


def test_a_model_answers_through_the_seam_and_failures_fall_back(shipped_kb, fake_llm):
    question = "PatroniNoLeader is firing, what should I check?"
    evidence = shipped_kb.search(question).hits
    line = evidence[0].chunk.text.splitlines()[-1]
    llm = fake_llm([f"{line} [1]", ConnectionError("quota")])
    kb = KnowledgeBase(shipped_kb.settings.model_copy(update={"reranker": "features"}), store=shipped_kb.store,
                       embedder=shipped_kb.embedder, llm=llm)
    first = kb.ask(question)
    assert first.mode == "generative" and "[1]" in first.text and first.citations
    assert question in llm.prompts[0] and "[1]" in llm.prompts[0]  # the question and the numbered sources went to the model
    second = kb.ask(question)
    assert second.mode == "extractive" and second.citations and not second.abstained
    kb.close()
