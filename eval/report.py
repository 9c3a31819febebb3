"""Run a whole evaluation and write report.md / report.json / qrels.json / runs.json."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from eval.dataset import Question, load_questions, qrels_of
from eval.runner import NaiveHybrid, evaluate_answers, evaluate_search, strategies
from retrieval.kb import KnowledgeBase

log = logging.getLogger(__name__)

SEARCH_KEYS = ["recall@1", "recall@3", "recall@10", "mrr@10", "ndcg@10", "must_cite@1", "must_cite@3", "latency_p50_ms", "latency_p95_ms"]
ANSWER_KEYS = ["intent_accuracy", "must_cite_in_citations", "cited_lines_overlap", "abstain_on_unanswerable", "false_abstention",
               "knowledge_coverage", "citation_accuracy", "ask_p50_ms"]


def run(kb: KnowledgeBase, questions: list[Question], progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Every strategy and the answer metrics, as one JSON-able report."""
    t0 = time.perf_counter()
    naive = NaiveHybrid(kb)
    report: dict[str, Any] = {"questions": len(questions), "answerable": sum(q.answerable for q in questions), "strategies": {}, "per_intent": {}}
    runs: dict[str, Any] = {}
    final = None
    for name, fn in strategies(kb, naive).items():
        if progress:
            progress(name)
        res = evaluate_search(name, fn, questions)
        report["strategies"][name] = {k: round(v, 4) for k, v in res.metrics.items()}
        runs[name] = res.run
        final = res
    assert final is not None
    by_intent: dict[str, list[dict[str, Any]]] = {}
    for row in final.per_question:
        by_intent.setdefault(row["intent"] or "unlabelled", []).append(row)
    for intent, rows in sorted(by_intent.items()):
        report["per_intent"][intent] = {
            k: round(sum(r[k] for r in rows) / len(rows), 4) for k in ("recall@3", "mrr@10", "ndcg@10", "must_cite@3")
        } | {"n": len(rows)}
    if progress:
        progress("answers")
    answers = evaluate_answers(kb, questions)
    report["answers"] = {k: round(answers[k], 4) for k in ANSWER_KEYS}
    report["answer_rows"] = answers["rows"]
    report["per_question"] = final.per_question
    report["seconds"] = round(time.perf_counter() - t0, 1)
    report["_runs"] = runs
    return report


def to_markdown(report: dict[str, Any], title: str) -> str:
    lines = [f"# {title}", "", f"{report['questions']} questions ({report['answerable']} answerable).", "",
             "| strategy | " + " | ".join(SEARCH_KEYS) + " |", "|---|" + "---|" * len(SEARCH_KEYS)]
    for name, m in report["strategies"].items():
        lines.append(f"| {name} | " + " | ".join(f"{m[k]:.3f}" if "ms" not in k else f"{m[k]:.1f}" for k in SEARCH_KEYS) + " |")
    lines += ["", "Per intent (hybrid + rerank + intent):", "", "| intent | n | recall@3 | mrr@10 | ndcg@10 | must_cite@3 |", "|---|---|---|---|---|---|"]
    for intent, m in report["per_intent"].items():
        lines.append(f"| {intent} | {m['n']} | {m['recall@3']:.3f} | {m['mrr@10']:.3f} | {m['ndcg@10']:.3f} | {m['must_cite@3']:.3f} |")
    lines += ["", "Answers (`ask`):", "", "| metric | value |", "|---|---|"]
    for k, v in report["answers"].items():
        lines.append(f"| {k} | {v:.3f} |" if "ms" not in k else f"| {k} | {v:.1f} |")
    return "\n".join(lines) + "\n"


def write(report: dict[str, Any], out: Path, title: str, questions: list[Question]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    runs = report.pop("_runs")
    (out / "runs.json").write_text(json.dumps(runs, indent=1))
    (out / "qrels.json").write_text(json.dumps(qrels_of(questions), indent=1))
    (out / "report.json").write_text(json.dumps(report, indent=1, default=str))
    (out / "report.md").write_text(to_markdown(report, title))


def load(path: Path) -> list[Question]:
    return load_questions(path)


def gate_failures(report: dict[str, Any], gate: dict[str, Any], strategy: str = "hybrid + rerank + intent") -> list[str]:
    """Metrics below the thresholds kept in the repo (eval/gate.json); empty when the gate passes."""
    failures = []
    ours = report["strategies"][strategy]
    for metric, floor in gate.get("search", {}).items():
        if ours[metric] < floor:
            failures.append(f"{metric} {ours[metric]:.3f} < {floor}")
    for metric, bound in gate.get("answers", {}).items():
        if metric.endswith("_max"):
            value = report["answers"][metric.removesuffix("_max")]
            if value > bound:
                failures.append(f"{metric.removesuffix('_max')} {value:.3f} > {bound}")
        elif report["answers"][metric] < bound:
            failures.append(f"{metric} {report['answers'][metric]:.3f} < {bound}")
    return failures
