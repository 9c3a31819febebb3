"""One end-to-end evaluation through the real model and engine on the shipped corpus."""

import json
from pathlib import Path

from eval.dataset import load_questions
from eval.report import gate_failures, run, write
from tests.conftest import SHIPPED_QUESTIONS


def test_eval_run_writes_reports(shipped_kb, tmp_path):
    questions = load_questions(SHIPPED_QUESTIONS)
    report = run(shipped_kb, questions)
    write(report, tmp_path, "shipped", questions)
    data = json.loads((tmp_path / "report.json").read_text())
    ours = data["strategies"]["hybrid + rerank + intent"]
    naive = data["strategies"]["naive hybrid (rank-bm25 + dense, RRF k=60)"]
    assert ours["mrr@10"] > naive["mrr@10"] and ours["ndcg@10"] > naive["ndcg@10"]
    assert data["answers"]["false_abstention"] <= 0.05
    assert set(json.loads((tmp_path / "qrels.json").read_text())) == {q.id for q in questions if q.answerable}
    runs = json.loads((tmp_path / "runs.json").read_text())
    assert set(runs) == set(data["strategies"]) and all(runs[s] for s in runs)
    assert "| hybrid + rerank + intent |" in (tmp_path / "report.md").read_text()
    # The CI quality gate: thresholds kept in the repo.
    gate = json.loads((Path(__file__).resolve().parents[2] / "eval" / "gate.json").read_text())
    assert gate_failures(data, gate) == []


def test_gate_flags_regressions():
    report = {"strategies": {"hybrid + rerank + intent": {"mrr@10": 0.5, "ndcg@10": 0.9}}, "answers": {"false_abstention": 0.1}}
    gate = {"search": {"mrr@10": 0.8, "ndcg@10": 0.8}, "answers": {"false_abstention_max": 0.02}}
    assert gate_failures(report, gate) == ["mrr@10 0.500 < 0.8", "false_abstention 0.100 > 0.02"]
