"""Rerankers: order fused candidates by features the engine does not see.

The default :class:`FeatureReranker` needs no model weights (none can be installed here). It
scores each candidate by a weighted sum of: the engine's fused rank, the dense cosine of the
whole chunk, its BM25 score, exact identifier matches (alert names, metrics, flags, incident
ids, quoted error strings), question-term overlap with the title/section, the intent's
source-type prior, and recency for incidents. Its weights are measured on the labelled
questions (see ``eval/``). A second stage (``judge.py``: a cross-encoder or an LLM) may reorder its head.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Protocol

from srekb.retrieval.errors import ConfigError
from srekb.retrieval.search.linking import pull_companions
from srekb.retrieval.search.sections import section_value
from srekb.retrieval.search.strategy import Strategy
from srekb.retrieval.text import content_terms, identifiers, mentions, term_set
from srekb.retrieval.types import Chunk, Features, Hit, SourceType, per_chunk

log = logging.getLogger(__name__)


class Reranker(Protocol):
    def rerank(self, question: str, hits: list[Hit], strategy: Strategy) -> list[Hit]:
        """The hits in a better order, each with its new ``score`` (higher is better)."""
        ...


@dataclass
class RerankWeights:
    """Feature weights, tuned by ``srekb eval --tune`` on the shipped questions (weights only:
    tuning the per-intent priors too over-fitted: +0.06 on the training split, -0.04 on real)."""

    fused: float = 2.0
    dense: float = 8.0
    bm25: float = 1.4
    ident: float = 1.25
    title: float = 0.5
    prior: float = 1.6
    recency: float = 0.2
    path: float = 1.0
    rule: float = 0.3
    support: float = 0.0
    section: float = 0.0
    companion: float = 0.5


def load_weights(path: str | Path) -> RerankWeights:
    """The reranker weights of a ``tuned.json`` (``{"rerank_weights": {name: number, ...}}``).

    Weights the file leaves out keep their defaults; an unknown name or a non-number is an error
    (a typo must not silently fall back to the defaults). This is what the service loads."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read reranker weights from {p}: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise ConfigError(f"{p} is not valid JSON ({exc})") from exc
    weights = data.get("rerank_weights") if isinstance(data, dict) else None
    if not isinstance(weights, dict):
        raise ConfigError(f'{p}: expected {{"rerank_weights": {{...}}}} (as written by `srekb eval --tune`)')
    known = set(RerankWeights.__dataclass_fields__)
    unknown = sorted(set(weights) - known)
    if unknown:
        raise ConfigError(f"{p}: unknown reranker weight(s) {unknown}; known: {', '.join(sorted(known))}")
    bad = sorted(k for k, v in weights.items() if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v))
    if bad:
        raise ConfigError(f"{p}: reranker weight(s) {bad} must be finite numbers")
    return RerankWeights(**{k: float(v) for k, v in weights.items()})


# Questions about an alert's definition (vs. what to do when it fires).
RULE_DEFINITION = re.compile(
    r"\b(expression|expr|promql|threshold|duration|'for'|for clause|severity|severities|condition|calculated|computed|defined|"
    r"measures?|percentages?|exclude[sd]?|how long .* before|fires? (when|after|at|if)|rule (fire|use)s?|when does .* fire)\b",
    re.I,
)


@dataclass(frozen=True)
class _Facts:
    """What the features read of a chunk, computed once per chunk object."""

    hay: str  # path, title, section, named fields and text, lower-cased: where identifiers are found
    head: str  # title, section, alert and incident id, lower-cased
    head_terms: frozenset[str]
    path: str  # lower-cased
    path_parts: frozenset[str]  # its directories and file name
    is_rule: bool
    day: date | None  # an incident's date


@per_chunk
def _facts(c: Chunk) -> _Facts:
    extra = " ".join(str(v) for k, v in c.meta.items() if k in ("alert", "rule", "incident_id", "aliases", "name", "receiver"))
    path = c.path.lower()
    day = None
    if c.source_type is SourceType.INCIDENT and c.meta.get("date"):
        try:
            day = date.fromisoformat(str(c.meta["date"])[:10])
        except ValueError:
            day = None
    return _Facts(
        hay="\n".join((c.path, c.title, c.section, extra, c.text)).lower(),
        head=f"{c.title} {c.section} {c.meta.get('alert', '')} {c.meta.get('incident_id', '')}".lower(),
        head_terms=term_set(f"{c.title} {c.section}"),
        path=path,
        path_parts=frozenset(path.split("/")),
        is_rule=c.source_type is SourceType.CONFIG and bool(c.meta.get("alert") or c.meta.get("rule")),
        day=day,
    )


class FeatureReranker:
    """Weighted features; offline and deterministic."""

    def __init__(self, weights: RerankWeights | None = None) -> None:
        self.weights = weights or RerankWeights()

    def features(self, question: str, hits: Sequence[Hit], strategy: Strategy) -> list[Features]:
        if not hits:
            return []
        idents = identifiers(question)
        # An identifier in the title, section, alert or incident id counts double.
        in_head = [re.compile(rf"(?<![\w-]){re.escape(i.lower())}(?![\w-])") for i in idents]
        terms = set(content_terms(question))
        max_fused = max(h.scores.fused for h in hits) or 1.0
        max_bm25 = max((h.scores.bm25 for h in hits), default=0.0) or 1.0
        facts = [_facts(h.chunk) for h in hits]
        # An identifier found in most candidates says little; one found in few says a lot.
        found = [[mentions(i, x.hay) for x in facts] for i in idents]
        rarity = [1.0 - (sum(f) - 1) / max(1, len(hits)) for f in found]
        today = date.today()
        definition = bool(RULE_DEFINITION.search(question))
        # File names, directories and service names the question spells out (etcd3_alert.rules.yml,
        # kube-prometheus, payments-db); plain words are left to BM25.
        path_words = {w.strip(".") for w in re.findall(r"[a-z0-9][a-z0-9_.-]{3,}", question.lower()) if re.search(r"[a-z0-9][._-][a-z0-9]", w)}
        per_file: dict[str, int] = {}
        for h in hits:
            per_file[h.chunk.path] = per_file.get(h.chunk.path, 0) + 1
        most = max(per_file.values())
        out = []
        for n, (h, x) in enumerate(zip(hits, facts, strict=True)):
            c = h.chunk
            ident = 0.0
            for j in range(len(idents)):
                if found[j][n]:
                    ident += rarity[j] * (2.0 if in_head[j].search(x.head) else 1.0)
            out.append(Features(
                fused=h.scores.fused / max_fused,
                dense=h.scores.dense,
                bm25=h.scores.bm25 / max_bm25,
                ident=ident / len(idents) if idents else 0.0,
                title=len(terms & x.head_terms) / len(terms) if terms else 0.0,
                prior=strategy.type_prior.get(c.source_type, 0.5),
                recency=math.exp(-max(0, (today - x.day).days) / 730.0) if x.day is not None else 0.0,
                # The question names the file or its project/directory (etcd3_alert.rules.yml, kube-prometheus).
                path=1.0 if path_words and any(w in x.path_parts or w in x.path for w in path_words) else 0.0,
                section=section_value(c.section, strategy.name),
                rule=((1.0 if definition else -1.0) if x.is_rule else 0.0),
                # Several candidate sections from one file: the file as a whole is on topic.
                support=(per_file[c.path] - 1) / most if most > 1 else 0.0,
            ))
        return out

    def rerank(self, question: str, hits: list[Hit], strategy: Strategy) -> list[Hit]:
        w = self.weights
        for h, f in zip(hits, self.features(question, hits, strategy), strict=True):
            h.scores.features = f
            h.score = (
                w.fused * f.fused + w.dense * f.dense + w.bm25 * f.bm25 + w.ident * f.ident
                + w.title * f.title + w.prior * f.prior + w.recency * f.recency + w.path * f.path + w.rule * f.rule
                + w.support * f.support + w.section * f.section
            )
        ranked = sorted(hits, key=lambda h: h.score, reverse=True)
        if w.companion:
            ranked = pull_companions(ranked, w.companion)
        return ranked
