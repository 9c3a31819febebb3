"""Intent classification: what the on-call engineer is trying to do picks the retrieval strategy.

The default classifier is offline and takes microseconds: weighted cue patterns per intent,
scored on the question. A language model can classify instead (SRE_KB_INTENT_CLASSIFIER=llm).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from srekb.retrieval.errors import ConfigError
from srekb.retrieval.fitted import IntentModel
from srekb.retrieval.models.embedding import Embedder
from srekb.retrieval.models.llm import LLM
from srekb.retrieval.settings import Settings
from srekb.retrieval.types import Intent

log = logging.getLogger(__name__)
EXAMPLES = Path(__file__).parents[1] / "data" / "intent_examples.jsonl"


class IntentClassifier(Protocol):
    def classify(self, question: str, vector: np.ndarray | None = None) -> Intent:
        """The question's intent (``vector``: the question's embedding, when already computed)."""
        ...


@dataclass(frozen=True)
class Cue:
    pattern: re.Pattern[str]
    weight: float


def _cues(*items: tuple[str, float]) -> list[Cue]:
    # Written in lower case and matched against the lower-cased question: twice as fast as re.I.
    return [Cue(re.compile(p), w) for p, w in items]


CUES: dict[Intent, list[Cue]] = {
    Intent.TROUBLESHOOTING: _cues(
        (r"\b(is|are|keeps?|started|starts)\s+(firing|failing|crash\w*|down|slow|stuck|flapping|dropping|timing out|restarting|pending)\b", 2.0),
        (r"\bfired\b", 1.0),
        (r"\b(fail(s|ed|ing|ure)?|error(s)?|broken|outage|crash\w*|oom\w*|timeouts?|timing out|unavailable|degraded|stuck|hang(s|ing)?|"
         r"rejected|refus\w+|not (working|ready|starting|responding)|no longer|can(no|')t|cannot|won'?t|unable|lost|drift\w*|slow(ly)?)\b", 1.2),
        (r"\bhow (do|can|should) (i|we) (diagnose|debug|fix|recover|troubleshoot|mitigate|resolve|find out|tell)\b", 2.0),
        (r"\b(diagnos\w+|debug\w*|troubleshoot\w*|mitigat\w+|recover\w*|root cause of this|what should i (check|look|do))\b", 1.5),
        (r"\b(what is going on|what is happening|what's wrong|usual (cause|reasons?))\b", 1.5),
        (r"\b(paged|page|woke)\b.*\b(what|how)\b", 0.8),
        (r"\b(full|exhausted|saturated|lag(ging)?|backlog|spik\w+|throttl\w+)\b", 0.6),
    ),
    Intent.CONFIGURATION: _cues(
        (r"\b(configur\w+|config|setting|settings|set up|setup|flag|option|parameter|tun(e|ing)|enable|disable)\b", 1.5),
        (r"\bhow (do|can|should) (i|we) (add|change|raise|lower|increase|set|configure|route|enable|get|make|swap|rotate|scale|deploy|roll)\b", 2.0),
        (r"\b(what is|what's) the (default|recommended|maximum|minimum|max|min)\b", 1.5),
        (r"\b(default|recommended|safe way|limits?|requests?|replicas?|max\w*|min\w*|timeouts? (is|are|set)|pool size|retention|"
         r"routed|routing|receiver|matchers?|inhibit|helm|manifest|deployment|hpa|pdb|ingress|values)\b", 0.6),
        (r"\b(should i (raise|increase|lower|set|change))\b", 1.5),
        (r"\bwithout (stopping|downtime|restart\w*)\b", 1.0),
    ),
    Intent.MONITORING: _cues(
        (r"\b(alert(s|ing)? rules?|recording rules?|promql|expression|expr|threshold|thresholds|severity|'for'|for clause|"
         r"for duration|fires? (when|after|at)|when does (it|\w+) fire|dashboard\w*|metric\w*|scrap\w+|targets?|exporter\w*|slo\b|error budget)\b", 1.6),
        (r"\b(which|what) alert\b", 2.0),
        (r"\bwhat (is|does) the \w+ alert\b", 1.5),
        (r"\bhow is \w+ (defined|calculated|computed)\b", 2.0),
        (r"\b(calculated|measured?|defined|condition|duration|percentages?|burn rate|always firing|watchdog)\b", 0.8),
        (r"\b(monitor\w*|prometheus|alertmanager|grafana|observability)\b", 0.4),
        (r"\b[a-z]+(_[a-z0-9]+){2,}\b", 0.8),  # metric names
    ),
    Intent.GENERAL: _cues(
        (r"\b(incident|outage|postmortem|post-mortem|retro\w*)\b.*\b(cause|caused|happen\w*|resolved|went wrong|action items?|follow-?ups?)\b", 2.5),
        (r"\b(what (caused|went wrong|happened)|root cause|action items?|follow-?ups?|lessons?|has this happened|happened before|"
         r"in the past|last time|previous(ly)?|history|postmortems?|post-mortems?|(had|seen|hit|faced|dealt with) (this|that|it|something like this) before|"
         r"seen (this|that|it) before|(past|earlier|previous|old) (incident|outage)s?)\b", 1.6),
        (r"\b(inc-\d{4}-\d+|in (january|february|march|april|may|june|july|august|september|october|november|december)( \d{4})?|"
         r"(19|20)\d\d)\b", 1.0),
        (r"\b(policy|policies|process|who (is|owns)|owner|on-?call (rotation|policy)|escalat\w+|handover|architecture|overview|"
         r"responsib\w+|how often|how many|best practice|recommend\w*|backups?|restore|disaster recovery|rto|rpo|sla)\b", 0.9),
        (r"\b(what is|explain|describe)\b", 0.3),
    ),
}
PRIOR = {Intent.TROUBLESHOOTING: 0.3, Intent.CONFIGURATION: 0.0, Intent.MONITORING: 0.0, Intent.GENERAL: 0.2}


class RuleIntentClassifier:
    """Weighted cue patterns; offline, deterministic, microseconds per question."""

    def scores(self, question: str) -> dict[Intent, float]:
        q = question.strip().lower()
        return {intent: PRIOR[intent] + sum(c.weight for c in cues if c.pattern.search(q)) for intent, cues in CUES.items()}

    def classify(self, question: str, vector: np.ndarray | None = None) -> Intent:
        scores = self.scores(question)
        return max(scores, key=lambda i: scores[i])


class EmbeddingIntentClassifier:
    """Softmax regression over the query vector plus the rule cue scores.

    Trained at start-up on labelled example questions (``retrieval/data/intent_examples.jsonl``,
    written for this purpose and disjoint from every evaluation set; their vectors are cached),
    it classifies with one small matrix product on the query vector retrieval computes anyway.
    Measured on the labelled questions (real / shipped): rules alone 0.86 / 0.45, kNN over the
    examples 0.60 / 0.80, this 0.92 / 0.76 (530 examples, none a paraphrase of an evaluation
    question: the examples that were close copies of real questions were removed).
    """

    SCALE, RULE_SCALE, L2, EPOCHS, LR = 5.0, 3.0, 0.01, 500, 0.5

    def __init__(self, embedder: Embedder, cache_dir: Path, examples: Path = EXAMPLES, fitted: IntentModel | None = None) -> None:
        self.rules = RuleIntentClassifier()
        self.embedder = embedder
        self.intents = list(Intent)
        self.min_confidence = 0.0
        if fitted is not None and [Intent(i) for i in fitted.intents] == self.intents:
            # Fitted across corpora (the examples and the training corpora's labelled questions).
            self.w, self.b, self.min_confidence = fitted.w, fitted.b, fitted.min_confidence
            return
        rows = self.example_rows(examples)
        questions = [r["question"] for r in rows]
        digest = hashlib.sha256(examples.read_bytes() + embedder.name.encode()).hexdigest()[:16]
        # The trained weights are cached too (training takes ~0.3 s, a third of the CLI's start-up);
        # their key also covers the cue patterns and the training constants.
        spec = repr((sorted((i.value, [(c.pattern.pattern, c.weight) for c in cues]) for i, cues in CUES.items()), sorted(PRIOR.items()),
                     self.SCALE, self.RULE_SCALE, self.L2, self.EPOCHS, self.LR))
        model_cache = cache_dir / f"intent-model-{digest}-{hashlib.sha256(spec.encode()).hexdigest()[:12]}.npz"
        try:
            with np.load(model_cache) as saved:
                self.w, self.b = saved["w"], saved["b"]
            return
        except (OSError, KeyError, ValueError):
            pass
        cache = cache_dir / f"intent-examples-{digest}.npy"
        vectors = np.load(cache) if cache.exists() else None
        if vectors is None or vectors.shape[0] != len(rows):
            vectors = embedder.embed_batch(questions)
            try:
                cache.parent.mkdir(parents=True, exist_ok=True)
                np.save(cache, vectors)
            except OSError as exc:
                log.warning("cannot cache intent example vectors: %s", exc)
        x = self.inputs(questions, vectors)
        y = np.eye(len(self.intents))[[self.intents.index(Intent(r["intent"])) for r in rows]]
        self.w, self.b = self._train(x, y)
        try:
            np.savez(model_cache, w=self.w, b=self.b)
        except OSError as exc:
            log.warning("cannot cache the intent model: %s", exc)

    @staticmethod
    def example_rows(examples: Path = EXAMPLES) -> list[dict[str, str]]:
        return [json.loads(line) for line in examples.read_text().splitlines() if line.strip()]

    def inputs(self, questions: list[str], vectors: np.ndarray) -> np.ndarray:
        """The model's input rows: the scaled query vectors and the cue scores."""
        return np.hstack([vectors * self.SCALE, np.stack([self._rule_features(q) for q in questions])])

    def _rule_features(self, question: str) -> np.ndarray:
        r = self.rules.scores(question)
        v = np.array([r[i] for i in self.intents], dtype=np.float64)
        return v / (np.abs(v).sum() + 1e-9) * self.RULE_SCALE

    @classmethod
    def _train(cls, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        w = np.zeros((x.shape[1], y.shape[1]))
        b = np.zeros(y.shape[1])
        for _ in range(cls.EPOCHS):
            z = x @ w + b
            z -= z.max(axis=1, keepdims=True)
            p = np.exp(z)
            p /= p.sum(axis=1, keepdims=True)
            g = (p - y) / len(x)
            w -= cls.LR * (x.T @ g + cls.L2 * w)
            b -= cls.LR * g.sum(axis=0)
        return w, b

    def scores(self, question: str, vector: np.ndarray | None = None) -> dict[Intent, float]:
        if vector is None:
            vector = self.embedder.embed_batch([question])[0]
        z = np.concatenate([vector * self.SCALE, self._rule_features(question)]) @ self.w + self.b
        p = np.exp(z - z.max())
        p /= p.sum()
        return {i: float(p[n]) for n, i in enumerate(self.intents)}

    def classify(self, question: str, vector: np.ndarray | None = None) -> Intent:
        scores = self.scores(question, vector)
        return max(scores, key=lambda i: scores[i])


class LLMIntentClassifier:
    """Asks a language model for the intent; falls back to the offline classifier it is given on any failure."""

    def __init__(self, llm: LLM, fallback: IntentClassifier) -> None:
        self.llm, self._fallback = llm, fallback

    def classify(self, question: str, vector: np.ndarray | None = None) -> Intent:
        prompt = (
            "Classify the on-call engineer's question into exactly one intent: troubleshooting (something is broken, what to do), "
            "configuration (how something is or should be configured), monitoring (alerts, rules, thresholds, metrics, dashboards), "
            "general (incident history, policy, architecture, process). Answer with the single word.\n\nQuestion: " + question
        )
        try:
            word = self.llm.complete(prompt).strip().lower().split()[0].strip(".,:")
            return Intent(word)
        except Exception as exc:  # network, key, or an unexpected word: the offline answer is good enough
            log.warning("%s intent classification failed (%s); using the offline classifier", self.llm.name, exc)
            return self._fallback.classify(question, vector)


def make_classifier(settings: Settings, embedder: Embedder, fitted: IntentModel | None = None, llm: LLM | None = None) -> IntentClassifier:
    """The classifier the settings ask for: the offline embedding one (the ``fitted`` weights of
    the shipped model when given), or the language model in front of it."""
    offline = EmbeddingIntentClassifier(embedder, settings.model_cache, fitted=fitted)
    if settings.intent_classifier in ("llm", "gemini"):
        if llm is None:
            raise ConfigError(f"SRE_KB_INTENT_CLASSIFIER={settings.intent_classifier} needs a model: set GOOGLE_API_KEY or "
                              "SRE_KB_OPENAI_BASE_URL (or use the default, embedding)")
        return LLMIntentClassifier(llm, offline)
    return offline
