"""Deltas against a baseline report and regression marking, on hand-made reports."""

import pytest
from srekb.eval.compare import compare, delta
from srekb.eval.report import SEARCH_KEYS, stage_latency, to_markdown

OURS = "hybrid + rerank + intent"


def test_quality_thresholds_including_the_exact_boundary():
    assert delta("mrr@10", 0.900, 0.895)["regression"] is False  # worse by exactly 0.005: tolerated
    assert delta("mrr@10", 0.900, 0.894)["regression"] is True  # worse by 0.006
    assert delta("mrr@10", 0.900, 0.950) == {"old": 0.9, "new": 0.95, "delta": 0.05, "regression": False}
    assert delta("mrr@10", 0.5, 0.5)["regression"] is False  # unchanged
    # Lower is better for false abstention.
    assert delta("false_abstention", 0.00, 0.01)["regression"] is True
    assert delta("false_abstention", 0.05, 0.00)["regression"] is False


def test_latency_thresholds_are_relative():
    assert delta("latency_p50_ms", 10.0, 12.0)["regression"] is False  # +20 %: tolerated
    d = delta("latency_p50_ms", 10.0, 12.5)
    assert d["regression"] is True and d["relative"] == pytest.approx(0.25)
    assert delta("ask_p50_ms", 10.0, 5.0)["regression"] is False  # faster
    assert delta("embed p95_ms", 0.0, 3.0)["regression"] is False  # no baseline to compare with


def report(mrr=0.9, false_abstention=0.0, p50=10.0, embed=5.0, rouge=0.3, strategies=(OURS, "dense")):
    return {
        "questions": 3, "answerable": 2,
        "strategies": {s: {k: (mrr if k == "mrr@10" else (p50 if "ms" in k else 0.8)) for k in SEARCH_KEYS} for s in strategies},
        "per_intent": {},
        "answers": {"intent_accuracy": 0.7, "false_abstention": false_abstention, "ask_p50_ms": p50},
        "latency_stages": {"embed": {"p50_ms": embed, "p95_ms": embed * 2, "n": 3}},
        "ragas": {"offline": {"context_precision": 0.5, "context_recall": 0.5, "string_similarity": 0.2, "rouge_l": rouge,
                              "n_context": 2, "n_answer": 2, "abstained": 0, "unanswerable": 1, "no_reference_answer": 0,
                              "no_reference_contexts": 0, "unscored": 0},
                  "judge": {"status": "skipped", "reason": "no key"}},
    }


def test_compare_marks_regressions_everywhere():
    old = report(strategies=(OURS, "dense", "retired"))
    new = report(mrr=0.85, false_abstention=0.02, p50=13.0, embed=7.0, rouge=0.31, strategies=(OURS, "dense", "brand new"))
    cmp = compare(new, old, "old/report.json")
    assert cmp["strategies"][OURS]["mrr@10"] == {"old": 0.9, "new": 0.85, "delta": -0.05, "regression": True}
    assert cmp["strategies"][OURS]["recall@3"]["regression"] is False
    assert cmp["strategies"][OURS]["latency_p50_ms"]["regression"] is True  # +30 %
    assert cmp["added"] == ["brand new"] and cmp["missing"] == ["retired"]
    assert cmp["answers"]["false_abstention"]["regression"] is True
    assert cmp["answers"]["intent_accuracy"]["regression"] is False
    assert cmp["ragas"]["rouge_l"]["delta"] == pytest.approx(0.01) and not cmp["ragas"]["rouge_l"]["regression"]
    assert "n_context" not in cmp["ragas"]  # counts are not metrics
    assert cmp["latency_stages"]["embed p50_ms"]["regression"] is True  # +40 %
    assert "faithfulness" not in cmp["ragas"]  # the judge was skipped on both sides
    assert "hybrid + rerank + intent: mrr@10 0.900 -> 0.850 (-0.050)" in cmp["regressions"]
    assert "answers: false_abstention 0.000 -> 0.020 (+0.020)" in cmp["regressions"]
    assert cmp["quality_regressions"] == [  # latency is marked but is no quality regression
        "hybrid + rerank + intent: mrr@10 0.900 -> 0.850 (-0.050)", "dense: mrr@10 0.900 -> 0.850 (-0.050)",
        "answers: false_abstention 0.000 -> 0.020 (+0.020)",
    ]
    assert "answers: ask_p50_ms 10.0 -> 13.0 ms (+30%)" in cmp["regressions"]
    assert cmp["gating_regressions"] == [  # the baselines' own changes do not gate
        "hybrid + rerank + intent: mrr@10 0.900 -> 0.850 (-0.050)", "answers: false_abstention 0.000 -> 0.020 (+0.020)",
    ]
    new["baseline"] = cmp
    md = to_markdown(new, "t")
    assert "## Against the baseline old/report.json" in md
    assert "**-0.050 ▼**" in md and "**+30% ▼**" in md
    assert "| brand new | new |" in md and "In the baseline only: retired" in md
    assert f"**{len(cmp['regressions'])} regression(s):**" in md


def test_compare_without_changes_and_with_judge_figures():
    old, new = report(), report()
    for r in (old, new):
        r["ragas"]["judge"] = {"status": "ok", "faithfulness": 0.9, "answer_relevancy": 0.8}
    new["ragas"]["judge"]["faithfulness"] = 0.7
    cmp = compare(new, old)
    assert cmp["ragas"]["faithfulness"]["regression"] is True
    assert cmp["regressions"] == cmp["gating_regressions"] == ["ragas: faithfulness 0.900 -> 0.700 (-0.200)"]
    cmp = compare(report(), report())
    assert cmp["regressions"] == [] and cmp["quality_regressions"] == []
    new = report()
    new["baseline"] = cmp
    assert "No regression against the baseline." in to_markdown(new, "t")


def test_stage_latency_percentiles_and_skipped_stages():
    rows = [
        {"timings_ms": {"embed": 1.0, "answer": 10.0, "total": 20.0}},
        {"timings_ms": {"embed": 2.0, "total": 30.0}},  # abstained: no answer stage
        {"timings_ms": {"embed": 3.0, "answer": 30.0, "total": 40.0}},
        {"timings_ms": {"embed": 4.0, "answer": 20.0, "total": 10.0}},
        {},  # no timings at all
    ]
    s = stage_latency(rows)
    assert s["embed"] == {"p50_ms": 2.0, "p95_ms": 4.0, "n": 4}  # nearest rank: ceil(0.5*4)=2nd, ceil(0.95*4)=4th
    assert s["answer"] == {"p50_ms": 20.0, "p95_ms": 30.0, "n": 3}
    assert s["total"]["p50_ms"] == 20.0 and s["total"]["p95_ms"] == 40.0
    assert "rerank" not in s and stage_latency([]) == {}
