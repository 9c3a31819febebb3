"""Background ingest jobs (the seed's AsyncTaskProcessor): one writer thread, queries go on."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ingest.pipeline import Ingestor
from retrieval.errors import SreKbError
from retrieval.kb import KnowledgeBase
from retrieval.types import SourceType

log = logging.getLogger(__name__)


@dataclass
class Job:
    id: str
    paths: list[str]
    status: str = "queued"  # queued | running | succeeded | failed
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


class JobRunner:
    """Runs ingest jobs one at a time (the store has one writer) on a worker thread."""

    def __init__(self, kb: KnowledgeBase, *, on_done: Any = None, keep: int = 200) -> None:
        self.kb = kb
        self.jobs: dict[str, Job] = {}
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest")
        self._lock = threading.Lock()
        self._on_done = on_done
        self._keep = keep

    def submit(self, paths: list[Path], *, source_type: SourceType | None = None, allowed_roots: list[Path] | None = None,
               delete_missing: bool = True) -> Job:
        job = Job(id=uuid.uuid4().hex[:12], paths=[str(p) for p in paths])
        with self._lock:
            self.jobs[job.id] = job
            if len(self.jobs) > self._keep:  # forget the oldest finished jobs
                for old in sorted((j for j in self.jobs.values() if j.finished_at), key=lambda j: j.created_at)[: len(self.jobs) - self._keep]:
                    self.jobs.pop(old.id, None)
        self._pool.submit(self._run, job, paths, source_type, allowed_roots, delete_missing)
        return job

    def _run(self, job: Job, paths: list[Path], source_type: SourceType | None, allowed_roots: list[Path] | None, delete_missing: bool) -> None:
        job.status = "running"

        def progress(phase: str, done: int, total: int) -> None:
            job.phase, job.done, job.total = phase, done, total

        try:
            report = Ingestor(self.kb.store, self.kb.embedder, self.kb.settings).run(
                paths, source_type, progress, allowed_roots=allowed_roots, delete_missing=delete_missing
            )
            job.report = report.to_dict()
            job.status = "succeeded"
        except SreKbError as exc:
            job.status, job.error = "failed", str(exc)
        except Exception as exc:  # a job must never take the server down; the message is kept for the user
            log.exception("ingest job %s failed", job.id)
            job.status, job.error = "failed", f"{type(exc).__name__}: {exc}"
        finally:
            job.finished_at = time.time()
            self.kb.invalidate()
            if self._on_done:
                self._on_done(job)

    def get(self, job_id: str) -> Job | None:
        return self.jobs.get(job_id)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
