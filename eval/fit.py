"""Fitting the model the service ships (:mod:`retrieval.model`) on labelled corpora.

Everything fitted is fitted here, on the training corpora only; :mod:`eval.cross` calls
:func:`fit_model` once per held-out corpus, and once on every corpus for the shipped model.

- **Ranking**: the feature reranker's weights by coordinate search on the mean over the
  training corpora of (MRR@10 + nDCG@10) / 2, file level (each corpus counts once, whatever its
  number of questions). Candidates are retrieved once per question with the labelled intent's
  strategy (no predicted intent leaks a fitted classifier into the ranker's data).
- **Intent**: softmax regression over the query vector and the cue scores, on the shipped
  example questions plus the training corpora's labelled questions.
- **Answerability**: two logistic regressions, the caveat scorer over every feature of
  :data:`retrieval.answerability.FEATURES` and the abstention scorer over
  :data:`retrieval.answerability.ABSTAIN_FEATURES`. Positives: answerable questions against
  their ranked evidence. Negatives: the labelled unanswerable questions, and every answerable
  question again with its relevant files taken out of its candidates (a natural near-miss).
  Operating points from out-of-fold scores (inner leave-one-corpus-out, see
  :func:`fit_answerability`).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import date

import numpy as np
from srekb.eval.dataset import Question, qrels_of
from srekb.eval.metrics import mean, mrr_at, ndcg_at
from srekb.eval.runner import paths_in_order
from srekb.retrieval.answer.answerability import ABSTAIN_FEATURES, FEATURES, AnswerabilityModel, Logistic, features
from srekb.retrieval.fitted import IntentModel, Model
from srekb.retrieval.kb import KnowledgeBase
from srekb.retrieval.search.intent import EmbeddingIntentClassifier
from srekb.retrieval.search.judge import SecondStageReranker
from srekb.retrieval.search.rerank import FeatureReranker, RerankWeights
from srekb.retrieval.stats import CorpusStats
from srekb.retrieval.types import Hit, Intent

log = logging.getLogger(__name__)

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
        feats = [f.as_dict() for f in reranker.features(res.question, res.hits, strategy)]
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

Row = tuple[dict[str, float], int, str]  # (features, answerable, kind: answerable / unanswerable / filtered)


def answerability_rows(d: CorpusData, w: dict[str, float]) -> list[Row]:
    """The features of every question of one corpus against its ranked evidence, plus each
    answerable question again with its relevant files filtered out (a natural near-miss)."""
    rows: list[Row] = []
    for it in d.items:
        hits = _ranked(it, w)[:10]
        if hits:
            rows.append((features(it.question, hits, d.stats)[0], int(it.answerable), "answerable" if it.answerable else "unanswerable"))
        if it.answerable and it.relevant:
            rest = _ranked(it, w, exclude=it.relevant)[:10]
            if rest:
                rows.append((features(it.question, rest, d.stats)[0], 0, "filtered"))
    return rows


# The direction each feature may push the score: more of the question found can only help, more
# missing can only hurt. Fitted freely, correlated features took the wrong sign (an off-topic
# question scored as answerable); a feature whose fitted weight goes against its direction is
# dropped and the rest refitted.
NEGATIVE = {"missing_idf", "unknown_share"}


def _logistic(rows: list[Row], names: list[str]) -> Logistic:
    from sklearn.linear_model import LogisticRegression

    x = np.array([[r[0][f] for f in names] for r in rows], dtype=np.float64)
    y = np.array([r[1] for r in rows])
    sign = np.array([-1.0 if f in NEGATIVE else 1.0 for f in names])
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
        wrong = keep & (coef * sign < 0)
        if not wrong.any():
            break
        keep &= ~wrong
    return Logistic(list(names), mu.tolist(), sd.tolist(), coef.tolist(), b)


def _out_of_fold(per: dict[str, list[Row]], names: list[str]) -> dict[str, list[float]]:
    """Each training corpus's rows scored by a model fitted on the other training corpora (in
    sample when there is only one), by kind."""
    out: dict[str, list[float]] = {"answerable": [], "unanswerable": [], "filtered": []}
    folds = [(rows, [r for m, rs in per.items() if m != n for r in rs]) for n, rows in per.items()] if len(per) >= 2 else []
    folds = [(rows, train) for rows, train in folds if len({r[1] for r in train}) == 2]
    if not folds:
        everything = [r for rs in per.values() for r in rs]
        folds = [(everything, everything)]
    for rows, train in folds:
        model = _logistic(train, names)
        for r in rows:
            out[r[2]].append(model(r[0]))
    return out


def _youden(pos: list[float], neg: list[float]) -> float:
    """The threshold that best separates answerable from unanswerable scores (Youden's J)."""
    best_j, best = -1.0, 0.5
    for t in sorted(set(pos + neg)):
        j = float(np.mean([p >= t for p in pos]) - np.mean([p >= t for p in neg]))
        if j > best_j:
            best_j, best = j, t
    return best


def fit_answerability(data: list[CorpusData], w: dict[str, float]) -> AnswerabilityModel:
    """The caveat scorer (every feature) and the abstention scorer (:data:`ABSTAIN_FEATURES`),
    with their operating points from out-of-fold scores (inner leave-one-corpus-out).

    - Abstain below the lowest out-of-fold score of any answerable training question. Measured
      leave-one-corpus-out (eval/README.md): the 2.5 % quantile, pooled or per corpus, gave 14 %
      false abstention on the held-out corpus whose questions paraphrase; the minimum, 2.3 %.
    - Caveat below the out-of-fold Youden point between answerable and unanswerable questions.
    """
    per = {d.name: answerability_rows(d, w) for d in data}
    everything = [r for rs in per.values() for r in rs]
    abstain_oof = _out_of_fold(per, ABSTAIN_FEATURES)
    caveat_oof = _out_of_fold(per, FEATURES)
    abstain_below = min(abstain_oof["answerable"], default=0.5)
    caveat_below = _youden(caveat_oof["answerable"], caveat_oof["unanswerable"]) if caveat_oof["unanswerable"] else 0.5
    fitted = {"corpora": sorted(per), "rows": {n: len(r) for n, r in per.items()},
              "positives": sum(r[1] for r in everything), "negatives": sum(1 - r[1] for r in everything),
              "oof_answerable": len(caveat_oof["answerable"]), "oof_unanswerable": len(caveat_oof["unanswerable"])}
    return AnswerabilityModel(_logistic(everything, FEATURES), _logistic(everything, ABSTAIN_FEATURES), abstain_below, caveat_below, fitted)


# ------------------------------------------------------------------------------- the model ---

def fit_model(data: dict[str, CorpusData]) -> Model:
    train = list(data.values())
    weights = fit_ranker(train)
    intent = fit_intent(train)
    answerability = fit_answerability(train, asdict(RerankWeights()))  # the ranking the service ships (shipped() keeps the defaults)
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
