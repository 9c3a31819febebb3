"""The calibrated answerability decision: features on small hits, the shipped model through the real parts."""

import json

import pytest
from srekb.retrieval.answer.answerability import ABSTAIN_FEATURES, FEATURES, AnswerabilityModel, Logistic, features
from srekb.retrieval.fitted import MODEL_FILE, load_model
from srekb.retrieval.stats import CorpusStats
from srekb.retrieval.text import term_set
from srekb.retrieval.types import Chunk, Hit, Scores, SourceType


def _hit(text, path="runbooks/x.md", dense=0.6):
    return Hit(Chunk(path, SourceType.RUNBOOK, "T", "S", text, 1, 5), 1.0, scores=Scores(dense=dense))


STATS = CorpusStats({t: 3 for t in term_set("pod crash looping restart deploy etcd leader election disk full")}, 200)


def test_hyphenated_everyday_word_is_found_by_its_parts():
    """A hyphenated compound ('crash-looping') is no name that must appear verbatim: its parts, inflected, count."""
    hit = _hit("Pods that crash loop after a deployment: check the restarts.")
    x, missing_ids, _ = features("The pod is crash-looping after the deploy, what do I check?", [hit], STATS)
    assert missing_ids == [] and x["ident_found"] == 1.0
    assert x["coverage"] >= 0.7


def test_absent_specific_terms_and_numbers_lower_the_features():
    hit = _hit("etcd leader election takes a few seconds; check the disk latency.")
    near, _, missing = features("What etcd leader election timeout does the 30s rule on the payments-db cluster use?", [hit], STATS)
    on, _, _ = features("How does etcd leader election work?", [hit], STATS)
    assert near["coverage"] < on["coverage"] and near["number_found"] == 0.0 and near["ident_found"] < 1.0
    assert "payments-db" in missing or "payment" in missing


def test_compound_of_words_the_corpus_uses_apart_is_no_name():
    """'key-value' (never written joined in the corpus, its words used apart) counts through its
    words; a compound the corpus writes joined, or whose words it never uses, stays a name."""
    stats = CorpusStats({t: 3 for t in term_set("key value store flush checkout-api")} | {"checkout-api": 2}, 200)
    hit = _hit("The store flushes its log to disk; slow flushes mean a slow disk.")
    x, missing_ids, _ = features("Our key-value store is slow to flush. Does the checkout-api or ledger-sync care?", [hit], stats)
    assert "key-value" not in missing_ids
    assert {"checkout-api", "ledger-sync"} <= set(missing_ids) and x["ident_found"] == 0.0


def test_model_scores_and_outcomes_follow_the_thresholds():
    """Abstain on the abstention scorer, caveat on the caveat scorer: two scores, two points."""
    caveat = Logistic(["coverage"], [0.5], [0.25], [4.0], 0.0)
    abstain = Logistic(["dense_top"], [0.5], [0.1], [2.0], 0.0)
    m = AnswerabilityModel(caveat, abstain, 0.2, 0.6)
    assert caveat({"coverage": 0.5}) == pytest.approx(0.5) and abstain({"dense_top": 0.5}) == pytest.approx(0.5)
    assert [m.outcome(p, 0.9) for p in (0.1, 0.5, 0.9)] == ["caveat", "caveat", "answer"]
    assert m.outcome(0.9, 0.1) == "abstain"
    assert AnswerabilityModel.from_dict(m.to_dict()) == m


def test_the_shipped_model_holds_every_feature_and_its_thresholds():
    """The thresholds the service uses are read from the shipped, fitted model file."""
    data = json.loads(MODEL_FILE.read_text())
    model = load_model()
    a = model.answerability
    assert a is not None and a.caveat.features == FEATURES and a.abstain.features == ABSTAIN_FEATURES
    assert a.abstain_below == data["answerability"]["abstain_below"]
    assert 0.0 < a.abstain_below < 1.0 and 0.0 < a.caveat_below < 1.0
    assert len(model.answerability.fitted["corpora"]) >= 2  # fitted across corpora, not on one
    assert model.intent is not None and model.rerank_weights == {}  # fitted ranker weights measured, not adopted


def test_knowledge_base_uses_the_model_file_it_is_given(shipped_kb, tmp_path):
    """The threshold comes from the model file: a stricter one abstains where the shipped one answers."""
    from srekb.retrieval.kb import KnowledgeBase

    question = "etcd has no leader, what do I check?"
    assert shipped_kb.answerability.abstain_below == load_model().answerability.abstain_below
    assert not shipped_kb.ask(question).abstained
    data = json.loads(MODEL_FILE.read_text())
    data["answerability"]["abstain_below"] = data["answerability"]["caveat_below"] = 0.999999
    strict = tmp_path / "model.json"
    strict.write_text(json.dumps(data))
    kb = KnowledgeBase(shipped_kb.settings.model_copy(update={"model_file": strict}), store=shipped_kb.store, embedder=shipped_kb.embedder)
    ans = kb.ask(question)
    assert ans.abstained and ans.to_dict()["outcome"] == "abstained" and ans.to_dict()["answerability"]["score"] < 0.999999


def test_hyphenated_symptom_question_is_answered_through_the_real_parts(shipped_kb):
    """An everyday hyphenated word in a real question does not force an abstention."""
    ans = shipped_kb.ask("A pod is crash-looping right after a deploy. What do I check?")
    assert not ans.abstained and ans.citations
    assert ans.to_dict()["outcome"] in ("answered", "caveat") and 0.0 <= ans.to_dict()["answerability"]["score"] <= 1.0
