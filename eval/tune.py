"""Tuning the reranker (the seed's SREIterativeOptimizer, applied to retrieval).

Candidates are retrieved once per question (one engine query each) with their features; every
weight setting is then scored in pure Python, so a search over hundreds of settings takes
seconds. Coordinate search: coarse multiplicative steps first, then fine ones; a change is kept
only when it improves the target metric on the training questions by more than ``min_gain``;
it stops when a pass with the finest steps changes nothing or after ``max_iter`` passes. A
held-out split is scored alongside and reported, never optimised.

Only the weights are tuned by default: tuning the per-intent source priors as well over-fitted
(+0.06 on the training split, -0.04 on the real corpus); ``tune_priors=True`` (``--tune-priors``)
opts in. The state is checkpointed after every pass (``<out>/tune-state.json``), so an
interrupted run resumes where it stopped. The result is ``<out>/tuned.json``:
``{"rerank_weights": {...}}``, read by :func:`load_weights`.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from srekb.eval.dataset import Question, qrels_of
from srekb.eval.metrics import mean, mrr_at, ndcg_at
from srekb.eval.runner import paths_in_order
from srekb.retrieval.kb import KnowledgeBase
from srekb.retrieval.search.rerank import load_weights as load_weights  # re-exported: it lives with RerankWeights
from srekb.retrieval.types import Hit, Intent, SourceType

log = logging.getLogger(__name__)


@dataclass
class Candidates:
    qid: str
    intent: Intent
    hits: list[Hit]
    features: list[dict[str, float]]


def split(questions: list[Question], holdout: float = 0.3) -> tuple[list[Question], list[Question]]:
    """Deterministic train/holdout split by a hash of the question id."""
    def bucket(q: Question) -> float:
        return int(hashlib.sha256(q.id.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF

    train = [q for q in questions if bucket(q) >= holdout]
    test = [q for q in questions if bucket(q) < holdout]
    return train, test


def collect(kb: KnowledgeBase, questions: list[Question]) -> list[Candidates]:
    """Fused candidates and their reranker features, once per answerable question."""
    out = []
    reranker = kb.reranker
    for q in questions:
        if not q.answerable:
            continue
        res = kb.search(q.question, kb.strategies[Intent.GENERAL].candidates, rerank=False)
        strategy = kb.strategies[res.intent]
        feats = [f.as_dict() for f in reranker.features(res.question, res.hits, strategy)]  # type: ignore[attr-defined]
        out.append(Candidates(q.id, res.intent, res.hits, feats))
    return out


@dataclass
class Params:
    weights: dict[str, float]
    priors: dict[str, dict[str, float]]  # intent -> source type -> prior

    @classmethod
    def from_kb(cls, kb: KnowledgeBase) -> Params:
        w = asdict(kb.reranker.weights)  # type: ignore[attr-defined]
        priors = {i.value: {t.value: kb.strategies[i].type_prior.get(t, 0.5) for t in SourceType} for i in Intent}
        return cls(w, priors)


def score_run(cands: list[Candidates], params: Params) -> dict[str, list[str]]:
    rankings = {}
    for c in cands:
        scored = []
        for h, f in zip(c.hits, c.features, strict=True):
            prior = params.priors[c.intent.value][h.chunk.source_type.value]
            s = sum(params.weights[k] * v for k, v in f.items() if k != "prior") + params.weights["prior"] * prior
            scored.append((s, h))
        scored.sort(key=lambda x: (-x[0], x[1].chunk.path, x[1].chunk.line_start))  # ties: deterministic
        rankings[c.qid] = paths_in_order([h for _, h in scored])
    return rankings


def objective(cands: list[Candidates], params: Params, qrels: dict[str, dict[str, int]]) -> float:
    """Mean of MRR@10 and nDCG@10 by file."""
    rankings = score_run(cands, params)
    return mean([(mrr_at(qrels[q], r) + ndcg_at(qrels[q], r)) / 2 for q, r in rankings.items()])


def half_metrics(cands: list[Candidates], params: Params, qrels: dict[str, dict[str, int]]) -> dict[str, float]:
    """MRR@10, nDCG@10 and the objective of one split under ``params``."""
    rankings = score_run(cands, params)
    mrr = mean([mrr_at(qrels[q], r) for q, r in rankings.items()])
    ndcg = mean([ndcg_at(qrels[q], r) for q, r in rankings.items()])
    return {"mrr@10": round(mrr, 4), "ndcg@10": round(ndcg, 4), "objective": round((mrr + ndcg) / 2, 4)}


# Multiplicative steps per pass: coarse, medium, then fine until a pass changes nothing.
STEPS: list[list[float]] = [[0.0, 0.5, 2.0], [0.7, 1.4], [0.85, 1.2]]


@dataclass
class TuneState:
    """What ``tune-state.json`` holds after every pass: enough to resume where it stopped."""

    iteration: int = 0
    best: float = 0.0
    params: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    done: bool = False  # a pass with the finest steps changed nothing
    fingerprint: str = ""  # questions, candidates, start point and search settings it was computed for
    start: dict[str, float] = field(default_factory=dict)  # objective of the start point (train / holdout)
    resumed_at: list[int] = field(default_factory=list)  # iterations at which a run picked it up

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TuneState:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def fingerprint(
    train: list[Candidates], holdout: list[Candidates], start: Params, *, tune_priors: bool, min_gain: float, problem: str = ""
) -> str:
    """Identifies a tuning problem: a checkpoint is resumed only for the same one. The questions
    enter by id (and ``problem``: what the caller knows of the questions' text and the corpus),
    not by candidates: the engine orders RRF ties arbitrarily, so the candidate lists of two
    runs over the same index can differ in the order (and at the cut-off) of tied chunks."""
    payload = {"train": sorted(c.qid for c in train), "holdout": sorted(c.qid for c in holdout), "start": asdict(start),
               "tune_priors": tune_priors, "min_gain": min_gain, "steps": STEPS, "problem": problem}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def problem_of(kb: KnowledgeBase, questions: list[Question]) -> str:
    """The questions' text and the corpus (every source's content hash) as one digest."""
    h = hashlib.sha256()
    for q in sorted(questions, key=lambda q: q.id):
        h.update(json.dumps([q.id, q.question, q.relevant, q.must_cite, q.answerable]).encode())
    for path, rec in sorted(kb.store.sources().items()):
        h.update(f"{path}\0{rec.sha256}\0".encode())
    return h.hexdigest()[:16]


def _read_state(path: Path) -> TuneState | None:
    try:
        return TuneState.from_dict(json.loads(path.read_text()))
    except (OSError, ValueError, TypeError) as exc:
        log.warning("ignoring unreadable tuning checkpoint %s (%s)", path, exc)
        return None


def _write_state(path: Path, state: TuneState) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(asdict(state), indent=1))
    tmp.replace(path)  # atomic: an interrupted write never leaves half a checkpoint


def tune(
    train: list[Candidates],
    holdout: list[Candidates],
    qrels: dict[str, dict[str, int]],
    start: Params,
    *,
    max_iter: int = 8,
    min_gain: float = 0.001,
    tune_priors: bool = False,
    checkpoint: Path | None = None,
    resume: bool | None = None,
    progress: Callable[[int, float, float], None] | None = None,
    problem: str = "",
) -> tuple[Params, TuneState]:
    """Coordinate search over the reranker weights (and the per-intent source priors only with
    ``tune_priors``: tuning them over-fitted, see :class:`RerankWeights`).

    The state is written to ``checkpoint`` after every pass. ``resume``: None resumes from the
    checkpoint when it exists and was written for the same problem (else starts afresh, with a
    warning); True insists on resuming (an error if it cannot); False starts afresh."""
    from srekb.retrieval.errors import SreKbError

    fp = fingerprint(train, holdout, start, tune_priors=tune_priors, min_gain=min_gain, problem=problem)
    saved = _read_state(checkpoint) if checkpoint is not None and checkpoint.exists() and resume is not False else None
    if saved is not None and saved.fingerprint != fp:
        if resume:
            raise SreKbError(f"{checkpoint} was written for other questions, another corpus or other settings "
                             "(--tune-priors, --holdout, --weights): start afresh with --restart")
        log.warning("tuning checkpoint %s is for another problem; starting afresh", checkpoint)
        saved = None
    if resume and saved is None:
        raise SreKbError(f"nothing to resume: no usable tuning checkpoint at {checkpoint}")
    if saved is not None:
        state, params = saved, Params(**saved.params)
        state.resumed_at.append(state.iteration)
        log.info("resuming tuning at iteration %d (best %.4f)", state.iteration, state.best)
    else:
        params = start
        state = TuneState(fingerprint=fp, params=asdict(start), start={
            "train": round(objective(train, start, qrels), 4), "holdout": round(objective(holdout, start, qrels), 4) if holdout else 0.0,
        })
    best = objective(train, params, qrels)
    state.best = best
    while not state.done and state.iteration < max_iter:
        improved = False
        factors = STEPS[min(state.iteration, len(STEPS) - 1)]
        knobs: list[tuple[str, str | None]] = [(k, None) for k in params.weights]
        if tune_priors:
            knobs += [(i, t) for i in params.priors for t in params.priors[i]]
        for name, sub in knobs:
            current = params.weights[name] if sub is None else params.priors[name][sub]
            candidates = [current * f for f in factors] + ([0.5] if current == 0 else [])
            for value in candidates:
                trial = Params(dict(params.weights), {i: dict(p) for i, p in params.priors.items()})
                if sub is None:
                    trial.weights[name] = value
                else:
                    trial.priors[name][sub] = value
                score = objective(train, trial, qrels)
                if score > best + min_gain:
                    best, params, improved = score, trial, True
        state.iteration += 1
        state.best = best
        state.params = asdict(params)
        state.done = not improved and state.iteration >= len(STEPS)
        held = objective(holdout, params, qrels) if holdout else 0.0
        state.history.append({"iteration": state.iteration, "train": round(best, 4), "holdout": round(held, 4), "changed": improved})
        if checkpoint is not None:
            _write_state(checkpoint, state)
        if progress:
            progress(state.iteration, best, held)
    return params, state


# ------------------------------------------------------------------- the tuned settings file ---

TUNED_FILE = "tuned.json"
STATE_FILE = "tune-state.json"




def write_tuned(path: Path, params: Params, *, tune_priors: bool, summary: dict[str, Any]) -> Path:
    """``tuned.json``: the weights the service loads (+ the priors, informational, when tuned)."""
    data: dict[str, Any] = {"rerank_weights": {k: round(v, 6) for k, v in params.weights.items()}}
    if tune_priors:
        data["type_priors"] = params.priors
    data["tuning"] = summary
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1) + "\n")
    return path


def run_tuning(
    kb: KnowledgeBase,
    questions: list[Question],
    out_dir: Path,
    *,
    holdout: float = 0.3,
    max_iter: int = 8,
    tune_priors: bool = False,
    resume: bool | None = None,
    progress: Callable[[int, float, float], None] | None = None,
) -> dict[str, Any]:
    """``srekb eval --tune``: split, collect candidates, tune with a checkpoint per pass
    (``<out>/tune-state.json``), and write ``<out>/tuned.json``, ``tune.json`` and ``tune.md``."""
    train_q, test_q = split(questions, holdout)
    qrels = qrels_of(questions)
    train, held = collect(kb, train_q), collect(kb, test_q)
    start = Params.from_kb(kb)
    params, state = tune(train, held, qrels, start, max_iter=max_iter, tune_priors=tune_priors,
                         checkpoint=out_dir / STATE_FILE, resume=resume, progress=progress, problem=problem_of(kb, questions))
    result: dict[str, Any] = {
        "objective": "mean of MRR@10 and nDCG@10 (file level), strategy 'hybrid + rerank + intent'",
        "holdout_fraction": holdout,
        "tune_priors": tune_priors,
        "iterations": state.iteration,
        "converged": state.done,
        "resumed_at": state.resumed_at,
        "train": {"n": len(train), "default": half_metrics(train, start, qrels), "tuned": half_metrics(train, params, qrels)},
        "holdout": {"n": len(held), "default": half_metrics(held, start, qrels), "tuned": half_metrics(held, params, qrels)},
        "weights": {"default": start.weights, "tuned": {k: round(v, 6) for k, v in params.weights.items()}},
        "history": state.history,
    }
    if tune_priors:
        result["priors"] = {"default": start.priors, "tuned": params.priors}
    gain = result["holdout"]["tuned"]["objective"] - result["holdout"]["default"]["objective"]
    if held and gain < 0:
        result["warning"] = f"the tuned settings are worse on the held-out questions ({gain:+.4f}): over-fitted; keep the defaults"
    summary = {k: result[k] for k in ("objective", "iterations", "converged", "tune_priors")}
    summary |= {"train": result["train"], "holdout": result["holdout"]}
    write_tuned(out_dir / TUNED_FILE, params, tune_priors=tune_priors, summary=summary)
    (out_dir / "tune.json").write_text(json.dumps(result, indent=1) + "\n")
    (out_dir / "tune.md").write_text(tune_markdown(result))
    return result


def tune_markdown(result: dict[str, Any]) -> str:
    lines = ["# sre-kb reranker tuning", "",
             f"Objective: {result['objective']}. {result['iterations']} pass(es)"
             + (", converged" if result["converged"] else ", stopped at --max-iter")
             + (f", resumed at pass {', '.join(map(str, result['resumed_at']))}" if result["resumed_at"] else "")
             + (". Source priors tuned too (--tune-priors)." if result["tune_priors"] else ". Weights only (priors not tuned)."), "",
             "| split | n | MRR@10 default | MRR@10 tuned | nDCG@10 default | nDCG@10 tuned | objective default | objective tuned |",
             "|---|---|---|---|---|---|---|---|"]
    for half in ("train", "holdout"):
        h = result[half]
        d, t = h["default"], h["tuned"]
        lines.append(f"| {half} | {h['n']} | {d['mrr@10']:.3f} | {t['mrr@10']:.3f} | {d['ndcg@10']:.3f} | {t['ndcg@10']:.3f} | "
                     f"{d['objective']:.3f} | {t['objective']:.3f} |")
    if result.get("warning"):
        lines += ["", f"**Warning:** {result['warning']}"]
    lines += ["", "| weight | default | tuned |", "|---|---|---|"]
    for k, v in result["weights"]["default"].items():
        lines.append(f"| {k} | {v:g} | {result['weights']['tuned'][k]:g} |")
    lines += ["", "| pass | train | holdout | changed |", "|---|---|---|---|"]
    for h in result["history"]:
        lines.append(f"| {h['iteration']} | {h['train']:.4f} | {h['holdout']:.4f} | {'yes' if h.get('changed') else 'no'} |")
    lines += ["", f"Load the weights with `eval.tune.load_weights('{TUNED_FILE}')` (the service: `SRE_KB_RERANK_WEIGHTS=<out>/{TUNED_FILE}`)."]
    return "\n".join(lines) + "\n"

