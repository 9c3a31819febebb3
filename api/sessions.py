"""Follow-up questions (the seed's session manager): a session keeps its last turns so "and how
do I roll it back?" is resolved against the previous question. SQLite by default; sessions
expire after an idle time. Rewriting is rule based offline, Gemini when a key is set.

Session ids are issued by the server (``POST /v1/sessions``), unguessable, and bound to the API
key that created them: with client-chosen ids, anyone who reused "1" had their follow-up
rewritten with another user's question. The number of live sessions is capped; past the cap the
least recently used are dropped."""

from __future__ import annotations

import logging
import re
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from srekb.retrieval.models.llm import LLM
from srekb.retrieval.text import content_terms, identifiers

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


class UnknownSession(LookupError):
    """No live session with that id for this caller (never issued, expired, evicted, or another key's)."""


class SessionStore:
    """Sessions and their last ``keep`` turns, in SQLite: dropped after ``ttl_s`` idle seconds,
    and the least recently used beyond ``max_sessions``."""

    def __init__(self, path: Path, ttl_s: float = 3600.0, keep: int = 5, max_sessions: int = 10_000) -> None:
        self.path, self.ttl_s, self.keep, self.max_sessions = path, ttl_s, keep, max_sessions
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        with self._db() as db:
            db.execute("CREATE TABLE IF NOT EXISTS sessions (id TEXT PRIMARY KEY, owner TEXT, last REAL)")
            db.execute("CREATE INDEX IF NOT EXISTS sessions_last ON sessions (last)")
            db.execute("CREATE TABLE IF NOT EXISTS turns (session_id TEXT, ts REAL, question TEXT, standalone TEXT)")
            db.execute("CREATE INDEX IF NOT EXISTS turns_session ON turns (session_id, ts)")
            # Turns of client-chosen ids (before sessions were issued) belong to no session: dropped.
            db.execute("DELETE FROM turns WHERE session_id NOT IN (SELECT id FROM sessions)")

    def _db(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=10)

    def _expire(self, db: sqlite3.Connection, now: float) -> None:
        db.execute("DELETE FROM sessions WHERE last < ?", (now - self.ttl_s,))
        db.execute("DELETE FROM sessions WHERE id IN (SELECT id FROM sessions ORDER BY last DESC LIMIT -1 OFFSET ?)", (self.max_sessions,))
        db.execute("DELETE FROM turns WHERE session_id NOT IN (SELECT id FROM sessions)")

    def create(self, owner: str) -> str:
        """A new session for ``owner`` (a digest of the caller's API key); returns its id."""
        sid = secrets.token_urlsafe(18)
        now = time.time()
        with self._lock, self._db() as db:
            db.execute("INSERT INTO sessions VALUES (?, ?, ?)", (sid, owner, now))
            self._expire(db, now)
        return sid

    def _check(self, db: sqlite3.Connection, session_id: str, owner: str, now: float) -> None:
        row = db.execute("SELECT owner, last FROM sessions WHERE id = ?", (session_id,)).fetchone()
        if row is None or row[0] != owner or row[1] < now - self.ttl_s:
            raise UnknownSession(session_id)

    def history(self, session_id: str, owner: str) -> list[Turn]:
        now = time.time()
        with self._lock, self._db() as db:
            self._check(db, session_id, owner, now)
            rows = db.execute(
                "SELECT question, standalone, ts FROM turns WHERE session_id = ? ORDER BY ts DESC LIMIT ?", (session_id, self.keep)
            ).fetchall()
        return [Turn(q, s, ts) for q, s, ts in reversed(rows)]

    def add(self, session_id: str, owner: str, question: str, standalone: str) -> None:
        now = time.time()
        with self._lock, self._db() as db:
            self._check(db, session_id, owner, now)
            db.execute("UPDATE sessions SET last = ? WHERE id = ?", (now, session_id))
            db.execute("INSERT INTO turns VALUES (?, ?, ?, ?)", (session_id, now, question, standalone))
            db.execute(
                "DELETE FROM turns WHERE session_id = ? AND ts NOT IN (SELECT ts FROM turns WHERE session_id = ? ORDER BY ts DESC LIMIT ?)",
                (session_id, session_id, self.keep),
            )

    def count(self) -> int:
        with self._lock, self._db() as db:
            return int(db.execute("SELECT count(*) FROM sessions WHERE last >= ?", (time.time() - self.ttl_s,)).fetchone()[0])


def is_follow_up(question: str) -> bool:
    """Short, pronoun-led or conjunction-led questions that name nothing specific of their own."""
    if identifiers(question) and not FOLLOW_UP.match(question.strip()):
        return False
    return bool(FOLLOW_UP.search(question)) and len(content_terms(question)) <= 6


def rewrite(question: str, history: list[Turn], llm: LLM | None = None) -> str:
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
            text = llm.complete(prompt).strip()
            if text:
                return text
        except Exception as exc:  # network, quota: the rule-based rewrite is good enough
            log.warning("%s rewrite failed (%s); using the rule-based rewrite", llm.name, exc)
    # Rule-based: carry the previous question's subject (its identifiers and key terms) along.
    anchors = identifiers(previous) or content_terms(previous)[:6]
    return f"{question.rstrip('?').strip()} ({' '.join(anchors)})?"
