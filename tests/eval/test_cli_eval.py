"""``srekb eval`` as CI runs it: a real process on the shipped corpus store."""

import json
import os
import subprocess
import sys

from tests.conftest import ROOT, SHIPPED_QUESTIONS

OURS = "hybrid + rerank + intent"


def srekb(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "RAGAS_DO_NOT_TRACK": "true"}
    for key in ("GOOGLE_API_KEY", "GEMINI_API_KEY", "SRE_KB_GOOGLE_API_KEY"):
        env.pop(key, None)
    return subprocess.run([sys.executable, "-m", "srekb.api.cli", *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)


def subset(path, answerable: int = 10, unanswerable: int = 3) -> None:
    records = [json.loads(line) for line in SHIPPED_QUESTIONS.read_text().splitlines() if line.strip()]
    yes = [r for r in records if r.get("answerable", True) is not False][:answerable]
    no = [r for r in records if r.get("answerable", True) is False][:unanswerable]
    path.write_text("".join(json.dumps(r) + "\n" for r in yes + no))


def test_srekb_eval_writes_reports_chart_and_baseline_deltas(cli_store_dir, tmp_path):
    dataset = tmp_path / "questions.jsonl"
    subset(dataset)
    # A baseline better than anything real: every strategy metric and answer metric regresses.
    baseline = {
        "strategies": {OURS: {"mrr@10": 1.0, "ndcg@10": 1.0, "must_cite@3": 1.0, "latency_p50_ms": 0.01}},
        "answers": {"must_cite_in_citations": 1.0, "false_abstention": 0.0},
        "latency_stages": {"total": {"p50_ms": 0.01, "p95_ms": 0.01, "n": 1}},
    }
    (tmp_path / "old.json").write_text(json.dumps(baseline))
    out = tmp_path / "out"
    res = srekb("eval", "--store", str(cli_store_dir), "--dataset", str(dataset), "--out", str(out), "--baseline", str(tmp_path / "old.json"))
    assert res.returncode == 0, res.stderr
    for name in ("report.md", "report.json", "runs.json", "qrels.json"):
        assert (out / name).stat().st_size > 0
    assert (out / "strategies.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (out / "report.md").read_text()
    assert "ragas (offline):" in md and "ragas (LLM judge): skipped: no model for the judge task" in md
    assert "Per-stage latency" in md and "| retrieve |" in md
    assert "## Against the baseline" in md and "▼" in md
    data = json.loads((out / "report.json").read_text())
    assert data["questions"] == 13 and data["ragas"]["offline"]["unanswerable"] == 3
    assert data["ragas"]["judge"]["status"] == "skipped"
    regressions = data["baseline"]["regressions"]
    assert any(r.startswith(f"{OURS}: mrr@10") for r in regressions)
    assert any(r.startswith("latency_stages: total p50_ms") for r in regressions)
    assert set(data["baseline"]["added"]) == set(data["strategies"]) - {OURS}
    assert "ragas (offline):" in res.stdout  # the report is printed too


def test_srekb_eval_usage_errors(tmp_path):
    res = srekb("eval", "--tune-priors", "--out", str(tmp_path))
    assert res.returncode == 2 and "only apply with --tune" in res.stderr
    res = srekb("eval", "--baseline", str(tmp_path / "missing.json"), "--out", str(tmp_path))
    assert res.returncode == 2 and "cannot read the baseline report" in res.stderr
    res = srekb("eval", "--fail-on-regression", "--out", str(tmp_path))
    assert res.returncode == 2 and "needs --baseline" in res.stderr


def test_srekb_eval_gate_and_fail_on_regression_exit_1(cli_store_dir, tmp_path):
    dataset = tmp_path / "questions.jsonl"
    subset(dataset, answerable=3, unanswerable=0)
    (tmp_path / "old.json").write_text(json.dumps({"strategies": {OURS: {"mrr@10": 1.01}}, "answers": {}}))
    (tmp_path / "gate.json").write_text(json.dumps({"search": {"ndcg@10": 1.01}}))
    res = srekb("eval", "--store", str(cli_store_dir), "--dataset", str(dataset), "--out", str(tmp_path / "out"), "--no-judge",
                "--baseline", str(tmp_path / "old.json"), "--fail-on-regression", "--gate", str(tmp_path / "gate.json"))
    assert res.returncode == 1
    assert "gate failed: ndcg@10" in res.stderr and f"regressions against the baseline: {OURS}: mrr@10" in res.stderr
    data = json.loads((tmp_path / "out" / "report.json").read_text())  # the report is still written
    assert data["gate"]["failures"] and data["baseline"]["gating_regressions"]
    assert data["ragas"]["judge"] == {"status": "skipped", "reason": "disabled (--no-judge)"}
