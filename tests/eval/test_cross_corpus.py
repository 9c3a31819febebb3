"""Cross-corpus evaluation through the real encoder and engine: the CI gate on held-out figures."""

import json
from pathlib import Path

import pytest
from srekb.eval.cross import gate_failures, load_specs, run_cross_corpus, summarise, to_markdown

ROOT = Path(__file__).resolve().parents[2]


def test_corpus_list_names_the_four_corpora_and_splits_real_2_by_id():
    specs = {s.name: s for s in load_specs()}
    assert set(specs) == {"sre", "real", "real-2a", "real-2b"}
    a, b = specs["real-2a"], specs["real-2b"]
    if a.available():
        qa, qb = {q.id for q in a.load_questions()}, {q.id for q in b.load_questions()}
        assert qa and qb and not qa & qb


def test_summary_takes_the_worst_in_the_right_direction():
    per = {"x": {"sre-kb": {"mrr@10": 0.9, "false_abstention": 0.0}}, "y": {"sre-kb": {"mrr@10": 0.7, "false_abstention": 0.1}}}
    s = summarise(per)
    assert s["worst"]["mrr@10"] == 0.7 and s["worst"]["false_abstention"] == 0.1 and s["mean"]["mrr@10"] == pytest.approx(0.8)


@pytest.fixture(scope="module")
def held_out(tmp_path_factory, settings):
    """Leave one out over the shipped corpus and the shared real one (the two that ingest in minutes)."""
    specs = [s for s in load_specs() if s.name in ("sre", "real")]
    if not all(s.available() for s in specs):
        pytest.fail("../shared/corpora/real is missing: the cross-corpus gate needs it")
    return run_cross_corpus(settings, tmp_path_factory.mktemp("cross"), specs=specs)


def test_held_out_figures_meet_the_gate(held_out):
    """Each corpus is scored by a model fitted on the other one only; eval/gate.json holds the floors."""
    gate = json.loads((ROOT / "eval" / "gate.json").read_text())["cross_corpus_ci"]
    assert gate_failures(held_out, gate) == []
    for name in ("sre", "real"):
        assert held_out["models"][name]["fitted"]["corpora"] == [n for n in ("real", "sre") if n != name]
        assert held_out["held_out"][name]["sre-kb"]["mrr@10_vs_naive"] >= 0.05
    md = to_markdown(held_out)
    assert "| **worst** |" in md and "| real |" in md and "naive MRR@10" in md


def test_every_answer_row_carries_an_outcome(held_out):
    """Three outcomes, reported per question; the fitted thresholds are probabilities."""
    rows = held_out["rows"]["real"]
    assert rows and all(not (r["abstained"] and r["caveat"]) for r in rows)
    model = held_out["models"]["real"]["answerability"]
    assert 0.0 < model["abstain_below"] < 1.0 and 0.0 < model["caveat_below"] < 1.0
    assert set(model["abstain_coef"]) < set(model["caveat_coef"])  # the abstention scorer sees fewer features
