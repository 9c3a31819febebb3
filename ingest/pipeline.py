"""Incremental ingestion: files → chunks → dense + BM25 vectors → the store.

A content hash per file decides the work: unchanged files cost nothing, changed files have
their new chunks written *before* the old version's leftovers are deleted, and the file's
hash is recorded only after both succeed, so an interrupted run leaves every file queryable
(old or new version) and the next run redoes what was not recorded. Files gone from an
ingested tree are deleted. The engine's index is built (``optimize``) at the end.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from srekb.ingest.loaders import Skip, SourceFile, chunk_source, discover, iter_sources
from srekb.ingest.text import TokenCounter, wordpiece_counter
from srekb.retrieval.errors import SkippedFile
from srekb.retrieval.models.embedding import Embedder
from srekb.retrieval.models.sparse import Bm25Encoder, default_bm25
from srekb.retrieval.settings import Settings
from srekb.retrieval.store import Store
from srekb.retrieval.types import Chunk, SourceRecord, SourceType

log = logging.getLogger(__name__)

CHUNKER_VERSION = "1"
Progress = Callable[[str, int, int], None]  # (phase, done, total)


@dataclass
class IngestReport:
    """What one run did, file by file."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    skipped: list[Skip] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    chunks_written: int = 0
    chunks_embedded: int = 0
    seconds: float = 0.0
    embed_seconds: float = 0.0

    def to_dict(self) -> dict[str, object]:
        return {
            "added": self.added,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "deleted": self.deleted,
            "skipped": [{"path": s.path, "reason": s.reason} for s in self.skipped],
            "notes": self.notes,
            "chunks_written": self.chunks_written,
            "chunks_embedded": self.chunks_embedded,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class _Pending:
    src: SourceFile
    chunks: list[Chunk]
    is_new: bool


class Ingestor:
    """Runs ingestion into one store with one embedder."""

    def __init__(
        self,
        store: Store,
        embedder: Embedder,
        settings: Settings,
        *,
        bm25: Bm25Encoder | None = None,
        count_tokens: TokenCounter | None = None,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.settings = settings
        self.bm25 = bm25 or default_bm25()
        self.count = count_tokens or wordpiece_counter(settings.embedding_model)
        self.budget = min(settings.max_chunk_tokens, int(getattr(embedder, "max_tokens", settings.max_chunk_tokens)))

    def pipeline_id(self, source_type: SourceType) -> str:
        return f"v{CHUNKER_VERSION}:{source_type.value}:{self.budget}:{self.embedder.name}"

    def run(
        self,
        paths: list[Path],
        source_type: SourceType | None = None,
        progress: Progress | None = None,
        *,
        allowed_roots: list[Path] | None = None,
        delete_missing: bool = True,
        exclude: list[str] | None = None,
    ) -> IngestReport:
        t0 = time.perf_counter()
        report = IngestReport()
        known = self.store.sources()
        found = discover(paths, allowed_roots, exclude, known_roots={r.root for r in known.values()})
        report.skipped.extend(found.skipped)
        seen: set[str] = {s.path for s in found.skipped} | set(found.excluded)
        pending: list[_Pending] = []
        total = len(found.files)
        for n, item in enumerate(iter_sources(found, self.settings.max_file_bytes, source_type), 1):
            if progress:
                progress("scan", n, total)
            if isinstance(item, Skip):
                seen.add(item.path)
                report.skipped.append(item)
                continue
            seen.add(item.path)
            old = known.get(item.path)
            if old and old.sha256 == item.sha256 and old.pipeline == self.pipeline_id(item.source_type) and old.root == str(item.root):
                report.unchanged.append(item.path)
                continue
            try:
                chunks, notes = chunk_source(item, self.budget, self.count)
            except SkippedFile as exc:
                report.skipped.append(Skip(item.path, exc.reason))
                continue
            report.notes.extend(f"{item.path}: {note}" for note in notes)
            pending.append(_Pending(item, chunks, old is None))

        self._write(pending, report, progress)

        if delete_missing:
            # A file recorded from anywhere under an ingested folder and not seen now is gone: under
            # its own root, or keyed by a root inside the folder (ingesting `kb` after `kb/runbooks`
            # re-keys `disk.md` as `runbooks/disk.md`; the old key goes).
            scopes = [s for s, p in zip(found.scopes, paths, strict=True) if Path(p).is_dir()]
            for path, rec in known.items():
                where = os.path.join(rec.root, path)
                if path not in seen and any(where.startswith(s + os.sep) for s in scopes):
                    self.store.delete_path(path)
                    self.store.drop_source(path)
                    report.deleted.append(path)
        if pending or report.deleted:
            self.store.optimize()
        report.seconds = time.perf_counter() - t0
        log.info(
            "ingest done",
            extra={"added": len(report.added), "updated": len(report.updated), "unchanged": len(report.unchanged),
                   "deleted": len(report.deleted), "skipped": len(report.skipped), "seconds": round(report.seconds, 2)},
        )
        return report

    def _write(self, pending: list[_Pending], report: IngestReport, progress: Progress | None) -> None:
        """Embed in groups of files (one encoder call per group), then write file by file."""
        total = sum(len(p.chunks) for p in pending)
        done = 0
        group: list[_Pending] = []
        size = 0
        for p in pending:
            group.append(p)
            size += len(p.chunks)
            if size >= 512:
                done = self._write_group(group, report, done, total, progress)
                group, size = [], 0
        if group:
            self._write_group(group, report, done, total, progress)

    def _write_group(self, group: list[_Pending], report: IngestReport, done: int, total: int, progress: Progress | None) -> int:
        texts = [c.embed_text() for p in group for c in p.chunks]
        unique = list(dict.fromkeys(texts))  # never embed the same text twice
        t = time.perf_counter()
        vectors = self.embedder.embed_batch(unique)
        report.embed_seconds += time.perf_counter() - t
        report.chunks_embedded += len(unique)
        by_text = {text: vectors[i] for i, text in enumerate(unique)}
        offset = 0
        now = datetime.now(UTC).isoformat(timespec="seconds")
        for p in group:
            n = len(p.chunks)
            dense = np.stack([by_text[texts[offset + i]] for i in range(n)])
            sparse = [self.bm25.document(texts[offset + i]) for i in range(n)]
            offset += n
            src = p.src
            self.store.upsert(p.chunks, dense, sparse, src.sha256)
            self.store.delete_path(src.path, keep_hash=src.sha256)  # the old version's leftovers
            self.store.put_source(
                SourceRecord(
                    path=src.path, root=str(src.root), source_type=src.source_type, sha256=src.sha256, size=src.size,
                    chunks=n, ingested_at=now, title=p.chunks[0].title, pipeline=self.pipeline_id(src.source_type),
                )
            )
            (report.added if p.is_new else report.updated).append(src.path)
            report.chunks_written += n
            done += n
            if progress:
                progress("embed", done, total)
        return done
