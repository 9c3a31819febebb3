"""Background ingest jobs (the seed's AsyncTaskProcessor): one writer thread, queries go on.

Job records are kept in SQLite beside the sessions, so a restart does not lose them: a job that
was queued or running when the process died is reported ``interrupted`` with how far it got, and
re-posting the same request finishes it (ingest is incremental: files already written are
unchanged and skipped)."""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from srekb.ingest.pipeline import Ingestor
from srekb.retrieval.errors import SreKbError
from srekb.retrieval.kb import KnowledgeBase
from srekb.retrieval.types import SourceType

log = logging.getLogger(__name__)


@dataclass
class Job:
    id: str
    paths: list[str]
    status: str = "queued"  # queued | running | succeeded | failed | interrupted
    phase: str = ""
    done: int = 0
    total: int = 0
    created_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    report: dict[str, Any] | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "status": self.status, "paths": self.paths,
            "progress": {"phase": self.phase, "done": self.done, "total": self.total},
            "created_at": self.created_at, "finished_at": self.finished_at, "report": self.report, "error": self.error,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Job:
        p = d.get("progress") or {}
        return cls(d["id"], list(d["paths"]), d["status"], p.get("phase", ""), int(p.get("done", 0)), int(p.get("total", 0)),
                   float(d["created_at"]), d.get("finished_at"), d.get("report"), d.get("error"))


class JobLog:
    """Job records in SQLite: written when a job is submitted, changes phase, and finishes."""

    def __init__(self, path: Path, keep: int) -> None:
        self.path, self.keep = path, keep
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._db() as db:
            db.execute("CREATE TABLE IF NOT EXISTS jobs (id TEXT PRIMARY KEY, created REAL, record TEXT)")

    def _db(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=10)

    def save(self, job: Job) -> None:
        with self._db() as db:
            db.execute("INSERT OR REPLACE INTO jobs VALUES (?, ?, ?)", (job.id, job.created_at, json.dumps(job.to_dict())))
            db.execute("DELETE FROM jobs WHERE id IN (SELECT id FROM jobs ORDER BY created DESC LIMIT -1 OFFSET ?)", (self.keep,))

    def get(self, job_id: str) -> Job | None:
        with self._db() as db:
            row = db.execute("SELECT record FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return Job.from_dict(json.loads(row[0])) if row else None

    def interrupt_unfinished(self) -> int:
        """Mark the jobs a previous process left queued or running as interrupted."""
        with self._db() as db:
            rows = db.execute("SELECT record FROM jobs").fetchall()
        n = 0
        for (record,) in rows:
            job = Job.from_dict(json.loads(record))
            if job.status in ("queued", "running"):
                where = f" during {job.phase} ({job.done} of {job.total})" if job.phase else " before it started"
                job.status, job.finished_at = "interrupted", time.time()
                job.error = (f"the server stopped{where}: re-post the same request to finish it "
                             "(files already ingested are unchanged and skipped)")
                self.save(job)
                n += 1
        return n


class JobRunner:
    """Runs ingest jobs one at a time (the store has one writer) on a worker thread."""

    def __init__(self, kb: KnowledgeBase, *, on_done: Any = None, keep: int = 200, log_path: Path | None = None) -> None:
        self.kb = kb
        self.jobs: dict[str, Job] = {}
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest")
        self._lock = threading.Lock()
        self._on_done = on_done
        self._keep = keep
        self._log = JobLog(log_path, keep) if log_path else None
        if self._log and (n := self._log.interrupt_unfinished()):
            log.warning("%d ingest job(s) were interrupted by the last shutdown; GET /v1/jobs/{id} says how far each got", n)

    def submit(self, paths: list[Path], *, source_type: SourceType | None = None, allowed_roots: list[Path] | None = None,
               delete_missing: bool = True) -> Job:
        job = Job(id=uuid.uuid4().hex[:12], paths=[str(p) for p in paths])
        with self._lock:
            self.jobs[job.id] = job
            if len(self.jobs) > self._keep:  # forget the oldest finished jobs
                for old in sorted((j for j in self.jobs.values() if j.finished_at), key=lambda j: j.created_at)[: len(self.jobs) - self._keep]:
                    self.jobs.pop(old.id, None)
        self._save(job)
        self._pool.submit(self._run, job, paths, source_type, allowed_roots, delete_missing)
        return job

    def _run(self, job: Job, paths: list[Path], source_type: SourceType | None, allowed_roots: list[Path] | None, delete_missing: bool) -> None:
        job.status = "running"
        self._save(job)
        saved = [0.0]

        def progress(phase: str, done: int, total: int) -> None:
            changed = phase != job.phase
            job.phase, job.done, job.total = phase, done, total
            if changed or time.monotonic() - saved[0] > 1.0:  # a record on disk at most a second behind
                saved[0] = time.monotonic()
                self._save(job)

        status = "failed"
        try:
            report = Ingestor(self.kb.store, self.kb.embedder, self.kb.settings).run(
                paths, source_type, progress, allowed_roots=allowed_roots, delete_missing=delete_missing
            )
            job.report = report.to_dict()
            status = "succeeded"
        except SreKbError as exc:
            job.error = str(exc)
        except Exception as exc:  # a job must never take the server down; the message is kept for the user
            log.exception("ingest job %s failed", job.id)
            job.error = f"{type(exc).__name__}: {exc}"
        finally:
            self.kb.invalidate()
            if self._on_done:
                try:
                    self._on_done(job, status)
                except Exception:  # metrics and clean-up never lose the job's outcome
                    log.exception("after ingest job %s", job.id)
            # Published last: a client that sees the job finished sees everything it did.
            job.status, job.finished_at = status, time.time()
            self._save(job)

    def _save(self, job: Job) -> None:
        if self._log is not None:
            try:
                self._log.save(job)
            except sqlite3.Error as exc:  # the job goes on; only its record after a restart is lost
                log.warning("could not record ingest job %s: %s", job.id, exc)

    def get(self, job_id: str) -> Job | None:
        job = self.jobs.get(job_id)
        if job is None and self._log is not None:
            job = self._log.get(job_id)
        return job

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
