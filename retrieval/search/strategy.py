"""Retrieval strategies as data: one per intent, chosen by the intent classifier.

A strategy never hard-filters (a troubleshooting question may well be answered by a doc); it
sets the fusion weights, the candidate pool sizes and the source-type prior the reranker uses.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from srekb.retrieval.types import Intent, SourceType


@dataclass(frozen=True)
class Strategy:
    """How to search for one intent."""

    name: str = "general"
    dense_weight: float = 1.0
    sparse_weight: float = 1.0
    prefetch: int = 60
    candidates: int = 40
    rrf_k: int = 60
    type_prior: dict[SourceType, float] = field(default_factory=dict)

    def with_overrides(self, **kw: Any) -> Strategy:
        return replace(self, **kw)


DEFAULT_STRATEGIES: dict[Intent, Strategy] = {
    Intent.TROUBLESHOOTING: Strategy(
        name="troubleshooting", dense_weight=1.0, sparse_weight=1.0,
        type_prior={SourceType.RUNBOOK: 1.0, SourceType.INCIDENT: 0.5, SourceType.DOC: 0.6, SourceType.CONFIG: 0.2},
    ),
    Intent.CONFIGURATION: Strategy(
        name="configuration", dense_weight=1.0, sparse_weight=1.2,
        type_prior={SourceType.CONFIG: 0.9, SourceType.DOC: 1.0, SourceType.RUNBOOK: 0.6, SourceType.INCIDENT: 0.1},
    ),
    Intent.MONITORING: Strategy(
        name="monitoring", dense_weight=1.0, sparse_weight=1.3,
        type_prior={SourceType.CONFIG: 1.0, SourceType.RUNBOOK: 0.8, SourceType.DOC: 0.6, SourceType.INCIDENT: 0.1},
    ),
    Intent.GENERAL: Strategy(
        name="general", dense_weight=1.0, sparse_weight=1.0,
        type_prior={SourceType.INCIDENT: 1.0, SourceType.DOC: 0.9, SourceType.RUNBOOK: 0.6, SourceType.CONFIG: 0.3},
    ),
}


def blend(strategies: dict[Intent, Strategy], probs: dict[Intent, float]) -> Strategy:
    """One strategy for an unsure intent: fusion weights and source priors averaged by the
    classifier's probabilities; the likeliest intent names it (it picks the section cues)."""
    total = sum(probs.values()) or 1.0
    p = {i: v / total for i, v in probs.items()}
    top = max(p, key=lambda i: p[i])
    types = {t for s in strategies.values() for t in s.type_prior}
    return replace(
        strategies[top],
        dense_weight=sum(p[i] * strategies[i].dense_weight for i in p),
        sparse_weight=sum(p[i] * strategies[i].sparse_weight for i in p),
        type_prior={t: sum(p[i] * strategies[i].type_prior.get(t, 0.5) for i in p) for t in types},
    )
