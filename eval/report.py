"""Run a whole evaluation and write report.md / report.json / qrels.json / runs.json.

:func:`run_evaluation` is what ``srekb eval`` (and ``python -m srekb.eval``) runs: an evaluation,
a tuning (``tune``) or the cross-corpus table (``cross_corpus``), from options to written files."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import Any

from srekb.eval.dataset import Question, load_questions, qrels_of
from srekb.eval.metrics import percentile
from srekb.eval.ragas_metrics import RagasSample, ReferenceContexts, sample_of, score_offline, score_with_judge
from srekb.eval.runner import STRATEGY_NAMES, NaiveHybrid, evaluate_answers, evaluate_search, strategies
from srekb.retrieval import Answer, ConfigError, FeatureReranker, KnowledgeBase, Settings

log = logging.getLogger(__name__)

SEARCH_KEYS = ["recall@1", "recall@3", "recall@10", "mrr@10", "ndcg@10", "must_cite@1", "must_cite@3", "latency_p50_ms", "latency_p95_ms"]
ANSWER_KEYS = ["intent_accuracy", "must_cite_in_citations", "cited_lines_overlap", "abstain_on_unanswerable",
               "abstain_or_caveat_on_unanswerable", "caveat_on_answerable", "false_abstention",
               "abstention_precision",
               "knowledge_coverage", "citation_accuracy", "ask_p50_ms", "marker_faithfulness", "unsupported_sentences"]
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
    report["answers"] = {k: round(answers[k], 4) if answers[k] is not None else None for k in ANSWER_KEYS}
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
        result = score_with_judge(samples, kb.llm_for("judge"), kb.embedder, limit=judge_limit, timeout_s=max(30.0, kb.settings.llm_timeout_s))
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
        if v is None:
            lines.append(f"| {k} | n/a (no generated answer: extractive answers quote their sources) |")
        else:
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


class EvalUsageError(ConfigError):
    """Options that do not go together, or an input file that cannot be read (``srekb eval`` exits 2)."""


@dataclass
class EvalHooks:
    """How a front end follows a long run; every hook is optional."""

    note: Callable[[str], None] | None = None  # a line worth showing: the corpus ingest summary
    tune_pass: Callable[[int, float, float], None] | None = None  # a tuning pass: its number, train and holdout scores
    start: Callable[[int], None] | None = None  # the evaluation's units of work, before its first tick
    stage: Callable[[str], None] | None = None  # the strategy (or cross-corpus step) now running
    tick: Callable[[], None] | None = None


@dataclass
class Evaluation:
    """What a run produced: the Markdown to show, the report, where its files went, and why it fails (when it does)."""

    markdown: str
    report: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    warning: str | None = None
    gate_failures: list[str] = field(default_factory=list)
    regressions: list[str] = field(default_factory=list)  # gating regressions against the baseline (with fail_on_regression)

    @property
    def passed(self) -> bool:
        return not self.gate_failures and not self.regressions


def run_evaluation(
    settings: Settings,
    dataset: Path,
    out_dir: Path,
    *,
    corpus: Sequence[Path] = (),
    exclude: Sequence[str] = ("questions*.jsonl",),
    baseline: Path | None = None,
    fail_on_regression: bool = False,
    gate: Path | None = None,
    weights: Path | None = None,
    judge: bool = True,
    judge_limit: int = 40,
    tune: bool = False,
    tune_priors: bool = False,
    resume: bool | None = None,
    max_iter: int = 8,
    holdout: float = 0.3,
    cross_corpus: bool = False,
    cross_root: Path = Path(".srekb-eval"),
    refit: bool = True,
    write_model: bool = False,
    hooks: EvalHooks | None = None,
) -> Evaluation:
    """Evaluate the strategies and answers on ``dataset`` (report.md, report.json, strategies.png
    under ``out_dir``), or tune the reranker weights (``tune``: tuned.json), or run leave-one-corpus-out
    over eval/corpora.json with one store per corpus under ``cross_root`` (``cross_corpus``).

    Raises :class:`EvalUsageError` for options that do not go together or an unreadable baseline or
    gate file, and ``SreKbError`` when the corpus, store or model fails."""
    hooks = hooks or EvalHooks()
    if not tune and (tune_priors or resume is not None):
        raise EvalUsageError("--tune-priors, --resume and --restart only apply with --tune")
    if tune and (baseline or gate or fail_on_regression):
        raise EvalUsageError("--baseline, --gate and --fail-on-regression apply to an evaluation, not to --tune")
    if fail_on_regression and baseline is None:
        raise EvalUsageError("--fail-on-regression needs --baseline OLD/report.json")
    old_report = _read_json(baseline, "baseline report") if baseline else None
    if old_report is not None and not (isinstance(old_report, dict) and isinstance(old_report.get("strategies"), dict)):
        raise EvalUsageError(f"{baseline} is not a report.json written by `srekb eval` (no strategies)")
    thresholds = _read_json(gate, "gate file") if gate else None
    if cross_corpus:
        return _cross_corpus(settings, cross_root, out_dir, thresholds, refit=refit, write_model=write_model, hooks=hooks)
    if write_model:
        raise EvalUsageError("--write-model applies with --cross-corpus")

    from srekb.eval.tune import load_weights

    tuned = load_weights(weights) if weights else None
    questions = load(dataset)
    if corpus:
        _ingest(settings, corpus, exclude, hooks)
    kb = KnowledgeBase(settings, query_cache_size=0)  # every strategy's latency pays for its own query embedding
    if tuned is not None:
        if not isinstance(kb.reranker, FeatureReranker):
            kb.close()
            raise EvalUsageError("--weights applies to the feature reranker only")
        kb.reranker.weights = tuned
    if tune:
        return _tune(kb, questions, out_dir, holdout=holdout, max_iter=max_iter, tune_priors=tune_priors, resume=resume, hooks=hooks)

    title = f"sre-kb evaluation: {dataset}"
    if hooks.start:
        hooks.start(len(STRATEGY_NAMES) * sum(q.answerable for q in questions) + len(questions))
    try:
        report = run(kb, questions, progress=hooks.stage, judge=None if judge else False, judge_limit=judge_limit, tick=hooks.tick)
    finally:
        kb.close()
    if tuned is not None:
        report["rerank_weights_from"] = str(weights)
    if old_report is not None:
        from srekb.eval.compare import compare

        report["baseline"] = compare(report, old_report, str(baseline))
    failures = gate_failures(report, thresholds) if thresholds else []
    if thresholds:
        report["gate"] = {"path": str(gate), "failures": failures}
    write(report, out_dir, title, questions)
    return Evaluation(
        markdown=to_markdown(report, title), report=report, notes=[f"report written to {out_dir}/report.md, report.json and strategies.png"],
        gate_failures=failures, regressions=list(report["baseline"]["gating_regressions"]) if fail_on_regression else [],
    )


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise EvalUsageError(f"cannot read the {what} {path}: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise EvalUsageError(f"the {what} {path} is not valid JSON ({exc})") from exc


def _ingest(settings: Settings, corpus: Sequence[Path], exclude: Sequence[str], hooks: EvalHooks) -> None:
    """Ingest the corpus first (incremental: an unchanged corpus costs a scan)."""
    from srekb.ingest.pipeline import Ingestor
    from srekb.retrieval import make_embedder, open_store

    embedder = make_embedder(settings)
    store = open_store(settings, embedder.dim, embedder.name)
    try:
        rep = Ingestor(store, embedder, settings).run(list(corpus), exclude=list(exclude))
    finally:
        store.close()
    if hooks.note:
        hooks.note(f"corpus: {len(rep.added)} added, {len(rep.updated)} updated, {len(rep.unchanged)} unchanged, {len(rep.skipped)} skipped")


def _tune(kb: KnowledgeBase, questions: list[Question], out_dir: Path, *, holdout: float, max_iter: int, tune_priors: bool,
          resume: bool | None, hooks: EvalHooks) -> Evaluation:
    from srekb.eval.tune import run_tuning

    try:
        result = run_tuning(kb, questions, out_dir, holdout=holdout, max_iter=max_iter, tune_priors=tune_priors, resume=resume,
                            progress=hooks.tune_pass)
    finally:
        kb.close()
    return Evaluation(markdown=(out_dir / "tune.md").read_text(), report=result, warning=result.get("warning") or None,
                      notes=[f"tuned weights written to {out_dir}/tuned.json (state {out_dir}/tune-state.json)"])


def _cross_corpus(settings: Settings, root: Path, out_dir: Path, thresholds: Any, *, refit: bool, write_model: bool,
                  hooks: EvalHooks) -> Evaluation:
    """The held-out table (and the shipped model with ``write_model``)."""
    from srekb.eval.cross import gate_failures as cross_gate_failures
    from srekb.eval.cross import run_cross_corpus
    from srekb.eval.cross import to_markdown as cross_markdown

    report = run_cross_corpus(settings, root, fit=refit, write_model=write_model, progress=hooks.stage)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "cross-corpus.json").write_text(json.dumps(report, indent=1, default=str))
    md = cross_markdown(report)
    (out_dir / "cross-corpus.md").write_text(md)
    notes = [f"report written to {out_dir}/cross-corpus.md and cross-corpus.json"]
    if report.get("model_written"):
        notes.append(f"model written to {report['model_written']}")
    failures = cross_gate_failures(report, thresholds.get("cross_corpus", {})) if isinstance(thresholds, dict) else []
    return Evaluation(markdown=md, report=report, notes=notes, gate_failures=failures)
