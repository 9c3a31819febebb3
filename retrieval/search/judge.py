"""Second-stage rerankers: a slower judge reorders the feature reranker's head; and the factory
that builds the reranker the settings ask for."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from srekb.retrieval.errors import ConfigError
from srekb.retrieval.models.llm import LLM
from srekb.retrieval.search.rerank import FeatureReranker, Reranker, RerankWeights, load_weights
from srekb.retrieval.search.strategy import Strategy
from srekb.retrieval.settings import Settings
from srekb.retrieval.types import Hit

log = logging.getLogger(__name__)


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
            h.scores.judge = float(s)
        return sorted(range(len(head)), key=lambda i: -float(scores[i]))


class LLMReranker(SecondStageReranker):
    """A language model reads the feature reranker's top ``depth`` and returns them best first (JSON)."""

    name = "llm"

    def __init__(self, llm: LLM, first: Reranker | None = None, depth: int = 10) -> None:
        super().__init__(first, depth)
        self.llm = llm

    def order(self, question: str, head: list[Hit]) -> list[int]:
        numbered = "\n\n".join(f"[{i}] {passage(h, 800)}" for i, h in enumerate(head, 1))
        prompt = (
            "You rank knowledge-base passages for an on-call SRE. Order the numbered passages by how directly they "
            "answer the question (the runbook section, alert rule, incident or config that answers it first). "
            'Reply with JSON only: {"order": [passage numbers, best first]}.\n\n'
            f"Question: {question}\n\nPassages:\n{numbered}"
        )
        reply = self.llm.complete(prompt, json=True, temperature=0.0)
        data = json.loads(reply)
        ranks = data.get("order") if isinstance(data, dict) else data
        if not isinstance(ranks, list) or not all(isinstance(n, int) and not isinstance(n, bool) for n in ranks):
            raise ValueError(f"expected a list of passage numbers, got {reply[:80]!r}")
        for pos, n in enumerate(ranks):
            if 1 <= n <= len(head):
                if head[n - 1].scores.judge is None:
                    head[n - 1].scores.judge = float(pos + 1)
        return [n - 1 for n in ranks]


def make_reranker(settings: Settings, fitted: dict[str, float] | None = None, llm: LLM | None = None) -> Reranker:
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
        # A key alone never turns model reranking on: it would add a model call to every search, unannounced.
        choice = "cross-encoder" if settings.reranker_model else "features"
    if choice == "cross-encoder":
        if not settings.reranker_model:
            raise ConfigError("SRE_KB_RERANKER=cross-encoder needs SRE_KB_RERANKER_MODEL: a local sentence-transformers cross-encoder folder")
        return CrossEncoderReranker(settings.reranker_model, features, settings.rerank_depth)
    if choice in ("llm", "gemini"):
        if llm is None:
            raise ConfigError(f"SRE_KB_RERANKER={choice} needs a model: set GOOGLE_API_KEY or SRE_KB_OPENAI_BASE_URL "
                              "(or SRE_KB_RERANKER=features)")
        return LLMReranker(llm, features, settings.rerank_depth)
    return features
