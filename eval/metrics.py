"""IR and answer metrics over plain data (beir-style): qrels ``{qid: {doc: grade}}`` and runs
``{qid: {doc: score}}``, documents being file paths. Every function handles ties (stable by
score, then by doc id), empty runs and empty qrels explicitly."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

Qrels = Mapping[str, Mapping[str, int]]
Run = Mapping[str, Mapping[str, float]]


def ranked(scores: Mapping[str, float]) -> list[str]:
    """Docs best first; ties broken by doc id so results are deterministic."""
    return [d for d, _ in sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))]


def recall_at(relevant: Mapping[str, int], ranking: Sequence[str], k: int) -> float:
    rel = {d for d, g in relevant.items() if g > 0}
    if not rel:
        return 0.0
    return len(rel & set(ranking[:k])) / len(rel)


def hit_at(doc: str, ranking: Sequence[str], k: int) -> float:
    return 1.0 if doc in ranking[:k] else 0.0


def mrr_at(relevant: Mapping[str, int], ranking: Sequence[str], k: int = 10) -> float:
    for i, d in enumerate(ranking[:k], 1):
        if relevant.get(d, 0) > 0:
            return 1.0 / i
    return 0.0


def ndcg_at(relevant: Mapping[str, int], ranking: Sequence[str], k: int = 10) -> float:
    dcg = sum((2 ** relevant.get(d, 0) - 1) / math.log2(i + 1) for i, d in enumerate(ranking[:k], 1))
    ideal = sorted((g for g in relevant.values() if g > 0), reverse=True)[:k]
    idcg = sum((2**g - 1) / math.log2(i + 1) for i, g in enumerate(ideal, 1))
    return dcg / idcg if idcg else 0.0


def lines_overlap(a: Sequence[int] | None, b: Sequence[int] | None) -> bool:
    """Do two inclusive line ranges overlap?"""
    if not a or not b:
        return False
    return a[0] <= b[1] and b[0] <= a[1]


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100); 0.0 for no values."""
    if not values:
        return 0.0
    s = sorted(values)
    idx = max(0, min(len(s) - 1, math.ceil(p / 100 * len(s)) - 1))
    return float(s[idx])


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0
