"""Follow-up questions (the seed's session manager): a session keeps its last turns so "and how
do I roll it back?" is resolved against the previous question. SQLite by default; sessions
expire after an idle time. Rewriting is rule based offline, Gemini when a key is set."""

from __future__ import annotations

import logging
import re
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from retrieval.text import content_terms, identifiers

log = logging.getLogger(__name__)

FOLLOW_UP = re.compile(
    r"^(and|also|but|so|then|what about|how about|ok(ay)?|same|what if|why|how)\b|\b(it|its|that|this|those|these|them|they|there|the same)\b",
    re.I,
)


@dataclass
class Turn:
    question: str
    standalone: str
    ts: float


class SessionStore:
    """The last ``keep`` turns of each session, in SQLite, dropped after ``ttl_s`` idle seconds."""

    def __init__(self, path: Path, ttl_s: float = 3600.0, keep: int = 5) -> None:
        self.path, self.ttl_s, self.keep = path, ttl_s, keep
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        with self._db() as db:
            db.execute("CREATE TABLE IF NOT EXISTS turns (session_id TEXT, ts REAL, question TEXT, standalone TEXT)")
            db.execute("CREATE INDEX IF NOT EXISTS turns_session ON turns (session_id, ts)")

    def _db(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=10)

    def history(self, session_id: str) -> list[Turn]:
        now = time.time()
        with self._lock, self._db() as db:
            db.execute("DELETE FROM turns WHERE session_id IN (SELECT session_id FROM turns GROUP BY session_id HAVING MAX(ts) < ?)",
                       (now - self.ttl_s,))
            rows = db.execute(
                "SELECT question, standalone, ts FROM turns WHERE session_id = ? ORDER BY ts DESC LIMIT ?", (session_id, self.keep)
            ).fetchall()
        return [Turn(q, s, ts) for q, s, ts in reversed(rows)]

    def add(self, session_id: str, question: str, standalone: str) -> None:
        with self._lock, self._db() as db:
            db.execute("INSERT INTO turns VALUES (?, ?, ?, ?)", (session_id, time.time(), question, standalone))
            db.execute(
                "DELETE FROM turns WHERE session_id = ? AND ts NOT IN (SELECT ts FROM turns WHERE session_id = ? ORDER BY ts DESC LIMIT ?)",
                (session_id, session_id, self.keep),
            )


def is_follow_up(question: str) -> bool:
    """Short, pronoun-led or conjunction-led questions that name nothing specific of their own."""
    if identifiers(question) and not FOLLOW_UP.match(question.strip()):
        return False
    return bool(FOLLOW_UP.search(question)) and len(content_terms(question)) <= 6


def rewrite(question: str, history: list[Turn], llm: Any = None, model: str = "") -> str:
    """A standalone version of ``question`` given the session's previous turns."""
    if not history or not is_follow_up(question):
        return question
    previous = history[-1].standalone
    if llm is not None:
        prompt = (
            "Rewrite the follow-up question as one standalone question, keeping every name, alert and service it refers to. "
            f"Answer with the question only.\nPrevious question: {previous}\nFollow-up: {question}\nStandalone question:"
        )
        try:
            text = (llm.models.generate_content(model=model, contents=prompt).text or "").strip()
            if text:
                return text
        except Exception as exc:  # network, quota: the rule-based rewrite is good enough
            log.warning("gemini rewrite failed (%s); using the rule-based rewrite", exc)
    # Rule-based: carry the previous question's subject (its identifiers and key terms) along.
    anchors = identifiers(previous) or content_terms(previous)[:6]
    return f"{question.rstrip('?').strip()} ({' '.join(anchors)})?"
