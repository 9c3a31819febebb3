"""The fitted model the service ships: reranker weights, the intent classifier and the
answerability scorer, fitted across corpora and read from ``retrieval/data/model.json`` in a
few milliseconds. Rebuilt by one command (see eval/README.md):

    srekb eval --cross-corpus --write-model
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from srekb.retrieval.answer.answerability import AnswerabilityModel
from srekb.retrieval.errors import ConfigError

MODEL_FILE = Path(__file__).parent / "data" / "model.json"


@dataclass
class IntentModel:
    """Softmax regression over the query vector (scaled) and the cue scores; below
    ``min_confidence`` the search blends the intents' strategies instead of betting on one."""

    intents: list[str]
    w: np.ndarray  # (features, intents)
    b: np.ndarray  # (intents,)
    min_confidence: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"intents": self.intents, "w": np.round(self.w, 5).tolist(), "b": np.round(self.b, 5).tolist(), "min_confidence": self.min_confidence}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> IntentModel:
        return cls(list(d["intents"]), np.asarray(d["w"], dtype=np.float64), np.asarray(d["b"], dtype=np.float64), float(d.get("min_confidence", 0.0)))


@dataclass
class Model:
    rerank_weights: dict[str, float] = field(default_factory=dict)
    intent: IntentModel | None = None
    answerability: AnswerabilityModel | None = None
    fitted: dict[str, Any] = field(default_factory=dict)  # on what, when, with which figures

    def to_dict(self) -> dict[str, Any]:
        return {
            "rerank_weights": {k: round(v, 6) for k, v in self.rerank_weights.items()},
            "answerability": self.answerability.to_dict() if self.answerability else None,
            "intent": self.intent.to_dict() if self.intent else None,
            "fitted": self.fitted,
        }

    def save(self, path: Path = MODEL_FILE) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.to_dict(), separators=(",", ":")) + "\n")
        tmp.replace(path)

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"rerank_weights": {k: round(v, 4) for k, v in self.rerank_weights.items()}, "fitted": self.fitted}
        if self.answerability:
            a = self.answerability
            out["answerability"] = {"caveat_coef": dict(zip(a.caveat.features, (round(c, 3) for c in a.caveat.coef), strict=True)),
                                    "abstain_coef": dict(zip(a.abstain.features, (round(c, 3) for c in a.abstain.coef), strict=True)),
                                    "abstain_below": round(a.abstain_below, 4), "caveat_below": round(a.caveat_below, 4)}
        if self.intent:
            out["intent_min_confidence"] = self.intent.min_confidence
        return out


def load_model(path: Path = MODEL_FILE) -> Model:
    """The shipped model; an empty one (defaults everywhere) when the file is absent."""
    if not path.exists():
        return Model()
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
        weights = {k: float(v) for k, v in (d.get("rerank_weights") or {}).items() if math.isfinite(float(v))}
        return Model(
            weights,
            IntentModel.from_dict(d["intent"]) if d.get("intent") else None,
            AnswerabilityModel.from_dict(d["answerability"]) if d.get("answerability") else None,
            d.get("fitted") or {},
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"the fitted model {path} is unreadable ({exc}): rebuild it with `srekb eval --cross-corpus --write-model`") from exc
