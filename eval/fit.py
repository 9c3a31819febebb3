"""Fitting the model the service ships (:mod:`retrieval.model`) on labelled corpora.

Everything fitted is fitted here, on the training corpora only; :mod:`eval.cross` calls
:func:`fit_model` once per held-out corpus, and once on every corpus for the shipped model.

- **Ranking**: the feature reranker's weights by coordinate search on the mean over the
  training corpora of (MRR@10 + nDCG@10) / 2, file level (each corpus counts once, whatever its
  number of questions). Candidates are retrieved once per question with the labelled intent's
  strategy (no predicted intent leaks a fitted classifier into the ranker's data).
- **Intent**: softmax regression over the query vector and the cue scores, on the shipped
  example questions plus the training corpora's labelled questions.
- **Answerability**: logistic regression over :data:`retrieval.answerability.FEATURES`.
  Positives: answerable questions against their ranked evidence. Negatives: the labelled
  unanswerable questions, and every answerable question again with its relevant files taken
  out of its candidates (a natural near-miss). The abstention threshold is the 2.5 % quantile
  of the answerable questions' out-of-fold scores (inner leave-one-corpus-out over the
  training corpora), so false abstention on an unseen corpus is expected near 2.5 %; the
  caveat threshold is the out-of-fold point that best separates answerable from near-miss
  (Youden's J), when that lies above it.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import date

import numpy as np

from eval.dataset import Question, qrels_of
from eval.metrics import mean, mrr_at, ndcg_at
from eval.runner import paths_in_order
from retrieval.answerability import FEATURES, AnswerabilityModel, features
from retrieval.intent import EmbeddingIntentClassifier
from retrieval.kb import KnowledgeBase
from retrieval.model import IntentModel, Model
from retrieval.rerank import FeatureReranker, RerankWeights, SecondStageReranker
from retrieval.stats import CorpusStats
from retrieval.types import Hit, Intent

log = logging.getLogger(__name__)

FALSE_ABSTENTION = 0.025  # the operating point: at most this share of answerable questions abstains
INTENT_MIN_CONFIDENCE = 0.5


@dataclass
class Item:
    qid: str
    question: str
    intent: str | None
    answerable: bool
    relevant: set[str]
    hits: list[Hit]
    feats: list[dict[str, float]]
    inputs: np.ndarray  # the intent model's input row


@dataclass
class CorpusData:
    name: str
    stats: CorpusStats
    items: list[Item]
    qrels: dict[str, dict[str, int]]
    clf: EmbeddingIntentClassifier  # computes the intent inputs of the shipped example questions, once


_EXAMPLES: dict[str, tuple[np.ndarray, np.ndarray]] = {}


def _examples(clf: EmbeddingIntentClassifier) -> tuple[np.ndarray, np.ndarray]:
    """The intent model's inputs and one-hot labels for the shipped example questions, embedded once per encoder."""
    if clf.embedder.name not in _EXAMPLES:
        rows = clf.example_rows()
        questions = [r["question"] for r in rows]
        x = clf.inputs(questions, clf.embedder.embed_batch(questions))
        _EXAMPLES[clf.embedder.name] = (x, np.eye(len(Intent))[[list(Intent).index(Intent(r["intent"])) for r in rows]])
    return _EXAMPLES[clf.embedder.name]


def collect_corpus(kb: KnowledgeBase, questions: list[Question]) -> CorpusData:
    """One search per question (candidates with their reranker features) and its intent inputs."""
    reranker = kb.reranker.first if isinstance(kb.reranker, SecondStageReranker) else kb.reranker
    assert isinstance(reranker, FeatureReranker)
    clf = kb.classifier if isinstance(kb.classifier, EmbeddingIntentClassifier) else EmbeddingIntentClassifier(kb.embedder, kb.settings.model_cache)
    items = []
    for q in questions:
        intent = Intent(q.intent) if q.intent in Intent._value2member_map_ else Intent.GENERAL
        strategy = kb.strategies[intent]
        res = kb.search(q.question, strategy.candidates, intent=intent, rerank=False)
        feats = reranker.features(res.question, res.hits, strategy)
        vec = kb.query_vector(res.question)
        items.append(Item(q.id, res.question, q.intent, q.answerable, set(q.relevant) | ({q.must_cite} if q.must_cite else set()),
                          res.hits, feats, clf.inputs([res.question], vec[None, :])[0]))
    return CorpusData(kb.settings.store.name, kb.stats, items, qrels_of(questions), clf)


# ------------------------------------------------------------------------------- ranking ---

def _ranked(item: Item, w: dict[str, float], exclude: set[str] | None = None) -> list[Hit]:
    scored = []
    for h, f in zip(item.hits, item.feats, strict=True):
        if exclude and h.chunk.path in exclude:
            continue
        scored.append((sum(w.get(k, 0.0) * v for k, v in f.items()), h))
    scored.sort(key=lambda x: (-x[0], x[1].chunk.path, x[1].chunk.line_start))
    return [h for _, h in scored]


def rank_objective(data: list[CorpusData], w: dict[str, float]) -> float:
    """Mean over corpora of the mean (MRR@10 + nDCG@10) / 2 of its answerable questions."""
    per = []
    for d in data:
        vals = []
        for it in d.items:
            if it.answerable and it.qid in d.qrels:
                order = paths_in_order(_ranked(it, w))
                vals.append((mrr_at(d.qrels[it.qid], order) + ndcg_at(d.qrels[it.qid], order)) / 2)
        if vals:
            per.append(mean(vals))
    return mean(per)


STEPS = [[0.0, 0.5, 2.0], [0.7, 1.4], [0.85, 1.2]]


def fit_ranker(data: list[CorpusData], start: dict[str, float] | None = None, max_iter: int = 6, min_gain: float = 1e-3) -> dict[str, float]:
    """Coordinate search over the feature weights (``companion`` is a pull after scoring, kept)."""
    w = dict(start or asdict(RerankWeights()))
    knobs = [k for k in w if k != "companion"]
    best = rank_objective(data, w)
    for it in range(max_iter):
        improved = False
        for k in knobs:
            current = w[k]
            for value in [current * f for f in STEPS[min(it, len(STEPS) - 1)]] + ([0.5] if current == 0 else []):
                trial = dict(w, **{k: value})
                score = rank_objective(data, trial)
                if score > best + min_gain:
                    best, w, improved = score, trial, True
        if not improved and it >= len(STEPS) - 1:
            break
    return w


# -------------------------------------------------------------------------------- intent ---

def fit_intent(data: list[CorpusData]) -> IntentModel:
    ex_x, ex_y = _examples(data[0].clf)
    xs, ys = [ex_x], [ex_y]
    intents = list(Intent)
    for d in data:
        rows = [it for it in d.items if it.intent in Intent._value2member_map_]
        if rows:
            xs.append(np.stack([it.inputs for it in rows]))
            ys.append(np.eye(len(intents))[[intents.index(Intent(it.intent)) for it in rows]])
    w, b = EmbeddingIntentClassifier._train(np.vstack(xs), np.vstack(ys))
    return IntentModel([i.value for i in intents], w, b, INTENT_MIN_CONFIDENCE)


# ------------------------------------------------------------------------- answerability ---

def answerability_rows(d: CorpusData, w: dict[str, float]) -> list[tuple[list[float], int, str]]:
    """(features, label, kind) for every question of one corpus, plus the filtered near-misses."""
    rows = []
    for it in d.items:
        hits = _ranked(it, w)[:10]
        if hits:
            x, _, _ = features(it.question, hits, d.stats)
            rows.append(([x[f] for f in FEATURES], int(it.answerable), "answerable" if it.answerable else "unanswerable"))
        if it.answerable and it.relevant:
            rest = _ranked(it, w, exclude=it.relevant)[:10]
            if rest:
                x, _, _ = features(it.question, rest, d.stats)
                rows.append(([x[f] for f in FEATURES], 0, "filtered"))
    return rows


# The direction each feature may push the score: more of the question found can only help, more
# missing can only hurt. Fitted freely, correlated features took the wrong sign (an off-topic
# question scored as answerable); a feature whose fitted weight goes against its direction is
# dropped and the rest refitted.
SIGN = np.array([-1.0 if f in ("missing_idf", "unknown_share") else 1.0 for f in FEATURES])


def _logistic(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    from sklearn.linear_model import LogisticRegression

    mu = x.mean(axis=0)
    sd = x.std(axis=0)
    sd[sd < 1e-9] = 1.0
    z = (x - mu) / sd
    keep = np.ones(x.shape[1], dtype=bool)
    coef = np.zeros(x.shape[1])
    b = 0.0
    while keep.any():
        lr = LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000)
        lr.fit(z[:, keep], y)
        coef = np.zeros(x.shape[1])
        coef[keep] = lr.coef_[0]
        b = float(lr.intercept_[0])
        wrong = keep & (coef * SIGN < 0)
        if not wrong.any():
            break
        keep &= ~wrong
    return mu, sd, coef, b


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))


def fit_answerability(data: list[CorpusData], w: dict[str, float]) -> AnswerabilityModel:
    per = {d.name: answerability_rows(d, w) for d in data}
    x = np.array([r[0] for rows in per.values() for r in rows], dtype=np.float64)
    y = np.array([r[1] for rows in per.values() for r in rows])
    mu, sd, coef, b = _logistic(x, y)
    # Operating points from out-of-fold scores: each training corpus scored by a model fitted on the others.
    pos_oof: list[float] = []
    neg_oof: list[float] = []
    if len(per) >= 2:
        for name, rows in per.items():
            others = [r for n, rs in per.items() if n != name for r in rs]
            ox = np.array([r[0] for r in others])
            oy = np.array([r[1] for r in others])
            if len(set(oy)) < 2:
                continue
            m, s, c, i = _logistic(ox, oy)
            p = _sigmoid(((np.array([r[0] for r in rows]) - m) / s) @ c + i)
            for r, pr in zip(rows, p, strict=True):
                if r[2] == "answerable":
                    pos_oof.append(float(pr))
                elif r[2] == "unanswerable":
                    neg_oof.append(float(pr))
    if not pos_oof:  # one training corpus: in-sample scores
        p = _sigmoid(((x - mu) / sd) @ coef + b)
        kinds = [r[2] for rows in per.values() for r in rows]
        pos_oof = [float(v) for v, k in zip(p, kinds, strict=True) if k == "answerable"]
        neg_oof = [float(v) for v, k in zip(p, kinds, strict=True) if k == "unanswerable"]
    abstain = float(np.quantile(pos_oof, FALSE_ABSTENTION)) if pos_oof else 0.5
    caveat = abstain
    if neg_oof:
        grid = sorted(set(pos_oof + neg_oof))
        best_j = -1.0
        for t in grid:
            j = np.mean([p >= t for p in pos_oof]) - np.mean([p >= t for p in neg_oof])
            if j > best_j:
                best_j, caveat = j, t
    caveat = max(caveat, abstain)
    fitted = {"corpora": sorted(per), "rows": {n: len(r) for n, r in per.items()},
              "positives": int(y.sum()), "negatives": int(len(y) - y.sum()), "oof_answerable": len(pos_oof), "oof_unanswerable": len(neg_oof)}
    return AnswerabilityModel(list(FEATURES), mu.tolist(), sd.tolist(), coef.tolist(), b, abstain, caveat, fitted)


# ------------------------------------------------------------------------------- the model ---

def fit_model(data: dict[str, CorpusData]) -> Model:
    train = list(data.values())
    weights = fit_ranker(train)
    intent = fit_intent(train)
    answerability = fit_answerability(train, weights)
    # The fitted weights are measured leave-one-corpus-out (eval/README.md); they are not shipped
    # (see save_shipped): on held-out corpora they did not beat the defaults.
    return Model(weights, intent, answerability, {"corpora": sorted(data), "date": date.today().isoformat(),
                                                   "questions": {n: len(d.items) for n, d in data.items()}})


def shipped(model: Model) -> Model:
    """What ``--write-model`` ships: the intent and answerability fits; the default reranker weights."""
    note = "not adopted: weights fitted leave-one-corpus-out did not beat the defaults on held-out corpora (eval/README.md); the defaults are used"
    return Model({}, model.intent, model.answerability, model.fitted | {"rerank_weights": note})


def apply(kb: KnowledgeBase, model: Model) -> None:
    """Put a fitted model into a knowledge base (as ``KnowledgeBase`` does with the shipped one)."""
    reranker = kb.reranker.first if isinstance(kb.reranker, SecondStageReranker) else kb.reranker
    if isinstance(reranker, FeatureReranker) and model.rerank_weights:
        reranker.weights = RerankWeights(**{k: v for k, v in model.rerank_weights.items() if k in RerankWeights.__dataclass_fields__})
    if model.intent is not None:
        kb.classifier = EmbeddingIntentClassifier(kb.embedder, kb.settings.model_cache, fitted=model.intent)
    if model.answerability is not None:
        kb.answerability = model.answerability
