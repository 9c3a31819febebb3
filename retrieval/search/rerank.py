"""Rerankers: order fused candidates by features the engine does not see.

The default :class:`FeatureReranker` needs no model weights (none can be installed here). It
scores each candidate by a weighted sum of: the engine's fused rank, the dense cosine of the
whole chunk, its BM25 score, exact identifier matches (alert names, metrics, flags, incident
ids, quoted error strings), question-term overlap with the title/section, the intent's
source-type prior, and recency for incidents. Its weights are measured on the labelled
questions (see ``eval/``). :class:`CrossEncoderReranker` is used when a model is configured.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Protocol

from srekb.retrieval.errors import ConfigError
from srekb.retrieval.search.strategy import Strategy
from srekb.retrieval.settings import Settings
from srekb.retrieval.text import content_terms, identifiers, mentions, term_set
from srekb.retrieval.types import Chunk, Hit, SourceType, link_names, per_chunk

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


# Which sections answer which intent; sections that rarely answer anything.
SECTION_CUES: dict[str, re.Pattern[str]] = {
    "troubleshooting": re.compile(r"mitigat|remediat|resolution|resolv|fix|recover|workaround|diagnos|investigat|debug|troubleshoot|steps|check", re.I),
    "configuration": re.compile(r"config|setting|parameter|option|flag|spec|values|how to|procedure|steps|rotation|rollback|rollout", re.I),
    "monitoring": re.compile(r"symptom|meaning|alert|metric|threshold|expr|dashboard|slo|detect", re.I),
    "general": re.compile(r"summary|root cause|cause|impact|timeline|resolution|action items|lessons|policy|overview|incident record|issue", re.I),
}
LOW_VALUE_SECTION = re.compile(r"^(related|references?|see also|further reading|links|changelog|table of contents)\b", re.I)


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


@lru_cache(maxsize=16384)
def section_value(section: str, intent: str) -> float:
    """-1 for a section that rarely answers anything (Related, References), 1 for one that answers
    this intent (Mitigation for troubleshooting), else 0."""
    if LOW_VALUE_SECTION.match(section.split(" > ")[-1]):
        return -1.0
    cue = SECTION_CUES.get(intent)
    return 1.0 if cue and cue.search(section) else 0.0


class FeatureReranker:
    """Weighted features; offline and deterministic."""

    def __init__(self, weights: RerankWeights | None = None) -> None:
        self.weights = weights or RerankWeights()

    def features(self, question: str, hits: Sequence[Hit], strategy: Strategy) -> list[dict[str, float]]:
        if not hits:
            return []
        idents = identifiers(question)
        # An identifier in the title, section, alert or incident id counts double.
        in_head = [re.compile(rf"(?<![\w-]){re.escape(i.lower())}(?![\w-])") for i in idents]
        terms = set(content_terms(question))
        max_fused = max(h.scores.get("fused", h.score) for h in hits) or 1.0
        max_bm25 = max((h.scores.get("bm25", 0.0) for h in hits), default=0.0) or 1.0
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
            out.append({
                "fused": h.scores.get("fused", h.score) / max_fused,
                "dense": h.scores.get("dense", 0.0),
                "bm25": h.scores.get("bm25", 0.0) / max_bm25,
                "ident": ident / len(idents) if idents else 0.0,
                "title": len(terms & x.head_terms) / len(terms) if terms else 0.0,
                "prior": strategy.type_prior.get(c.source_type, 0.5),
                "recency": math.exp(-max(0, (today - x.day).days) / 730.0) if x.day is not None else 0.0,
                # The question names the file or its project/directory (etcd3_alert.rules.yml, kube-prometheus).
                "path": 1.0 if path_words and any(w in x.path_parts or w in x.path for w in path_words) else 0.0,
                "section": section_value(c.section, strategy.name),
                "rule": ((1.0 if definition else -1.0) if x.is_rule else 0.0),
                # Several candidate sections from one file: the file as a whole is on topic.
                "support": (per_file[c.path] - 1) / most if most > 1 else 0.0,
            })
        return out

    def rerank(self, question: str, hits: list[Hit], strategy: Strategy) -> list[Hit]:
        w = self.weights
        feats = self.features(question, hits, strategy)
        keys = tuple(f"f_{k}" for k in feats[0]) if feats else ()  # every feature dict lists the same keys in one order
        for h, f in zip(hits, feats, strict=True):
            h.scores.update(zip(keys, f.values(), strict=True))
            h.score = (
                w.fused * f["fused"] + w.dense * f["dense"] + w.bm25 * f["bm25"] + w.ident * f["ident"]
                + w.title * f["title"] + w.prior * f["prior"] + w.recency * f["recency"] + w.path * f["path"] + w.rule * f["rule"]
                + w.support * f["support"] + w.section * f["section"]
            )
        ranked = sorted(hits, key=lambda h: h.score, reverse=True)
        if w.companion:
            ranked = self._pull_companions(ranked, w.companion)
        return ranked

    @staticmethod
    def _pull_companions(ranked: list[Hit], weight: float, top: int = 3) -> list[Hit]:
        """An alert rule and its runbook answer one question together: a candidate whose companion
        (the rule's ``runbook_url`` or alert name ↔ the runbook's file name or alert) is among the
        first ``top`` gains ``weight``, and moves right below it when that companion ranks first
        or carries an identifier the question names."""
        wanted: dict[tuple[str, str], float] = {}  # companion key -> the score to sit just below
        for rank, h in enumerate(ranked[:top]):
            # The question names this alert, or it ranks first: its companion belongs right below it.
            named = h.scores.get("f_ident", 0.0) > 0 or rank == 0
            # ... or right above a rule when the question is not about the rule's definition.
            lead = 1e-3 if h.scores.get("f_rule", 0.0) < 0 else -1e-3
            for kind, name in link_names(h.chunk):
                key = ("runbook" if kind == "rule" else "rule", name)
                wanted[key] = max(wanted.get(key, -math.inf), h.score + lead if named else -math.inf)
        if not wanted:
            return ranked
        for rank, h in enumerate(ranked):
            keys = [k for k in link_names(h.chunk) if k in wanted]
            if keys:
                h.score = max(h.score + (weight if rank >= top else 0.0), max(wanted[k] for k in keys))
                h.scores["f_companion"] = 1.0
        return sorted(ranked, key=lambda h: h.score, reverse=True)


class SecondStageReranker:
    """The feature reranker orders every candidate; a slower judge (a cross-encoder, Gemini)
    reorders its first ``depth``. Exact identifiers and the rule/runbook links decide what reaches
    the head; the judge decides the order within it. The head keeps the feature scores' scale
    (reassigned in the judge's order), so scores stay comparable down the list; the judge's own
    score is in ``scores``. A judge that fails leaves the feature order, with a warning."""

    name = "judge"

    def __init__(self, first: Reranker | None = None, depth: int = 10) -> None:
        self.first = first or FeatureReranker()
        self.depth = depth

    def order(self, question: str, head: list[Hit]) -> list[int]:
        """The head's indices, best first; raises when the judge cannot answer."""
        raise NotImplementedError

    def rerank(self, question: str, hits: list[Hit], strategy: Strategy) -> list[Hit]:
        ranked = self.first.rerank(question, hits, strategy)
        head, tail = ranked[: self.depth], ranked[self.depth :]
        if len(head) < 2:
            return ranked
        try:
            order = self.order(question, head)
        except Exception as exc:  # a model or a network failing must not fail the search
            log.warning("%s reranking failed (%s: %s); keeping the feature order", self.name, type(exc).__name__, exc)
            return ranked
        order = list(dict.fromkeys(i for i in order if 0 <= i < len(head)))
        order += [i for i in range(len(head)) if i not in order]  # anything the judge left out keeps its place after
        scores = sorted((h.score for h in head), reverse=True)
        new_head = [head[i] for i in order]
        for h, s in zip(new_head, scores, strict=True):
            h.score = s
        return new_head + tail


def passage(hit: Hit, limit: int = 1200) -> str:
    """What a judge reads of a chunk: its label and text."""
    c = hit.chunk
    return f"{c.title}: {c.section} ({c.path})\n{c.text[:limit]}"


class CrossEncoderReranker(SecondStageReranker):
    """A sentence-transformers cross-encoder the user has on disk (``SRE_KB_RERANKER_MODEL``, a
    local folder: nothing is downloaded) reorders the feature reranker's top ``depth``."""

    name = "cross-encoder"

    def __init__(self, model: str, first: Reranker | None = None, depth: int = 10) -> None:
        super().__init__(first, depth)
        if not Path(model).expanduser().is_dir():
            raise ConfigError(f"reranker model {model!r} is not a local folder: point SRE_KB_RERANKER_MODEL at a sentence-transformers cross-encoder")
        from sentence_transformers import CrossEncoder

        self._model = CrossEncoder(str(Path(model).expanduser()), device="cpu")

    def order(self, question: str, head: list[Hit]) -> list[int]:
        scores = self._model.predict([(question, passage(h)) for h in head], show_progress_bar=False)
        for h, s in zip(head, scores, strict=True):
            h.scores["cross_encoder"] = float(s)
        return sorted(range(len(head)), key=lambda i: -float(scores[i]))


class GeminiReranker(SecondStageReranker):
    """Gemini reads the feature reranker's top ``depth`` and returns them best first (JSON)."""

    name = "gemini"

    def __init__(self, client: object, model: str, first: Reranker | None = None, depth: int = 10) -> None:
        super().__init__(first, depth)
        self._client, self._model = client, model

    def order(self, question: str, head: list[Hit]) -> list[int]:
        numbered = "\n\n".join(f"[{i}] {passage(h, 800)}" for i, h in enumerate(head, 1))
        prompt = (
            "You rank knowledge-base passages for an on-call SRE. Order the numbered passages by how directly they "
            "answer the question (the runbook section, alert rule, incident or config that answers it first). "
            'Reply with JSON only: {"order": [passage numbers, best first]}.\n\n'
            f"Question: {question}\n\nPassages:\n{numbered}"
        )
        resp = self._client.models.generate_content(  # type: ignore[attr-defined]
            model=self._model, contents=prompt, config={"response_mime_type": "application/json", "temperature": 0.0}
        )
        data = json.loads(resp.text or "")
        ranks = data.get("order") if isinstance(data, dict) else data
        if not isinstance(ranks, list) or not all(isinstance(n, int) and not isinstance(n, bool) for n in ranks):
            raise ValueError(f"expected a list of passage numbers, got {str(resp.text)[:80]!r}")
        for pos, n in enumerate(ranks):
            if 1 <= n <= len(head):
                head[n - 1].scores.setdefault("gemini_rank", float(pos + 1))
        return [n - 1 for n in ranks]


def make_reranker(settings: Settings, fitted: dict[str, float] | None = None) -> Reranker:
    """The reranker the settings ask for: the feature reranker (weights from
    ``settings.rerank_weights``, else the ``fitted`` ones of the shipped model), with a second
    stage over its top ``rerank_depth`` when one is configured (see ``Settings.reranker``)."""
    if settings.rerank_weights:
        weights = load_weights(settings.rerank_weights)
    else:
        weights = RerankWeights(**{k: v for k, v in (fitted or {}).items() if k in RerankWeights.__dataclass_fields__})
    features = FeatureReranker(weights)
    choice = settings.reranker
    if choice == "auto":
        choice = "cross-encoder" if settings.reranker_model else "gemini" if settings.google_api_key else "features"
    if choice == "cross-encoder":
        if not settings.reranker_model:
            raise ConfigError("SRE_KB_RERANKER=cross-encoder needs SRE_KB_RERANKER_MODEL: a local sentence-transformers cross-encoder folder")
        return CrossEncoderReranker(settings.reranker_model, features, settings.rerank_depth)
    if choice == "gemini":
        if not settings.google_api_key:
            raise ConfigError("SRE_KB_RERANKER=gemini needs a key: set GOOGLE_API_KEY (or SRE_KB_RERANKER=features)")
        from srekb.retrieval.models.llm import gemini_client

        return GeminiReranker(gemini_client(settings.google_api_key, settings.llm_timeout_s), settings.gemini_model, features, settings.rerank_depth)
    return features
