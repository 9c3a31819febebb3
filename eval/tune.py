"""Tuning the reranker (the seed's SREIterativeOptimizer, applied to retrieval).

Candidates are retrieved once per question (one engine query each) with their features; every
weight setting is then scored in pure Python, so a search over hundreds of settings takes
seconds. Coordinate search: coarse multiplicative steps first, then fine ones; a change is kept
only when it improves the target metric on the training questions by more than ``min_gain``;
it stops when a full pass changes nothing or after ``max_iter`` passes. A held-out split is
scored alongside and reported, never optimised.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from eval.dataset import Question
from eval.metrics import mean, mrr_at, ndcg_at
from eval.runner import paths_in_order
from retrieval.kb import KnowledgeBase
from retrieval.rerank import RerankWeights
from retrieval.types import Hit, Intent, SourceType

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
        feats = reranker.features(res.question, res.hits, strategy)  # type: ignore[attr-defined]
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
        scored.sort(key=lambda x: -x[0])
        rankings[c.qid] = paths_in_order([h for _, h in scored])
    return rankings


def objective(cands: list[Candidates], params: Params, qrels: dict[str, dict[str, int]]) -> float:
    """Mean of MRR@10 and nDCG@10 by file."""
    rankings = score_run(cands, params)
    return mean([(mrr_at(qrels[q], r) + ndcg_at(qrels[q], r)) / 2 for q, r in rankings.items()])


@dataclass
class TuneState:
    iteration: int = 0
    best: float = 0.0
    params: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)


def tune(
    train: list[Candidates],
    holdout: list[Candidates],
    qrels: dict[str, dict[str, int]],
    start: Params,
    *,
    max_iter: int = 8,
    min_gain: float = 0.001,
    checkpoint: Path | None = None,
    progress: Callable[[int, float, float], None] | None = None,
) -> tuple[Params, TuneState]:
    """Coordinate search over weights and priors; resumes from ``checkpoint`` if present."""
    state = TuneState()
    params = start
    if checkpoint and checkpoint.exists():
        data = json.loads(checkpoint.read_text())
        state = TuneState(**data)
        params = Params(**state.params)
        log.info("resuming tuning at iteration %d (best %.4f)", state.iteration, state.best)
    best = objective(train, params, qrels)
    state.best = best
    steps = [[0.0, 0.5, 2.0], [0.7, 1.4], [0.85, 1.2]]
    while state.iteration < max_iter:
        improved = False
        factors = steps[min(state.iteration, len(steps) - 1)]
        knobs: list[tuple[str, str | None]] = [(k, None) for k in params.weights] + [
            (i, t) for i in params.priors for t in params.priors[i]
        ]
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
        held = objective(holdout, params, qrels) if holdout else 0.0
        state.history.append({"iteration": state.iteration, "train": round(best, 4), "holdout": round(held, 4)})
        if checkpoint:
            checkpoint.parent.mkdir(parents=True, exist_ok=True)
            tmp = checkpoint.with_suffix(".tmp")
            tmp.write_text(json.dumps(asdict(state)))
            tmp.replace(checkpoint)
        if progress:
            progress(state.iteration, best, held)
        if not improved and state.iteration >= 2:
            break
    return params, state


def weights_of(params: Params) -> RerankWeights:
    return RerankWeights(**params.weights)
