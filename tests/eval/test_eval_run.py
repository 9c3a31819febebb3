"""One end-to-end evaluation through the real model and engine on the shipped corpus."""

import json
import math
from pathlib import Path

from srekb.eval.dataset import load_questions
from srekb.eval.report import STAGES, gate_failures, run, write
from srekb.eval.tune import load_weights, run_tuning

from tests.conftest import SHIPPED_QUESTIONS


def test_eval_run_writes_reports(shipped_kb, tmp_path):
    questions = load_questions(SHIPPED_QUESTIONS)
    report = run(shipped_kb, questions, judge=False)
    write(report, tmp_path, "shipped", questions)
    data = json.loads((tmp_path / "report.json").read_text(), parse_constant=lambda c: math.nan)
    ours = data["strategies"]["hybrid + rerank + intent"]
    naive = data["strategies"]["naive hybrid (rank-bm25 + dense, 256-token windows, RRF k=60)"]
    assert ours["mrr@10"] > naive["mrr@10"] and ours["ndcg@10"] > naive["ndcg@10"]
    assert data["answers"]["false_abstention"] <= 0.05
    assert set(json.loads((tmp_path / "qrels.json").read_text())) == {q.id for q in questions if q.answerable}
    runs = json.loads((tmp_path / "runs.json").read_text())
    assert set(runs) == set(data["strategies"]) and all(runs[s] for s in runs)
    md = (tmp_path / "report.md").read_text()
    assert "| hybrid + rerank + intent |" in md
    # ragas (offline) on every answerable question; abstentions counted apart; never NaN.
    off = data["ragas"]["offline"]
    assert off["n_context"] == data["answerable"] and off["unanswerable"] == data["questions"] - data["answerable"]
    assert off["n_answer"] + off["abstained"] + off["no_reference_answer"] == data["answerable"]
    assert all(0.0 < off[k] <= 1.0 for k in ("context_precision", "context_recall", "string_similarity", "rouge_l"))
    assert not any(isinstance(v, float) and math.isnan(v) for r in data["ragas_rows"] for v in r.values())
    assert data["ragas"]["judge"]["status"] == "skipped"
    assert "ragas (offline):" in md and "| rouge_l |" in md
    # Per-stage latency from the asks' timings.
    stages = data["latency_stages"]
    assert set(STAGES) - {"rerank", "answer"} <= set(stages)
    assert all(0.0 <= s["p50_ms"] <= s["p95_ms"] for s in stages.values()) and stages["total"]["n"] == data["questions"]
    assert "| embed |" in md
    assert (tmp_path / "strategies.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The CI quality gate: thresholds kept in the repo.
    gate = json.loads((Path(__file__).resolve().parents[2] / "eval" / "gate.json").read_text())
    assert gate_failures(data, gate) == []


def test_gate_flags_regressions():
    report = {"strategies": {"hybrid + rerank + intent": {"mrr@10": 0.5, "ndcg@10": 0.9}}, "answers": {"false_abstention": 0.1}}
    gate = {"search": {"mrr@10": 0.8, "ndcg@10": 0.8}, "answers": {"false_abstention_max": 0.02}}
    assert gate_failures(report, gate) == ["mrr@10 0.500 < 0.8", "false_abstention 0.100 > 0.02"]


def test_tuning_on_the_shipped_corpus_resumes_and_writes_loadable_weights(shipped_kb, tmp_path):
    questions = load_questions(SHIPPED_QUESTIONS)[:80]  # a part is enough here (and twice as fast)
    first = run_tuning(shipped_kb, questions, tmp_path, max_iter=1)
    assert first["iterations"] == 1 and (tmp_path / "tune-state.json").exists()
    assert first["train"]["n"] + first["holdout"]["n"] == sum(q.answerable for q in questions) and first["holdout"]["n"] > 0
    assert first["train"]["tuned"]["objective"] >= first["train"]["default"]["objective"]
    second = run_tuning(shipped_kb, questions, tmp_path, max_iter=2)
    assert second["resumed_at"] == [1] and second["iterations"] == 2
    assert second["train"]["tuned"]["objective"] >= first["train"]["tuned"]["objective"]
    weights = load_weights(tmp_path / "tuned.json")
    assert {k: round(v, 6) for k, v in vars(weights).items()} == second["weights"]["tuned"]
    assert "priors" not in second  # weights only by default
    md = (tmp_path / "tune.md").read_text()
    assert "| train |" in md and "| holdout |" in md
