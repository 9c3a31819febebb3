"""Changes to a store's files between sre-kb versions, and removing an embedded store's index."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from srekb.retrieval.store.base import point_number

log = logging.getLogger(__name__)

# The embedded store's point id scheme, recorded in store.json; a store from before it holds UUID
# ids and is converted in place when opened.
POINT_IDS = "u63"


def renumber_points(shard: Any, directory: Path) -> None:
    """Give every point with a UUID id (a store written before integer ids) its integer id:
    upsert the copy, then delete the original, a batch at a time. Safe to stop and rerun: a
    point already copied is copied again onto itself, and store.json records the new scheme
    only at the end."""
    import qdrant_edge as qe

    offset = None
    renamed = 0
    while True:
        records, offset = shard.scroll(qe.ScrollRequest(offset=offset, limit=256, with_payload=True, with_vector=True))
        old = [r for r in records if not isinstance(r.id, int)]
        if old:
            if not renamed:
                log.info("store %s holds UUID point ids (an older sre-kb): giving its points integer ids, once", directory)
            copies = [qe.Point(point_number(str(r.payload.get("path", "")), str(r.payload.get("key", ""))), r.vector, r.payload) for r in old if r.payload]
            shard.update(qe.UpdateOperation.upsert_points(copies))
            shard.update(qe.UpdateOperation.delete_points([r.id for r in old]))
            renamed += len(old)
        if offset is None:
            break
    if renamed:
        log.info("store %s: %d points renumbered", directory, renamed)
        shard.optimize()
        shard.flush()


def remove_embedded(directory: Path) -> None:
    """Delete an embedded store's index files (shard, sources, metadata, cached statistics), and
    nothing else in the directory (the service's sessions and uploads stay)."""
    import shutil

    shutil.rmtree(directory / "shard", ignore_errors=True)
    for name in ["store.json", "sources.sqlite", *(p.name for p in directory.glob("stats-*.json"))]:
        (directory / name).unlink(missing_ok=True)
