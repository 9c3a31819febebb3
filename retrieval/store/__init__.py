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

import json
import logging
import sqlite3
import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from srekb.retrieval.errors import ConfigError, StoreDamagedError, StoreError, StoreLockedError, StoreNotFoundError
from srekb.retrieval.settings import Settings
from srekb.retrieval.types import Chunk, Hit, SourceRecord, SourceType

CHUNK_CACHE_SIZE = 50_000  # chunks kept in memory by the embedded store (about 100 MB at most)

log = logging.getLogger(__name__)

POINT_NAMESPACE = uuid.UUID("5b3a7e0c-1f4e-4c1a-9a57-3c0b8f2d9e11")
SparseVec = tuple[list[int], list[float]]
INDEXED_FIELDS = {"path": "keyword", "source_type": "keyword", "meta.service": "keyword", "meta.date": "datetime", "file_hash": "keyword"}


def point_id(path: str, key: str) -> str:
    """Deterministic point id of one chunk (the server store's)."""
    return str(uuid.uuid5(POINT_NAMESPACE, f"{path}#{key}"))


def point_number(path: str, key: str) -> int:
    """The embedded store's point id of one chunk: the top 63 bits of :func:`point_id`'s UUID.
    Integer ids cost the engine's Python side far less than UUIDs, which it builds as
    ``uuid.UUID`` objects with a Python ``__hash__``: 0.4 ms of a 100k-chunk search in the bench.
    Two chunks would share a number with probability n^2 / 2^64 (5e-8 at a million chunks)."""
    return uuid.uuid5(POINT_NAMESPACE, f"{path}#{key}").int >> 65


# The embedded store's point id scheme, recorded in store.json; a store from before it holds UUID
# ids and is converted in place when opened.
POINT_IDS = "u63"


@dataclass
class SearchFilters:
    """Restricts a search: any of the listed source types / services / paths, a date window."""

    source_types: list[SourceType] = field(default_factory=list)
    services: list[str] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    date_from: str | None = None
    date_to: str | None = None

    FIELDS = ("source_types", "services", "paths", "date_from", "date_to")

    def conditions(self) -> list[tuple[str, str, Any]]:
        """Backend-neutral conditions: (payload key, "any" | "range", value)."""
        out: list[tuple[str, str, Any]] = []
        if self.source_types:
            out.append(("source_type", "any", [SourceType(t).value for t in self.source_types]))
        if self.services:
            out.append(("meta.service", "any", list(self.services)))
        if self.paths:
            out.append(("path", "any", list(self.paths)))
        if self.date_from or self.date_to:
            out.append(("meta.date", "range", (self.date_from, self.date_to)))
        return out


@dataclass
class HybridQuery:
    """One hybrid search: the query vectors, fusion weights and sizes."""

    dense: np.ndarray
    sparse: SparseVec
    limit: int = 10
    prefetch: int = 50
    dense_weight: float = 1.0
    sparse_weight: float = 1.0
    rrf_k: int = 60
    filters: SearchFilters | None = None


class Store(Protocol):
    """What ingestion and retrieval need from a vector store."""

    dim: int

    def upsert(self, chunks: Sequence[Chunk], dense: np.ndarray, sparse: Sequence[SparseVec], file_hash: str) -> None:
        """Write chunks with their vectors (overwrites points with the same path#key)."""

    def delete_path(self, path: str, keep_hash: str | None = None) -> None:
        """Delete a file's chunks; with ``keep_hash``, only those of other versions."""

    def hybrid(self, query: HybridQuery) -> list[Hit]:
        """Dense + BM25 prefetches fused by weighted RRF in the engine."""

    def dense_search(self, vector: np.ndarray, limit: int, filters: SearchFilters | None = None) -> list[Hit]:
        """Dense-only nearest neighbours (cosine)."""

    def sparse_search(self, vector: SparseVec, limit: int, filters: SearchFilters | None = None) -> list[Hit]:
        """BM25-only search."""

    def chunks(self, path: str | None = None) -> Iterator[Chunk]:
        """Every stored chunk (of one path), in no particular order."""

    def count(self) -> int:
        """Number of stored chunks."""

    def sources(self) -> dict[str, SourceRecord]:
        """Ingested files by path."""

    def put_source(self, record: SourceRecord) -> None:
        """Remember a file as ingested (call only after its chunks are written)."""

    def drop_source(self, path: str) -> None:
        """Forget a file (call after its chunks are deleted)."""

    def optimize(self) -> None:
        """Build indexes after a write batch."""

    def close(self) -> None:
        """Release the store (the embedded shard's lock)."""


def _payload(chunk: Chunk, file_hash: str) -> dict[str, Any]:
    payload = chunk.to_payload()
    payload["file_hash"] = file_hash
    return payload


def _hit(pid: Any, score: float, payload: dict[str, Any] | Chunk | None) -> Hit:
    chunk = payload if isinstance(payload, Chunk) else Chunk.from_payload(payload or {})
    return Hit(chunk=chunk, score=float(score), id=str(pid))


def _with_channel_scores(fused: list[tuple[Any, float, Any]], dense: list[tuple[Any, float]], sparse: list[tuple[Any, float]]) -> list[Hit]:
    """Fused hits carrying their dense cosine and BM25 score. ``dense`` is the dense channel's own
    list: a candidate missing from it scored below its last entry and gets that floor (measured:
    each candidate's exact cosine instead, real nDCG@10 0.951 -> 0.950). ``sparse`` holds BM25
    scores: the embedded store reads them for exactly the candidates, the server store takes the
    BM25 list from the same batch (one round trip); a candidate without one gets 0."""
    dense_by_id = dict(dense)  # ids as the backend gives them (ints or UUID strings), the same in every list
    sparse_by_id = dict(sparse)
    dense_floor = min(dense_by_id.values(), default=0.0)
    hits = []
    for pid, score, payload in fused:
        hit = _hit(pid, score, payload)
        hit.scores = {"fused": hit.score, "dense": dense_by_id.get(pid, dense_floor), "bm25": sparse_by_id.get(pid, 0.0)}
        hits.append(hit)
    return hits


# --------------------------------------------------------------------------------------------
# Embedded: qdrant-edge
# --------------------------------------------------------------------------------------------


def damaged(where: Path | str, what: object) -> StoreDamagedError:
    return StoreDamagedError(
        f"the store at {where} is damaged ({str(what)[:300]}): rebuild it from its sources with "
        f"`srekb ingest PATH... --store {where} --rebuild`"
    )


def probe(store: Store, where: Path | str, *, server: bool = False) -> int:
    """A cheap integrity check (a count, one dense query reading one chunk's payload): a store
    whose files were truncated opens but fails every search, so it is checked when opened and by
    ``/health``. Returns the chunk count; raises :class:`StoreDamagedError`."""
    try:
        n = store.count()
        if n:
            unit = np.zeros(store.dim, dtype=np.float32)
            unit[0] = 1.0
            hits = store.dense_search(unit, 1)
            if not hits or not hits[0].chunk.path:
                raise StoreError(f"{n} chunks counted but a search returns none")
    except StoreLockedError:
        raise
    except Exception as exc:
        if server:  # unreachable or refusing, not damaged files: nothing to rebuild here
            raise StoreError(f"the Qdrant server at {where} failed a check ({str(exc)[:300]}): is it up and reachable?") from exc
        raise damaged(where, exc) from exc
    return n


class EdgeStore:
    """The Qdrant engine in-process: ``<dir>/shard`` + ``<dir>/sources.sqlite`` + ``<dir>/store.json``."""

    def __init__(self, directory: Path, dim: int, model: str, *, create: bool = True) -> None:
        import qdrant_edge as qe

        self._qe = qe
        self.directory = Path(directory)
        self.dim = dim
        shard_dir = self.directory / "shard"
        meta_path = self.directory / "store.json"
        exists = (shard_dir / "wal").exists() or meta_path.exists()
        if not exists and not create:
            raise StoreNotFoundError(f"no index at {self.directory}: run `srekb ingest PATH --store {self.directory}` first")
        try:
            meta: dict[str, Any] = json.loads(meta_path.read_text()) if meta_path.exists() else {}
            if not isinstance(meta, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as exc:
            raise damaged(self.directory, f"store.json: {exc}") from exc
        if meta_path.exists():
            if meta.get("dim") != dim or meta.get("model") != model:
                raise ConfigError(
                    f"store {self.directory} was built with model {meta.get('model')!r} (dim {meta.get('dim')}), "
                    f"not {model!r} (dim {dim}): use that model or ingest into a new --store"
                )
        current_meta = json.dumps({"dim": dim, "model": model, "backend": "edge", "point_ids": POINT_IDS})
        config = qe.EdgeConfig(
            vectors={"dense": qe.EdgeVectorParams(size=dim, distance=qe.Distance.Cosine)},
            sparse_vectors={"bm25": qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
        )
        try:
            if (shard_dir / "wal").exists():
                self._shard = qe.EdgeShard.load(str(shard_dir))
                if meta.get("point_ids") != POINT_IDS:
                    self._renumber_points()
                    meta_path.write_text(current_meta)
            else:
                self.directory.mkdir(parents=True, exist_ok=True)
                self._shard = qe.EdgeShard.create(str(shard_dir), config)
                for key, kind in INDEXED_FIELDS.items():
                    schema = qe.PayloadSchemaType.Datetime if kind == "datetime" else qe.PayloadSchemaType.Keyword
                    self._shard.update(qe.UpdateOperation.create_field_index(key, schema))
                meta_path.write_text(current_meta)
        except Exception as exc:
            if "WouldBlock" in str(exc) or "lock" in str(exc).lower():
                raise StoreLockedError(
                    f"the store {self.directory} is in use by another process (is `srekb serve` running on it?): "
                    "stop that process, query it over HTTP, or pass another --store"
                ) from exc
            if exists:
                raise damaged(self.directory, exc) from exc
            raise StoreError(f"cannot open the store at {self.directory}: {exc}") from exc
        self._lock = threading.RLock()
        self._closed = False
        # Chunks by point id. This process is the shard's only writer, so the cache stays exact:
        # every write clears it. A search then asks the engine for ids and scores only: turning
        # 40 payloads into Python objects was half of a query's engine time, all of it under the GIL.
        self._chunks: OrderedDict[Any, Chunk] = OrderedDict()  # point id (as the engine gives it) -> chunk
        self._db_path = self.directory / "sources.sqlite"
        try:
            with self._db() as db:
                db.execute(
                    "CREATE TABLE IF NOT EXISTS sources (path TEXT PRIMARY KEY, root TEXT, source_type TEXT, sha256 TEXT,"
                    " size INTEGER, chunks INTEGER, ingested_at TEXT, title TEXT, pipeline TEXT)"
                )
                db.execute("SELECT count(*) FROM sources").fetchone()
        except sqlite3.DatabaseError as exc:
            self._shard.close()
            raise damaged(self.directory, f"sources.sqlite: {exc}") from exc

    def _renumber_points(self) -> None:
        """Give every point with a UUID id (a store written before integer ids) its integer id:
        upsert the copy, then delete the original, a batch at a time. Safe to stop and rerun: a
        point already copied is copied again onto itself, and store.json records the new scheme
        only at the end."""
        qe = self._qe
        offset = None
        renamed = 0
        while True:
            records, offset = self._shard.scroll(qe.ScrollRequest(offset=offset, limit=256, with_payload=True, with_vector=True))
            old = [r for r in records if not isinstance(r.id, int)]
            if old:
                if not renamed:
                    log.info("store %s holds UUID point ids (an older sre-kb): giving its points integer ids, once", self.directory)
                copies = [qe.Point(point_number(str(r.payload.get("path", "")), str(r.payload.get("key", ""))), r.vector, r.payload) for r in old if r.payload]
                self._shard.update(qe.UpdateOperation.upsert_points(copies))
                self._shard.update(qe.UpdateOperation.delete_points([r.id for r in old]))
                renamed += len(old)
            if offset is None:
                break
        if renamed:
            log.info("store %s: %d points renumbered", self.directory, renamed)
            self._shard.optimize()
            self._shard.flush()

    def _db(self) -> sqlite3.Connection:
        db = sqlite3.connect(self._db_path, timeout=10)
        db.row_factory = sqlite3.Row
        return db

    # -- filters -------------------------------------------------------------------------
    def _filter(self, filters: SearchFilters | None, extra: list[Any] | None = None) -> Any:
        qe = self._qe
        must: list[Any] = list(extra or [])
        for key, kind, value in filters.conditions() if filters else []:
            if kind == "any":
                must.append(qe.FieldCondition(key, match=qe.MatchAny(value)))
            else:
                lo, hi = value
                must.append(qe.FieldCondition(key, range=qe.RangeDateTime(gte=lo, lte=hi)))
        return qe.Filter(must=must) if must else None

    # -- writes --------------------------------------------------------------------------
    def upsert(self, chunks: Sequence[Chunk], dense: np.ndarray, sparse: Sequence[SparseVec], file_hash: str) -> None:
        qe = self._qe
        points = [
            qe.Point(
                point_number(c.path, c.key),
                {"dense": dense[i].tolist(), "bm25": qe.SparseVector(list(sparse[i][0]), list(sparse[i][1]))},
                _payload(c, file_hash),
            )
            for i, c in enumerate(chunks)
        ]
        with self._lock:
            self._chunks.clear()
            for start in range(0, len(points), 256):
                self._shard.update(qe.UpdateOperation.upsert_points(points[start : start + 256]))

    def delete_path(self, path: str, keep_hash: str | None = None) -> None:
        qe = self._qe
        must_not = [qe.FieldCondition("file_hash", match=qe.MatchValue(keep_hash))] if keep_hash else None
        flt = qe.Filter(must=[qe.FieldCondition("path", match=qe.MatchValue(path))], must_not=must_not)
        with self._lock:
            self._chunks.clear()
            self._shard.update(qe.UpdateOperation.delete_points_by_filter(flt))

    def _cached_chunks(self, ids: list[Any]) -> dict[Any, Chunk]:
        """The chunks of these point ids, from the cache or one ``retrieve`` for the missing ones
        (call with the lock held)."""
        missing = [i for i in ids if i not in self._chunks]
        if missing:
            for r in self._shard.retrieve(point_ids=missing, with_payload=True, with_vector=False):
                self._chunks[r.id] = Chunk.from_payload(r.payload or {})
            while len(self._chunks) > CHUNK_CACHE_SIZE:
                self._chunks.popitem(last=False)
        out = {}
        for i in ids:
            if i in self._chunks:
                self._chunks.move_to_end(i)
                out[i] = self._chunks[i]
        return out

    # -- reads ---------------------------------------------------------------------------
    def hybrid(self, query: HybridQuery) -> list[Hit]:
        qe = self._qe
        flt = self._filter(query.filters)
        dense_q = qe.Query.Nearest(query.dense.tolist(), using="dense")
        sparse_q = qe.Query.Nearest(qe.SparseVector(*query.sparse), using="bm25")
        fused = qe.QueryRequest(
            limit=query.limit,
            query=qe.Fusion.Rrf(k=query.rrf_k, weights=[query.dense_weight, query.sparse_weight]),
            prefetches=[qe.Prefetch(limit=query.prefetch, query=dense_q, filter=flt), qe.Prefetch(limit=query.prefetch, query=sparse_q, filter=flt)],
            filter=flt,
            with_payload=False,
        )
        # The reranker wants each candidate's dense cosine and BM25 score; the fused query gives only
        # its RRF score. The dense list rides in the same batch; the BM25 scores are read for the
        # candidates alone (a has-id filter): 2.5-3.0 vs 2.9-3.2 ms at 100k chunks with a full BM25 list.
        dense = qe.QueryRequest(limit=query.prefetch, query=dense_q, filter=flt, with_payload=False)
        with self._lock:
            f, d = self._shard.query_batch(qe.QueryBatchRequest([fused, dense]))
            fused_ids = [(p.id, p.score) for p in f]
            ids = [i for i, _ in fused_ids]
            sp = self._shard.query(
                qe.QueryRequest(limit=len(ids), query=sparse_q, filter=qe.Filter(must=[qe.HasIdCondition(set(ids))]), with_payload=False)
            ) if ids and query.sparse[0] else []
            chunks = self._cached_chunks(ids)
        return _with_channel_scores([(i, score, chunks[i]) for i, score in fused_ids if i in chunks],
                                    [(p.id, p.score) for p in d], [(p.id, p.score) for p in sp])

    def dense_search(self, vector: np.ndarray, limit: int, filters: SearchFilters | None = None) -> list[Hit]:
        qe = self._qe
        return self._query_hits(
            qe.QueryRequest(limit=limit, query=qe.Query.Nearest(vector.tolist(), using="dense"), filter=self._filter(filters), with_payload=False)
        )

    def sparse_search(self, vector: SparseVec, limit: int, filters: SearchFilters | None = None) -> list[Hit]:
        qe = self._qe
        if not vector[0]:
            return []
        return self._query_hits(
            qe.QueryRequest(limit=limit, query=qe.Query.Nearest(qe.SparseVector(*vector), using="bm25"), filter=self._filter(filters), with_payload=False)
        )

    def _query_hits(self, req: Any) -> list[Hit]:
        """Run an ids-only engine query and read its chunks through the cache."""
        with self._lock:
            found = [(p.id, p.score) for p in self._shard.query(req)]
            chunks = self._cached_chunks([i for i, _ in found])
        return [_hit(i, score, chunks[i]) for i, score in found if i in chunks]

    def chunks(self, path: str | None = None) -> Iterator[Chunk]:
        qe = self._qe
        flt = qe.Filter(must=[qe.FieldCondition("path", match=qe.MatchValue(path))]) if path else None
        offset = None
        while True:
            with self._lock:
                records, offset = self._shard.scroll(qe.ScrollRequest(offset=offset, limit=512, filter=flt, with_payload=True))
            for r in records:
                yield Chunk.from_payload(r.payload or {})
            if offset is None:
                return

    def count(self) -> int:
        with self._lock:
            return int(self._shard.count(self._qe.CountRequest(exact=True)))

    # -- source records ------------------------------------------------------------------
    def sources(self) -> dict[str, SourceRecord]:
        with self._db() as db:
            rows = db.execute("SELECT * FROM sources").fetchall()
        return {r["path"]: SourceRecord(**{**dict(r), "source_type": SourceType(r["source_type"])}) for r in rows}

    def put_source(self, record: SourceRecord) -> None:
        data = asdict(record)
        data["source_type"] = record.source_type.value
        with self._lock:
            self._shard.flush()  # the chunks are durable before the hash says they are there
        with self._db() as db:
            db.execute(
                "INSERT OR REPLACE INTO sources VALUES (:path, :root, :source_type, :sha256, :size, :chunks, :ingested_at, :title, :pipeline)", data
            )

    def drop_source(self, path: str) -> None:
        with self._lock:
            self._shard.flush()
        with self._db() as db:
            db.execute("DELETE FROM sources WHERE path = ?", (path,))

    def optimize(self) -> None:
        with self._lock:
            self._shard.optimize()
            self._shard.flush()

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._shard.flush()
                self._shard.close()


# --------------------------------------------------------------------------------------------
# Server: qdrant-client
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerOptions:
    """How the server store lays out a new collection on a cluster, and reads and writes it
    (``SRE_KB_QDRANT_*`` and ``SRE_KB_TENANT``); ``None`` leaves the server's default."""

    shards: int | None = None
    replicas: int | None = None
    write_consistency: int | None = None
    read_consistency: str | None = None
    quantization: str = "none"
    on_disk: bool = False
    tenant: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> ServerOptions:
        return cls(
            settings.qdrant_shards, settings.qdrant_replicas, settings.qdrant_write_consistency, settings.qdrant_read_consistency,
            settings.qdrant_quantization, settings.qdrant_on_disk, settings.tenant,
        )


QUANTIZED_OVERSAMPLING = 2.0  # int8 candidates fetched per hit asked, rescored on the original vectors


class ServerStore:
    """A Qdrant server or cluster (or qdrant-client's ``":memory:"`` local mode in tests).

    Many teams can share one collection: with a ``tenant`` every point and source record carries
    it, every read and delete is filtered by it, and it has Qdrant's tenant index (``is_tenant``:
    each tenant's points stored together), so a team sees only its own documents. Point ids
    include the tenant, so two teams may ingest the same path."""

    def __init__(
        self, url: str, collection: str, dim: int, model: str, api_key: str | None = None, *,
        create: bool = True, options: ServerOptions | None = None, client: Any = None,
    ) -> None:
        from qdrant_client import QdrantClient
        from qdrant_client import models as m

        self._m = m
        self.collection = collection
        self.sources_collection = f"{collection}__sources"
        self.dim = dim
        o = self.options = options or ServerOptions()
        local = url == ":memory:"
        try:
            self._client = client or (QdrantClient(location=":memory:") if local else QdrantClient(url=url, api_key=api_key, timeout=30))
            exists = self._client.collection_exists(collection)
        except Exception as exc:
            raise StoreError(f"cannot reach the Qdrant server at {url}: {exc}; check SRE_KB_QDRANT_URL and that the server runs") from exc
        layout: dict[str, Any] = {
            "shard_number": o.shards, "replication_factor": o.replicas, "write_consistency_factor": o.write_consistency,
            "on_disk_payload": True if o.on_disk else None,
        }
        if not exists:
            if not create:
                raise StoreNotFoundError(f"no collection {collection!r} on {url}: run `srekb ingest PATH` first")
            quantization = (
                m.ScalarQuantization(scalar=m.ScalarQuantizationConfig(type=m.ScalarType.INT8, quantile=0.99, always_ram=True))
                if o.quantization == "scalar" else None
            )
            self._client.create_collection(
                collection,
                vectors_config={"dense": m.VectorParams(size=dim, distance=m.Distance.COSINE, on_disk=True if o.on_disk else None)},
                sparse_vectors_config={"bm25": m.SparseVectorParams(modifier=m.Modifier.IDF, index=m.SparseIndexParams(on_disk=True) if o.on_disk else None)},
                quantization_config=quantization,
                metadata={"model": model, "dim": dim},
                **layout,
            )
            if not local:  # local mode has no payload indexes
                self._index(collection, INDEXED_FIELDS)
        else:
            params = self._client.get_collection(collection).config.params
            vectors = params.vectors if isinstance(params.vectors, dict) else {}
            dense = vectors.get("dense")
            have = dense.size if dense is not None else None
            if have != dim:
                raise ConfigError(f"collection {collection!r} holds {have}-d vectors, the model gives {dim}: use another SRE_KB_COLLECTION")
        if not self._client.collection_exists(self.sources_collection):
            self._client.create_collection(self.sources_collection, vectors_config={}, **layout)
            if not local:
                self._index(self.sources_collection, {"path": "keyword"})
        if o.tenant and not local:
            self._index(collection, {"tenant": "tenant"})  # idempotent: a new tenant on an existing collection
            self._index(self.sources_collection, {"tenant": "tenant"})
        self._search = (
            m.SearchParams(quantization=m.QuantizationSearchParams(rescore=True, oversampling=QUANTIZED_OVERSAMPLING))
            if o.quantization == "scalar" else None
        )
        self._read = m.ReadConsistencyType(o.read_consistency) if o.read_consistency else None

    def _index(self, collection: str, fields: dict[str, str]) -> None:
        m = self._m
        for key, kind in fields.items():
            schema: Any = {
                "datetime": m.PayloadSchemaType.DATETIME,
                "keyword": m.PayloadSchemaType.KEYWORD,
                "tenant": m.KeywordIndexParams(type=m.KeywordIndexType.KEYWORD, is_tenant=True),
            }[kind]
            self._client.create_payload_index(collection, key, field_schema=schema)

    def _id(self, path: str, key: str) -> str:
        return point_id(f"{self.options.tenant}/{path}" if self.options.tenant else path, key)

    def _mine(self) -> list[Any]:
        """The tenant condition every read and delete carries (none without a tenant)."""
        m = self._m
        return [m.FieldCondition(key="tenant", match=m.MatchValue(value=self.options.tenant))] if self.options.tenant else []

    def _filter(self, filters: SearchFilters | None, *extra: Any) -> Any:
        m = self._m
        must: list[Any] = [*self._mine(), *extra]
        for key, kind, value in filters.conditions() if filters else []:
            if kind == "any":
                must.append(m.FieldCondition(key=key, match=m.MatchAny(any=value)))
            else:
                lo, hi = value
                must.append(m.FieldCondition(key=key, range=m.DatetimeRange(gte=lo, lte=hi)))
        return m.Filter(must=must) if must else None

    def upsert(self, chunks: Sequence[Chunk], dense: np.ndarray, sparse: Sequence[SparseVec], file_hash: str) -> None:
        m = self._m
        points = [
            m.PointStruct(
                id=self._id(c.path, c.key),
                vector={"dense": dense[i].tolist(), "bm25": m.SparseVector(indices=list(sparse[i][0]), values=list(sparse[i][1]))},
                payload=self._tagged(_payload(c, file_hash)),
            )
            for i, c in enumerate(chunks)
        ]
        for start in range(0, len(points), 256):
            self._client.upsert(self.collection, points[start : start + 256], wait=True)

    def _tagged(self, payload: dict[str, Any]) -> dict[str, Any]:
        if self.options.tenant:
            payload["tenant"] = self.options.tenant
        return payload

    def delete_path(self, path: str, keep_hash: str | None = None) -> None:
        m = self._m
        must_not = [m.FieldCondition(key="file_hash", match=m.MatchValue(value=keep_hash))] if keep_hash else None
        flt = m.Filter(must=[*self._mine(), m.FieldCondition(key="path", match=m.MatchValue(value=path))], must_not=must_not)
        self._client.delete(self.collection, points_selector=m.FilterSelector(filter=flt), wait=True)

    def hybrid(self, query: HybridQuery) -> list[Hit]:
        m = self._m
        flt = self._filter(query.filters)
        dense_q = query.dense.tolist()
        sparse_q = m.SparseVector(indices=list(query.sparse[0]), values=list(query.sparse[1]))
        requests = [
            m.QueryRequest(
                prefetch=[
                    m.Prefetch(query=dense_q, using="dense", limit=query.prefetch, filter=flt, params=self._search),
                    m.Prefetch(query=sparse_q, using="bm25", limit=query.prefetch, filter=flt),
                ],
                query=m.RrfQuery(rrf=m.Rrf(k=query.rrf_k, weights=[query.dense_weight, query.sparse_weight])),
                filter=flt,
                limit=query.limit,
                with_payload=True,
            ),
            m.QueryRequest(query=dense_q, using="dense", limit=query.prefetch, filter=flt, with_payload=False, params=self._search),
            m.QueryRequest(query=sparse_q, using="bm25", limit=query.prefetch, filter=flt, with_payload=False),
        ]
        f, d, sp = self._client.query_batch_points(self.collection, requests, consistency=self._read)
        return _with_channel_scores(
            [(p.id, p.score, p.payload) for p in f.points], [(p.id, p.score) for p in d.points], [(p.id, p.score) for p in sp.points]
        )

    def dense_search(self, vector: np.ndarray, limit: int, filters: SearchFilters | None = None) -> list[Hit]:
        res = self._client.query_points(
            self.collection, query=vector.tolist(), using="dense", limit=limit, query_filter=self._filter(filters), with_payload=True,
            search_params=self._search, consistency=self._read,
        )
        return [_hit(p.id, p.score, p.payload) for p in res.points]

    def sparse_search(self, vector: SparseVec, limit: int, filters: SearchFilters | None = None) -> list[Hit]:
        if not vector[0]:
            return []
        m = self._m
        res = self._client.query_points(
            self.collection,
            query=m.SparseVector(indices=list(vector[0]), values=list(vector[1])),
            using="bm25",
            limit=limit,
            query_filter=self._filter(filters),
            with_payload=True,
            consistency=self._read,
        )
        return [_hit(p.id, p.score, p.payload) for p in res.points]

    def chunks(self, path: str | None = None) -> Iterator[Chunk]:
        m = self._m
        flt = self._filter(None, *([m.FieldCondition(key="path", match=m.MatchValue(value=path))] if path else []))
        offset = None
        while True:
            records, offset = self._client.scroll(
                self.collection, scroll_filter=flt, limit=512, offset=offset, with_payload=True, consistency=self._read
            )
            for r in records:
                yield Chunk.from_payload(r.payload or {})
            if offset is None:
                return

    def count(self) -> int:
        return int(self._client.count(self.collection, count_filter=self._filter(None), exact=True).count)

    def sources(self) -> dict[str, SourceRecord]:
        out: dict[str, SourceRecord] = {}
        offset = None
        while True:
            records, offset = self._client.scroll(
                self.sources_collection, scroll_filter=self._filter(None), limit=512, offset=offset, with_payload=True, consistency=self._read
            )
            for r in records:
                p = dict(r.payload or {})
                p.pop("tenant", None)
                p["source_type"] = SourceType(p["source_type"])
                out[p["path"]] = SourceRecord(**p)
            if offset is None:
                return out

    def put_source(self, record: SourceRecord) -> None:
        data = asdict(record)
        data["source_type"] = record.source_type.value
        point = self._m.PointStruct(id=self._id(record.path, "__source__"), vector={}, payload=self._tagged(data))
        self._client.upsert(self.sources_collection, [point], wait=True)

    def drop_source(self, path: str) -> None:
        self._client.delete(self.sources_collection, points_selector=self._m.PointIdsList(points=[self._id(path, "__source__")]), wait=True)

    def optimize(self) -> None:
        """The server builds its indexes itself."""

    def close(self) -> None:
        self._client.close()


def remove_embedded(directory: Path) -> None:
    """Delete an embedded store's index files (shard, sources, metadata, cached statistics), and
    nothing else in the directory (the service's sessions and uploads stay)."""
    import shutil

    shutil.rmtree(directory / "shard", ignore_errors=True)
    for name in ["store.json", "sources.sqlite", *(p.name for p in directory.glob("stats-*.json"))]:
        (directory / name).unlink(missing_ok=True)


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
