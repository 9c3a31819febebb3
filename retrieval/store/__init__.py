"""The vector store: one protocol, two Qdrant backends chosen by settings.

* :class:`EdgeStore` (default): the Qdrant engine in-process (``qdrant-edge-py``), a directory
  on disk. One process owns it at a time.
* :class:`ServerStore`: a Qdrant server through ``qdrant-client`` (``SRE_KB_QDRANT_URL``);
  ``":memory:"`` gives qdrant-client's local mode, used by tests as a double of the server path.

Both keep one collection layout: named dense vector ``dense`` (cosine) and named sparse vector
``bm25`` (IDF modifier) plus the chunk as payload; point ids derive from uuid5(path#key) so
re-ingest overwrites instead of duplicating (the embedded store uses 63 of its bits as an
integer id). Hybrid search is one engine query: a dense prefetch and a BM25 prefetch fused by
(weighted) RRF inside Qdrant. Each backend also keeps one record per
ingested file (hash, size, chunk count) that drives incremental ingestion.
"""

from __future__ import annotations

from srekb.retrieval.errors import ConfigError, StoreError
from srekb.retrieval.settings import Settings
from srekb.retrieval.store.base import HybridQuery, SearchFilters, SparseVec, Store, damaged, point_id, point_number, probe
from srekb.retrieval.store.edge import EdgeStore
from srekb.retrieval.store.migrate import remove_embedded
from srekb.retrieval.store.server import QUANTIZED_OVERSAMPLING, ServerOptions, ServerStore

__all__ = [
    "QUANTIZED_OVERSAMPLING", "EdgeStore", "HybridQuery", "SearchFilters", "ServerOptions", "ServerStore", "SparseVec", "Store",
    "damaged", "open_store", "point_id", "point_number", "probe", "remove_embedded",
]


def open_store(settings: Settings, dim: int, model: str, *, create: bool = True) -> Store:
    """The store the settings name: a Qdrant server when ``qdrant_url`` is set, else the embedded one."""
    if settings.qdrant_url:
        store: Store = ServerStore(
            settings.qdrant_url, settings.collection, dim, model, settings.qdrant_api_key, create=create,
            options=ServerOptions.from_settings(settings),
        )
        where = f"{settings.qdrant_url} collection {settings.collection}"
    else:
        if settings.tenant:
            raise ConfigError("SRE_KB_TENANT partitions a shared Qdrant collection (set SRE_KB_QDRANT_URL); "
                              "with the embedded store give each team its own --store")
        store, where = EdgeStore(settings.store, dim, model, create=create), str(settings.store)
    try:
        probe(store, where, server=bool(settings.qdrant_url))
    except StoreError:
        store.close()
        raise
    return store
