"""Answerability: a calibrated decision over generic question-versus-evidence features.

A near-miss question (on topic, in the corpus's vocabulary, the specific fact absent) retrieves
confident-looking hits, so one score cannot tell it apart. What can is how much of the
question's *specific* content the evidence holds: its rare terms, identifiers and numbers,
allowing for inflection. :func:`features` measures that; :class:`AnswerabilityModel` (a
logistic regressions fitted across corpora by ``srekb eval --cross-corpus --write-model`` and
shipped in ``retrieval/data/model.json``) turns the features into three outcomes: answer, answer
with a caveat that names what the sources do not mention, abstain.

Two scorers, because the two mistakes cost differently and generalise differently. Lexical
coverage separates a near-miss from an answerable question on the corpora it was fitted on, but
it reads a paraphrased question (the engineer's words, not the runbook's) as a near-miss: fitted
on corpora whose questions reuse the documents' words and held out on one whose questions
paraphrase, it abstained on 34 % of answerable questions. So the *caveat* (a soft warning) uses
every feature, and the *abstention* (which withholds the answer) uses only the features a
paraphrase does not move: :data:`ABSTAIN_FEATURES` (measured in eval/README.md).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any

from srekb.retrieval.stats import KEBAB, CorpusStats
from srekb.retrieval.text import content_terms, identifiers, mentions, term_set
from srekb.retrieval.types import Hit

FEATURES = [
    "coverage",  # IDF-weighted share of the question's terms found in the top evidence
    "best_coverage",  # the same within the best single chunk of the top 3
    "rare_coverage",  # share of the question's three rarest terms found in the evidence
    "missing_idf",  # the rarest term not found (IDF / log N; 0 when all are found)
    "unknown_share",  # share of the question's terms the corpus never uses
    "ident_found",  # share of the question's identifiers (names, flags, quoted strings) found
    "number_found",  # share of the question's numbers found
    "best_sentence",  # IDF-weighted coverage within the best two-sentence window of the top 3
    "dense_top",  # cosine of the first hit
    "dense_gap",  # first hit's cosine minus the mean of the top 10
]
# What the abstention scorer sees: terms the corpus never uses, the question's identifiers and
# numbers (its specific constraints), and dense similarity; no lexical coverage.
ABSTAIN_FEATURES = ["unknown_share", "ident_found", "number_found", "dense_top", "dense_gap"]
PREFIX = 5  # terms sharing their first five letters count as one (deploy / deployment, throttle / throttling)
SENTENCE = re.compile(r"(?<=[.!?:])\s+|\n+")
NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?[a-z%]*(?![\w.])", re.I)
OUTCOMES = ("answer", "caveat", "abstain")


@dataclass
class Answerability:
    """The decision for one question: ``score`` is the calibrated probability that the evidence
    answers it; ``outcome`` one of answer / caveat / abstain; ``missing`` what the evidence
    lacks, rarest first (what a caveat names)."""

    score: float  # the caveat scorer's probability (every feature)
    outcome: str
    coverage: float
    missing_identifiers: list[str]
    missing_terms: list[str]
    features: dict[str, float] = field(default_factory=dict)
    abstain_score: float = 1.0  # the abstention scorer's probability (ABSTAIN_FEATURES)

    @property
    def reasons(self) -> list[str]:
        missing = self.missing_identifiers + [t for t in self.missing_terms[:3] if t not in self.missing_identifiers]
        return [f"the sources do not mention {', '.join(missing)}"] if missing else []

    def answerable(self) -> bool:
        return self.outcome != "abstain"


def _known(term: str, terms: AbstractSet[str], prefixes: AbstractSet[str]) -> bool:
    return term in terms or (len(term) >= PREFIX and term.isalpha() and term[:PREFIX] in prefixes)


def _is_name(ident: str, stats: CorpusStats) -> bool:
    """Whether an identifier the question names is a name that must be found. A hyphenated
    compound the corpus never writes joined, of words it uses apart ('key-value', 'node-pool',
    'follow-ups'), is English the engineer wrote, not the name of something in the sources: it
    counts through its words, in the coverage features, like any other term."""
    low = ident.lower()
    if not KEBAB.fullmatch(low) or stats.df.get(low, 0) > 0 or low in stats.names:
        return True
    parts = [p for p in content_terms(low) if p.isalnum()]
    return not parts or not all(stats.df.get(p, 0) > 0 for p in parts)


def _evidence_text(hit: Hit) -> str:
    c = hit.chunk
    extras = " ".join(str(v) for v in c.meta.values() if isinstance(v, str | int))
    return f"{c.path} {c.title} {c.section} {extras} {c.text}"


def features(question: str, hits: Sequence[Hit], stats: CorpusStats, top: int = 5) -> tuple[dict[str, float], list[str], list[str]]:
    """The features of one question against its ranked evidence, plus the identifiers and the
    terms (rarest first) the evidence does not hold."""
    evidence = [_evidence_text(h) for h in hits[:top]]
    chunk_terms = [set(term_set(e)) for e in evidence]
    ev_terms: set[str] = set().union(*chunk_terms) if chunk_terms else set()
    prefixes = {t[:PREFIX] for t in ev_terms if len(t) >= PREFIX}
    ev_lower = " ".join(evidence).lower()
    terms = content_terms(question)
    norm = math.log(stats.n_docs + 1) or 1.0
    weight = {t: max(0.0, stats.idf(t)) / norm for t in terms}
    total = sum(weight.values()) or 1.0
    found = {t: _known(t, ev_terms, prefixes) for t in terms}
    coverage = sum(w for t, w in weight.items() if found[t]) / total if terms else 1.0
    best = 0.0
    for ct in chunk_terms[:3]:
        cp = {t[:PREFIX] for t in ct if len(t) >= PREFIX}
        best = max(best, sum(w for t, w in weight.items() if _known(t, ct, cp)) / total)
    sentence = 0.0
    for e in evidence[:3]:
        parts = [p for p in SENTENCE.split(e) if p.strip()]
        for a, b in zip(parts, parts[1:] + [""], strict=True):
            st = term_set(f"{a} {b}")
            sp = {t[:PREFIX] for t in st if len(t) >= PREFIX}
            sentence = max(sentence, sum(w for t, w in weight.items() if _known(t, st, sp)) / total)
    rare = sorted(terms, key=lambda t: -weight[t])
    rare3 = rare[:3]
    missing_terms = [t for t in rare if not found[t]]
    idents = [i for i in identifiers(question) if len(i) > 2 and _is_name(i, stats)]
    missing_ids = []
    for ident in idents:
        parts = [p for p in content_terms(ident) if p.isalnum()]  # 'crash-looping' -> crash, loop (the whole form is checked verbatim)
        if not (mentions(ident, ev_lower) or (parts and all(_known(p, ev_terms, prefixes) for p in parts))):
            missing_ids.append(ident)
    numbers = [n.lower() for n in NUMBER.findall(question)]
    dense = [float(h.scores.dense) for h in hits[:10]]
    feats = {
        "coverage": coverage,
        "best_coverage": best if terms else 1.0,
        "rare_coverage": sum(found[t] for t in rare3) / len(rare3) if rare3 else 1.0,
        "missing_idf": max((weight[t] for t in missing_terms), default=0.0),
        "unknown_share": sum(1 for t in terms if stats.df.get(t, 0) == 0) / len(terms) if terms else 0.0,
        "ident_found": 1.0 - len(missing_ids) / len(idents) if idents else 1.0,
        "number_found": sum(1 for n in numbers if n in ev_lower) / len(numbers) if numbers else 1.0,
        "best_sentence": sentence if terms else 1.0,
        "dense_top": dense[0] if dense else 0.0,
        "dense_gap": dense[0] - sum(dense) / len(dense) if dense else 0.0,
    }
    return feats, missing_ids, missing_terms


@dataclass
class Logistic:
    """A logistic regression over named features (standardised by ``mean`` and ``scale``)."""

    features: list[str]
    mean: list[float]
    scale: list[float]
    coef: list[float]
    intercept: float

    def __call__(self, x: dict[str, float]) -> float:
        z = self.intercept + sum(c * (x[f] - m) / s for f, m, s, c in zip(self.features, self.mean, self.scale, self.coef, strict=True))
        return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Logistic:
        m = cls(list(d["features"]), [float(v) for v in d["mean"]], [float(v) for v in d["scale"]], [float(v) for v in d["coef"]], float(d["intercept"]))
        if set(m.features) - set(FEATURES):
            raise ValueError(f"unknown answerability features {sorted(set(m.features) - set(FEATURES))}")
        if not len(m.features) == len(m.mean) == len(m.scale) == len(m.coef):
            raise ValueError("answerability features, mean, scale and coef differ in length")
        return m


@dataclass
class AnswerabilityModel:
    """The two scorers and their operating points: abstain when the abstention scorer is below
    ``abstain_below``; else caveat when the caveat scorer is below ``caveat_below``; else answer."""

    caveat: Logistic
    abstain: Logistic
    abstain_below: float
    caveat_below: float
    fitted: dict[str, Any] = field(default_factory=dict)

    def outcome(self, p: float, p_abstain: float = 1.0) -> str:
        return "abstain" if p_abstain < self.abstain_below else "caveat" if p < self.caveat_below else "answer"

    def assess(self, question: str, hits: Sequence[Hit], stats: CorpusStats) -> Answerability:
        x, missing_ids, missing_terms = features(question, hits, stats)
        p, pa = self.caveat(x), self.abstain(x)
        return Answerability(p, self.outcome(p, pa), x["coverage"], missing_ids, missing_terms, x, pa)

    def to_dict(self) -> dict[str, Any]:
        return {"caveat": vars(self.caveat), "abstain": vars(self.abstain), "abstain_below": self.abstain_below,
                "caveat_below": self.caveat_below, "fitted": self.fitted}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AnswerabilityModel:
        return cls(Logistic.from_dict(d["caveat"]), Logistic.from_dict(d["abstain"]), float(d["abstain_below"]),
                   float(d["caveat_below"]), dict(d.get("fitted") or {}))


# Used only when no fitted model is found (a source checkout without retrieval/data/model.json):
# abstain when little of the question's IDF-weighted content is in the evidence.
_COVERAGE = Logistic(["coverage"], [0.5], [0.25], [4.0], 0.0)
FALLBACK_ANSWERABILITY = AnswerabilityModel(_COVERAGE, _COVERAGE, 0.2, 0.4, {"note": "fallback, not fitted"})
