"""Errors raised by sre-kb.

Every error the library raises on purpose derives from one root, so callers (the CLI, the API,
an agent) can catch ``SreKbError`` and show its message, which always says how to fix it::

    SreKbError
    ├── ConfigError            settings that cannot work (bad model path, bad URL, ...)
    ├── StoreError             the vector store failed
    │   ├── StoreLockedError   another process owns the embedded shard
    │   └── StoreNotFoundError no index at the given store path
    ├── IngestError            a whole ingest run cannot start (no such path, outside roots)
    │   └── SkippedFile        one file was refused (carries the reason; the batch goes on)
    └── QueryError             a question or search request is invalid (empty, too long, bad k)

Third-party errors are translated where they occur with ``raise X(...) from exc``.
"""

from __future__ import annotations


class SreKbError(Exception):
    """Root of every error sre-kb raises on purpose."""


class ConfigError(SreKbError):
    """Settings that cannot work."""


class StoreError(SreKbError):
    """The vector store failed."""


class StoreLockedError(StoreError):
    """Another process holds the embedded shard."""


class StoreNotFoundError(StoreError):
    """No index exists at the given store path."""


class StoreDamagedError(StoreError):
    """The store's files are unreadable (truncated, overwritten): it must be rebuilt from its sources."""


class IngestError(SreKbError):
    """An ingest run cannot start."""


class SkippedFile(IngestError):
    """One file was refused; ``reason`` is a one-line explanation for the user."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class QueryError(SreKbError):
    """A question or search request is invalid."""
