"""Labelled questions: JSONL with id, question, intent, relevant, must_cite, reference_answer,
answerable (and optionally must_cite_lines)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from srekb.retrieval.errors import SreKbError


@dataclass
class Question:
    id: str
    question: str
    intent: str | None
    relevant: list[str]
    must_cite: str | None
    reference_answer: str = ""
    answerable: bool = True
    must_cite_lines: list[int] | None = None
    extra: dict = field(default_factory=dict)


def load_questions(path: Path) -> list[Question]:
    out: list[Question] = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
            answerable = d.get("answerable", True) is not False
            out.append(
                Question(
                    id=str(d["id"]), question=d["question"], intent=d.get("intent"), relevant=list(d.get("relevant") or []),
                    must_cite=d.get("must_cite"), reference_answer=d.get("reference_answer") or "", answerable=answerable,
                    must_cite_lines=d.get("must_cite_lines"),
                    extra={k: v for k, v in d.items() if k not in Question.__dataclass_fields__},
                )
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise SreKbError(f"{path}:{n}: not a valid question record ({exc}); expected JSON with id, question, relevant, must_cite") from exc
    return out


def qrels_of(questions: list[Question]) -> dict[str, dict[str, int]]:
    """Graded qrels: must_cite 2, other relevant files 1 (answerable questions only)."""
    qrels: dict[str, dict[str, int]] = {}
    for q in questions:
        if not q.answerable:
            continue
        grades = {doc: 1 for doc in q.relevant}
        if q.must_cite:
            grades[q.must_cite] = 2
        qrels[q.id] = grades
    return qrels
