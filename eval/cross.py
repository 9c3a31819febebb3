"""Cross-corpus evaluation: leave one corpus out.

Users point sre-kb at their own documents, so the figure that counts is the one on a corpus the
fitted parts (reranker weights, intent classifier, answerability scorer) never saw. For each
corpus in turn, everything fitted is fitted on the *other* corpora (:mod:`eval.fit`), then the
service is measured on the held-out one, beside the naive hybrid on the same questions. The
table reports each held-out corpus, the worst and the mean.

The corpora are listed in ``eval/corpora.json``; each gets its own embedded store under
``--store`` (ingested incrementally, so a second run only reads).
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from srekb.eval.dataset import Question, load_questions
from srekb.eval.metrics import mean
from srekb.eval.runner import NaiveHybrid, evaluate_answers, evaluate_search, naive_windows
from srekb.retrieval.errors import SreKbError
from srekb.retrieval.kb import KnowledgeBase
from srekb.retrieval.settings import Settings

log = logging.getLogger(__name__)

PROJECT = Path(__file__).resolve().parents[1]
CORPORA_FILE = PROJECT / "eval" / "corpora.json"
METADATA = ["SOURCES.md", "LICENSES/*", "questions*.jsonl"]  # never corpus documents
OURS = "sre-kb"
NAIVE = "naive hybrid"
# The held-out table: (key, label, better is higher).
TABLE: list[tuple[str, str, bool]] = [
    ("recall@10", "recall@10", True),
    ("mrr@10", "MRR@10", True),
    ("ndcg@10", "nDCG@10", True),
    ("must_cite@3", "must-cite@3", True),
    ("must_cite_in_citations", "must-cite in citations", True),
    ("intent_accuracy", "intent", True),
    ("abstain_on_unanswerable", "abstains on unanswerable", True),
    ("abstain_or_caveat_on_unanswerable", "abstains or caveats on unanswerable", True),
    ("false_abstention", "false abstention", False),
]


@dataclass
class CorpusSpec:
    name: str
    paths: list[Path]
    questions: Path
    exclude: list[str] = field(default_factory=list)
    ids: str | None = None

    def load_questions(self) -> list[Question]:
        qs = load_questions(self.questions)
        return [q for q in qs if self.ids is None or fnmatch.fnmatch(q.id, self.ids)]

    def available(self) -> bool:
        return self.questions.is_file() and all(p.exists() for p in self.paths)


def load_specs(path: Path = CORPORA_FILE, root: Path = PROJECT) -> list[CorpusSpec]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return [
            CorpusSpec(d["name"], [root / p for p in d["paths"]], root / d["questions"], list(d.get("exclude", [])), d.get("ids"))
            for d in data["corpora"]
        ]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SreKbError(f"{path}: not a corpus list ({exc}); expected {{\"corpora\": [{{name, paths, questions}}]}}") from exc


def corpus_settings(base: Settings, store_root: Path, spec: CorpusSpec) -> Settings:
    return base.model_copy(update={"store": store_root / spec.name, "qdrant_url": None, "rerank_weights": None})


def ingest_corpus(settings: Settings, spec: CorpusSpec) -> None:
    """Ingest (incrementally) one corpus into its own store."""
    from srekb.ingest.pipeline import Ingestor
    from srekb.retrieval.models.embedding import make_embedder
    from srekb.retrieval.store import open_store

    embedder = make_embedder(settings)
    store = open_store(settings, embedder.dim, embedder.name)
    try:
        Ingestor(store, embedder, settings).run(spec.paths, exclude=METADATA + spec.exclude)
    finally:
        store.close()


def cached_naive(kb: KnowledgeBase) -> NaiveHybrid:
    """The naive hybrid of a store, its window vectors cached beside the store (keyed by the
    windows' text): embedding every window is the slowest part of an evaluation."""
    windows = naive_windows(kb)
    digest = hashlib.sha256("\0".join(w.text for w in windows).encode() + kb.embedder.name.encode()).hexdigest()[:16]
    path = Path(kb.settings.store) / f"naive-{digest}.npy"
    if path.exists():
        return NaiveHybrid(kb, windows, np.load(path))
    naive = NaiveHybrid(kb, windows)
    for old in Path(kb.settings.store).glob("naive-*.npy"):
        old.unlink(missing_ok=True)
    np.save(path, naive.vectors)
    return naive


def measure(kb: KnowledgeBase, naive: NaiveHybrid, questions: list[Question]) -> dict[str, dict[str, float]]:
    """The held-out figures of the service and of the naive hybrid on one corpus."""
    ours = evaluate_search(OURS, lambda q: kb.search(q, 10).hits, questions).metrics
    base = evaluate_search(NAIVE, lambda q: naive.search(q, 10), questions).metrics
    answers = evaluate_answers(kb, questions)
    ours |= {k: v for k, v in answers.items() if k != "rows"}
    ours["rows"] = answers["rows"]  # type: ignore[assignment]
    return {OURS: ours, NAIVE: base}


def summarise(per_corpus: dict[str, dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """Worst and mean over the held-out corpora, per metric (worst: lowest, or highest where lower is better)."""
    out: dict[str, dict[str, float]] = {"worst": {}, "mean": {}}
    for key, _, higher in TABLE + [("mrr@10_vs_naive", "", True)]:
        values = [m[OURS][key] for m in per_corpus.values() if not np.isnan(m[OURS].get(key, np.nan))]
        if values:
            out["worst"][key] = min(values) if higher else max(values)
            out["mean"][key] = mean(values)
    return out


def run_cross_corpus(
    base: Settings,
    store_root: Path,
    *,
    specs: list[CorpusSpec] | None = None,
    fit: bool = True,
    write_model: bool = False,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Leave one corpus out over every available corpus; ``fit=False`` measures the shipped model as it is."""
    specs = [s for s in (specs or load_specs()) if s.available()]
    if len(specs) < 2:
        raise SreKbError("cross-corpus evaluation needs at least two corpora: check the paths in eval/corpora.json")
    kbs: dict[str, KnowledgeBase] = {}
    questions: dict[str, list[Question]] = {}
    try:
        for spec in specs:
            if progress:
                progress(f"ingesting {spec.name}")
            settings = corpus_settings(base, store_root, spec)
            ingest_corpus(settings, spec)
            kbs[spec.name] = KnowledgeBase(settings, query_cache_size=4096)
            questions[spec.name] = spec.load_questions()
        data = {}
        if fit or write_model:
            from srekb.eval.fit import apply, collect_corpus, fit_model, shipped

            for name, kb in kbs.items():
                if progress:
                    progress(f"collecting training data from {name}")
                data[name] = collect_corpus(kb, questions[name])
        per_corpus: dict[str, dict[str, dict[str, float]]] = {}
        models: dict[str, Any] = {}
        for name, kb in kbs.items():
            if progress:
                progress(f"held out: {name}")
            if fit:
                model = fit_model({n: d for n, d in data.items() if n != name})
                apply(kb, shipped(model))  # what --write-model ships: the fitted ranker weights are reported, not used
                models[name] = model.summary()
            naive = cached_naive(kb)
            per_corpus[name] = measure(kb, naive, questions[name])
            ours, naive_m = per_corpus[name][OURS], per_corpus[name][NAIVE]
            ours["mrr@10_vs_naive"] = ours["mrr@10"] - naive_m["mrr@10"]
    finally:
        for kb in kbs.values():
            kb.close()
    report: dict[str, Any] = {
        "mode": "leave one corpus out (fitted on the others)" if fit else "shipped model, no refit",
        "corpora": {n: {"questions": len(questions[n]), "answerable": sum(q.answerable for q in questions[n])} for n in questions},
        "held_out": {n: {s: {k: v for k, v in m.items() if k != "rows"} for s, m in per.items()} for n, per in per_corpus.items()},
        "rows": {n: per[OURS].get("rows", []) for n, per in per_corpus.items()},
        "summary": summarise(per_corpus),
        "models": models,
    }
    if write_model:
        from srekb.eval.fit import shipped
        from srekb.retrieval.fitted import MODEL_FILE

        shipped(fit_model(data)).save(MODEL_FILE)
        report["model_written"] = str(MODEL_FILE)
    return report


def to_markdown(report: dict[str, Any]) -> str:
    names = list(report["held_out"])
    lines = [f"# sre-kb cross-corpus evaluation ({report['mode']})", "",
             "| corpus | questions | " + " | ".join(label for _, label, _ in TABLE) + " | naive MRR@10 | naive must-cite@3 |",
             "|---|---|" + "---|" * (len(TABLE) + 2)]

    def cell(v: float | None) -> str:
        return "-" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.3f}"

    for n in names:
        ours, naive = report["held_out"][n][OURS], report["held_out"][n][NAIVE]
        c = report["corpora"][n]
        lines.append(f"| {n} | {c['questions']} ({c['questions'] - c['answerable']} unanswerable) | "
                     + " | ".join(cell(ours.get(k)) for k, _, _ in TABLE) + f" | {cell(naive['mrr@10'])} | {cell(naive['must_cite@3'])} |")
    for agg in ("worst", "mean"):
        s = report["summary"][agg]
        lines.append(f"| **{agg}** | | " + " | ".join(cell(s.get(k)) for k, _, _ in TABLE) + " | | |")
    gaps = ", ".join(f"{n} {report['held_out'][n][OURS]['mrr@10_vs_naive']:+.3f}" for n in names)
    lines += ["", f"MRR@10 over the naive hybrid: {gaps}.", ""]
    return "\n".join(lines)


def gate_failures(report: dict[str, Any], gate: dict[str, Any]) -> list[str]:
    """Held-out thresholds (``eval/gate.json`` ``cross_corpus``: worst-corpus floors and ceilings)."""
    failures = []
    worst = report["summary"]["worst"]
    for metric, bound in gate.items():
        if metric.startswith("_"):
            continue
        key = metric.removesuffix("_max")
        value = worst.get(key)
        if value is None:
            continue
        if metric.endswith("_max") and value > bound:
            failures.append(f"worst {key} {value:.3f} > {bound}")
        elif not metric.endswith("_max") and value < bound:
            failures.append(f"worst {key} {value:.3f} < {bound}")
    return failures
