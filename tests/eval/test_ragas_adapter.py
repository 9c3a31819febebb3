"""The ragas adapter on tiny hand-made samples: real ragas 0.4 metrics, no LLM, no network."""

import hashlib
import json
import math
from types import SimpleNamespace

import pytest
from srekb.eval.dataset import Question
from srekb.eval.ragas_metrics import RagasSample, ReferenceContexts, sample_of, score_offline, score_with_judge, strip_markers
from srekb.eval.report import ragas_markdown
from srekb.retrieval.models.embedding import HashEmbedder
from srekb.retrieval.types import Chunk, SourceType


def sample(qid="q", *, answer="Restart the pod.", reference="Restart the pod.", retrieved=("ctx",), refs=("ctx",),
           answerable=True, abstained=False) -> RagasSample:
    return RagasSample(qid, f"question {qid}?", answerable, abstained, answer, reference, list(retrieved), list(refs))


def rows_by_id(result):
    return {r["id"]: r for r in result["rows"]}


def test_perfect_sample_scores_one():
    res = score_offline([sample()])
    row = res["rows"][0]
    assert row["status"] == "answered"
    assert row["context_precision"] == pytest.approx(1.0)
    assert row["context_recall"] == 1.0
    assert row["string_similarity"] == 1.0 and row["rouge_l"] == 1.0


def test_hand_computed_values():
    # Levenshtein("kitten", "sitting") = 3 over max length 7 -> similarity 1 - 3/7.
    # ROUGE-L with stemming: "restart the pod" vs "restart the pods now": LCS 3, P 3/4, R 3/3 -> F 6/7.
    # Context precision: retrieved [unrelated, matching] -> verdicts [0, 1] -> average precision (1/2)/1.
    # Context recall: references [found, absent] -> 1/2.
    samples = [
        sample("lev", answer="kitten", reference="sitting"),
        sample("rouge", answer="restart the pods now", reference="restart the pod"),
        sample("ap", retrieved=("zzzzzzzzzz", "etcd defrag"), refs=("etcd defrag",)),
        sample("rec", retrieved=("etcd defrag",), refs=("etcd defrag", "qqqqqqqqqqqq")),
    ]
    rows = rows_by_id(score_offline(samples))
    assert rows["lev"]["string_similarity"] == pytest.approx(1 - 3 / 7)
    assert rows["rouge"]["rouge_l"] == pytest.approx(6 / 7)
    assert rows["ap"]["context_precision"] == pytest.approx(0.5)
    assert rows["ap"]["context_recall"] == 1.0
    assert rows["rec"]["context_recall"] == pytest.approx(0.5)
    assert rows["rec"]["context_precision"] == pytest.approx(1.0)


def test_similarity_tie_at_the_threshold():
    # "ab" vs "ac": similarity exactly 0.5. ragas' precision counts >= 0.5, its recall only > 0.5.
    rows = rows_by_id(score_offline([sample("tie", retrieved=("ab",), refs=("ac",))]))
    assert rows["tie"]["context_precision"] == pytest.approx(1.0)
    assert rows["tie"]["context_recall"] == 0.0


def test_abstentions_unanswerable_and_empty_results_are_never_nan():
    samples = [
        sample("ok", answer="Restart the pod [1].", reference="Restart the pod."),  # markers are not wording
        sample("half", answer="kitten", reference="sitting"),
        sample("abst", answer="", abstained=True, retrieved=("ctx",), refs=("ctx",)),
        sample("unans", answer="", abstained=True, answerable=False, refs=()),
        sample("empty", answer="Something.", reference="Something.", retrieved=(), refs=("ctx",)),
        sample("noref", answer="Something.", reference="", retrieved=("ctx",), refs=()),
    ]
    res = score_offline(samples)
    m, rows = res["metrics"], rows_by_id(res)
    assert rows["ok"]["string_similarity"] == 1.0
    assert rows["abst"]["status"] == "abstained" and rows["abst"]["string_similarity"] is None
    assert rows["abst"]["context_recall"] == 1.0  # its top hits are still judged as retrieval
    assert rows["unans"]["status"] == "unanswerable" and rows["unans"]["context_precision"] is None
    assert rows["empty"]["context_precision"] == 0.0 and rows["empty"]["context_recall"] == 0.0  # nothing retrieved
    assert rows["noref"]["status"] == "no reference answer" and rows["noref"]["context_precision"] is None
    # Means over the answered questions only: ok 1.0, half 4/7, empty 1.0; the abstention is counted apart.
    assert m["n_answer"] == 3 and m["abstained"] == 1 and m["unanswerable"] == 1
    assert m["no_reference_answer"] == 1 and m["no_reference_contexts"] == 1 and m["unscored"] == 0
    assert m["string_similarity"] == pytest.approx((1 + (1 - 3 / 7) + 1) / 3)
    # Context means over ok, half, abst, empty (1, 1, 1, 0).
    assert m["n_context"] == 4 and m["context_recall"] == pytest.approx(0.75)
    for v in list(m.values()) + [x for r in res["rows"] for x in r.values()]:
        assert not (isinstance(v, float) and math.isnan(v))
    json.dumps(res, allow_nan=False)


def test_no_samples():
    m = score_offline([])["metrics"]
    assert m["context_precision"] == 0.0 and m["n_context"] == 0 and m["n_answer"] == 0


def test_strip_markers():
    assert strip_markers("Restart it [1]. Then page [2][3].") == "Restart it. Then page."


def chunk(path: str, a: int, b: int, text: str) -> Chunk:
    return Chunk(path, SourceType.RUNBOOK, "T", "S", text, a, b)


def question(**kw) -> Question:
    base = {"id": "q1", "question": "what?", "intent": None, "relevant": ["rb.md"], "must_cite": "rb.md"}
    return Question(**(base | kw))


def test_reference_contexts_from_file_chunks_or_nothing(tmp_path):
    body = "\n".join(f"line {i}" for i in range(1, 11)) + "\n"
    (tmp_path / "rb.md").write_text(body)
    chunks = {"rb.md": [chunk("rb.md", 1, 4, "first"), chunk("rb.md", 5, 8, "second"), chunk("rb.md", 9, 10, "third")]}
    record = SimpleNamespace(root=str(tmp_path), sha256=hashlib.sha256(body.encode()).hexdigest())
    refs = ReferenceContexts(lambda p: chunks.get(p, []), {"rb.md": record})
    assert refs(question(must_cite_lines=[3, 5])) == (["line 3\nline 4\nline 5"], "lines")
    assert refs(question(must_cite_lines=None)) == (["first", "second", "third"], "chunks")
    assert refs(question(must_cite=None)) == ([], "none")
    assert refs(question(answerable=False)) == ([], "none")
    # The file changed since it was ingested: the chunks over the labelled lines stand in.
    stale = ReferenceContexts(lambda p: chunks.get(p, []), {"rb.md": SimpleNamespace(root=str(tmp_path), sha256="0" * 64)})
    assert stale(question(must_cite_lines=[3, 5])) == (["first", "second"], "lines")


def test_sample_of_uses_citations_or_top_hits():
    refs = lambda q: (["ref"], "lines")  # noqa: E731
    hits = [SimpleNamespace(chunk=chunk("rb.md", i, i, f"hit {i}")) for i in range(1, 6)]
    cited = SimpleNamespace(abstained=False, text="Do X [1].", citations=[SimpleNamespace(text="cited text")], hits=hits)
    s = sample_of(question(reference_answer="Do X."), cited, refs)
    assert s.retrieved_contexts == ["cited text"] and s.contexts_from == "citations" and s.answer == "Do X [1]."
    abstained = SimpleNamespace(abstained=True, text="Not enough.", citations=[], hits=hits)
    s = sample_of(question(), abstained, refs)
    assert s.retrieved_contexts == ["hit 1", "hit 2", "hit 3"] and s.contexts_from == "hits" and s.answer == "" and s.abstained
    nothing = SimpleNamespace(abstained=True, text="", citations=[], hits=[])
    assert sample_of(question(), nothing, refs).retrieved_contexts == []


def test_judge_skipped_without_key_is_reported_not_an_error():
    res = score_with_judge([sample()], None, HashEmbedder(16))
    assert res["status"] == "skipped" and "GOOGLE_API_KEY" in res["reason"]
    off = score_offline([sample()])["metrics"]
    md = "\n".join(ragas_markdown({"offline": off, "judge": res}))
    assert "ragas (offline):" in md and "| context_precision |" in md
    assert "ragas (LLM judge): skipped: no model for the judge task" in md


def perfect_judge(prompt: str) -> str:
    """Answers ragas' three prompts like a perfect judge."""
    if "analyze the complexity of each sentence" in prompt:
        out = {"statements": ["Restart the pod."]}
    elif "judge the faithfulness" in prompt:
        out = {"statements": [{"statement": "Restart the pod.", "reason": "in the context", "verdict": 1}]}
    else:  # response relevance: regenerate the question exactly
        out = {"question": "question q?", "noncommittal": 0}
    return json.dumps(out)


def test_judge_path_through_the_llm_seam(fake_llm):
    samples = [sample(), sample("abst", abstained=True, answer="")]
    res = score_with_judge(samples, fake_llm(perfect_judge, "fake:judge"), HashEmbedder(32))
    assert res["status"] == "ok" and res["n"] == 1 and res["abstained"] == 1 and res["judge"] == "fake:judge"
    assert res["faithfulness"] == pytest.approx(1.0)
    assert res["answer_relevancy"] == pytest.approx(1.0, abs=1e-6)


def test_judge_unreachable_is_reported_not_raised(fake_llm):
    llm = fake_llm(ConnectionError("no network"))
    res = score_with_judge([sample(), sample("b")], llm, HashEmbedder(16), timeout_s=5)
    assert res["status"] == "error" and "no network" in res["reason"] and res["n"] == 0
    assert len(llm.prompts) <= 3  # stops at the first failing question
