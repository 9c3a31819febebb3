"""Run a whole evaluation and write report.md / report.json / qrels.json / runs.json."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

from srekb.eval.dataset import Question, load_questions, qrels_of
from srekb.eval.metrics import percentile
from srekb.eval.ragas_metrics import RagasSample, ReferenceContexts, sample_of, score_offline, score_with_judge
from srekb.eval.runner import NaiveHybrid, evaluate_answers, evaluate_search, strategies
from srekb.retrieval.kb import Answer, KnowledgeBase

log = logging.getLogger(__name__)

SEARCH_KEYS = ["recall@1", "recall@3", "recall@10", "mrr@10", "ndcg@10", "must_cite@1", "must_cite@3", "latency_p50_ms", "latency_p95_ms"]
ANSWER_KEYS = ["intent_accuracy", "must_cite_in_citations", "cited_lines_overlap", "abstain_on_unanswerable",
               "abstain_or_caveat_on_unanswerable", "caveat_on_answerable", "false_abstention",
               "abstention_precision",
               "knowledge_coverage", "citation_accuracy", "ask_p50_ms"]
STAGES = ["embed", "intent", "retrieve", "rerank", "answerability", "answer", "total"]


def stage_latency(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """p50/p95 per stage of ``ask`` from each answer's ``timings_ms``; a stage an ask skipped
    (``answer`` when it abstained, ``rerank`` with nothing to rerank) is left out of that stage."""
    out: dict[str, dict[str, float]] = {}
    for stage in STAGES:
        values = [float(r["timings_ms"][stage]) for r in rows if stage in (r.get("timings_ms") or {})]
        if values:
            out[stage] = {"p50_ms": round(percentile(values, 50), 3), "p95_ms": round(percentile(values, 95), 3), "n": len(values)}
    return out


def run(
    kb: KnowledgeBase,
    questions: list[Question],
    progress: Callable[[str], None] | None = None,
    *,
    judge: bool | None = None,
    judge_limit: int = 40,
    tick: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Every strategy, the answer metrics, per-stage latency and the ragas metrics, as one
    JSON-able report. ``judge``: LLM-judged ragas metrics (None: when a Gemini key is set)."""
    t0 = time.perf_counter()
    naive = NaiveHybrid(kb)
    report: dict[str, Any] = {"questions": len(questions), "answerable": sum(q.answerable for q in questions), "strategies": {}, "per_intent": {}}
    runs: dict[str, Any] = {}
    final = None
    report["per_intent_by_strategy"] = {}
    for name, fn in strategies(kb, naive).items():
        if progress:
            progress(name)
        res = evaluate_search(name, fn, questions, tick)
        report["strategies"][name] = {k: round(v, 4) for k, v in res.metrics.items()}
        report["per_intent_by_strategy"][name] = _per_intent(res.per_question)
        runs[name] = res.run
        final = res
    assert final is not None
    report["per_intent"] = _per_intent(final.per_question)
    if progress:
        progress("answers")
    references = ReferenceContexts.from_store(kb.store)
    samples: list[RagasSample] = []

    def keep(q: Question, ans: Answer) -> None:
        samples.append(sample_of(q, ans, references))
        if tick:
            tick()

    answers = evaluate_answers(kb, questions, on_answer=keep)
    report["answers"] = {k: round(answers[k], 4) for k in ANSWER_KEYS}
    report["latency_stages"] = stage_latency(answers["rows"])
    if progress:
        progress("ragas")
    report["ragas"], report["ragas_rows"] = ragas_figures(kb, samples, judge=judge, judge_limit=judge_limit)
    report["answer_rows"] = answers["rows"]
    report["per_question"] = final.per_question
    weights = getattr(kb.reranker, "weights", None)
    if weights is not None and is_dataclass(weights) and not isinstance(weights, type):
        report["rerank_weights"] = asdict(weights)
    report["seconds"] = round(time.perf_counter() - t0, 1)
    report["_runs"] = runs
    return report


def ragas_figures(
    kb: KnowledgeBase, samples: list[RagasSample], *, judge: bool | None = None, judge_limit: int = 40
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """``({"offline": {...}, "judge": {...}}, per-question rows)``."""
    offline = score_offline(samples)
    figures: dict[str, Any] = {"offline": {k: round(v, 4) if isinstance(v, float) else v for k, v in offline["metrics"].items()}}
    if judge is False:
        figures["judge"] = {"status": "skipped", "reason": "disabled (--no-judge)"}
    else:
        key = kb.settings.google_api_key
        result = score_with_judge(samples, key, kb.settings.gemini_model, kb.embedder, limit=judge_limit, timeout_s=max(30.0, kb.settings.llm_timeout_s))
        judged = {r["id"]: r for r in result.pop("rows", [])}
        figures["judge"] = {k: round(v, 4) if isinstance(v, float) else v for k, v in result.items()}
        for row in offline["rows"]:
            if row["id"] in judged:
                row |= {k: v for k, v in judged[row["id"]].items() if k != "id"}
    rows = [{k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()} for row in offline["rows"]]
    return figures, rows


def _per_intent(per_question: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    by_intent: dict[str, list[dict[str, Any]]] = {}
    for row in per_question:
        by_intent.setdefault(row["intent"] or "unlabelled", []).append(row)
    return {
        intent: {k: round(sum(r[k] for r in rows) / len(rows), 4) for k in ("recall@3", "mrr@10", "ndcg@10", "must_cite@3")} | {"n": len(rows)}
        for intent, rows in sorted(by_intent.items())
    }


def to_markdown(report: dict[str, Any], title: str) -> str:
    lines = [f"# {title}", "", f"{report['questions']} questions ({report['answerable']} answerable).", "",
             "| strategy | " + " | ".join(SEARCH_KEYS) + " |", "|---|" + "---|" * len(SEARCH_KEYS)]
    for name, m in report["strategies"].items():
        lines.append(f"| {name} | " + " | ".join(f"{m[k]:.3f}" if "ms" not in k else f"{m[k]:.1f}" for k in SEARCH_KEYS) + " |")
    lines += ["", "Per intent (hybrid + rerank + intent):", "", "| intent | n | recall@3 | mrr@10 | ndcg@10 | must_cite@3 |", "|---|---|---|---|---|---|"]
    for intent, m in report["per_intent"].items():
        lines.append(f"| {intent} | {m['n']} | {m['recall@3']:.3f} | {m['mrr@10']:.3f} | {m['ndcg@10']:.3f} | {m['must_cite@3']:.3f} |")
    by_strategy = report.get("per_intent_by_strategy") or {}
    if by_strategy:
        intents = sorted({i for m in by_strategy.values() for i in m})
        lines += ["", "MRR@10 by intent, every strategy:", "", "| strategy | " + " | ".join(intents) + " |", "|---|" + "---|" * len(intents)]
        for name, m in by_strategy.items():
            lines.append(f"| {name} | " + " | ".join(f"{m[i]['mrr@10']:.3f}" if i in m else "-" for i in intents) + " |")
    lines += ["", "Answers (`ask`):", "", "| metric | value |", "|---|---|"]
    for k, v in report["answers"].items():
        lines.append(f"| {k} | {v:.3f} |" if "ms" not in k else f"| {k} | {v:.1f} |")
    if report.get("latency_stages"):
        lines += ["", "Per-stage latency of `ask` (ms; a stage is counted over the asks that ran it):", "",
                  "| stage | p50 | p95 | n |", "|---|---|---|---|"]
        for stage, m in report["latency_stages"].items():
            lines.append(f"| {stage} | {m['p50_ms']:.1f} | {m['p95_ms']:.1f} | {m['n']} |")
    if report.get("ragas"):
        lines += ragas_markdown(report["ragas"])
    if report.get("baseline"):
        from srekb.eval.compare import to_markdown as baseline_markdown

        lines += baseline_markdown(report["baseline"], SEARCH_KEYS)
    if report.get("rerank_weights"):
        weights = ", ".join(f"{k} {v:g}" for k, v in report["rerank_weights"].items())
        lines += ["", f"Reranker weights ({report.get('rerank_weights_from') or 'defaults'}): {weights}"]
    return "\n".join(lines) + "\n"


def ragas_markdown(ragas: dict[str, Any]) -> list[str]:
    off = ragas["offline"]
    lines = ["", "ragas (offline):", "", "| metric | value | n | compared |", "|---|---|---|---|",
             f"| context_precision | {off['context_precision']:.3f} | {off['n_context']} | retrieved (cited, or top hits) vs reference contexts |",
             f"| context_recall | {off['context_recall']:.3f} | {off['n_context']} | reference contexts found in the retrieved ones |",
             f"| string_similarity | {off['string_similarity']:.3f} | {off['n_answer']} | answer vs reference answer (Levenshtein) |",
             f"| rouge_l | {off['rouge_l']:.3f} | {off['n_answer']} | answer vs reference answer (ROUGE-L F1) |",
             "",
             f"Abstained on {off['abstained']} answerable question(s): recorded as abstained, left out of the answer-similarity means; "
             f"{off['unanswerable']} unanswerable question(s) not scored; {off['no_reference_answer']} without a reference answer; "
             f"{off['unscored']} unscored (NaN from ragas)."]
    judge = ragas.get("judge") or {}
    if judge.get("status") in ("ok", "partial"):
        lines += ["", f"ragas (LLM judge: {judge.get('judge')}, {judge.get('n', 0)} answered questions):", "",
                  "| metric | value |", "|---|---|"]
        for k in ("faithfulness", "answer_relevancy"):
            v = judge.get(k)
            lines.append(f"| {k} | {v:.3f} |" if isinstance(v, float) else f"| {k} | n/a |")
        if judge.get("status") == "partial":
            lines.append(f"\nThe judge stopped early: {judge.get('reason')}")
    else:
        lines += ["", f"ragas (LLM judge): {judge.get('status', 'skipped')}: {judge.get('reason', '')}"]
    return lines


def write(report: dict[str, Any], out: Path, title: str, questions: list[Question]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    runs = report.pop("_runs")
    (out / "runs.json").write_text(json.dumps(runs, indent=1))
    (out / "qrels.json").write_text(json.dumps(qrels_of(questions), indent=1))
    (out / "report.json").write_text(json.dumps(report, indent=1, default=str))
    (out / "report.md").write_text(to_markdown(report, title))
    try:
        from srekb.eval.chart import strategies_chart

        strategies_chart(report["strategies"], out / "strategies.png", title)
    except ImportError as exc:  # matplotlib is in the eval extra
        log.warning("strategies.png not written: %s (pip install 'sre-kb[eval]')", exc)


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
