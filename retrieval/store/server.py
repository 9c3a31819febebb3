"""The server backend: a Qdrant server or cluster through ``qdrant-client`` (``SRE_KB_QDRANT_URL``);
``":memory:"`` gives qdrant-client's local mode, used by tests as a double of the server path."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from srekb.retrieval.errors import ConfigError, StoreError, StoreNotFoundError
from srekb.retrieval.settings import Settings
from srekb.retrieval.store.base import INDEXED_FIELDS, HybridQuery, SearchFilters, SparseVec, payload, point_id, to_hit, with_channel_scores
from srekb.retrieval.types import Chunk, Hit, SourceRecord, SourceType


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
                payload=self._tagged(payload(c, file_hash)),
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
        return with_channel_scores(
            [(p.id, p.score, p.payload) for p in f.points], [(p.id, p.score) for p in d.points], [(p.id, p.score) for p in sp.points]
        )

    def dense_search(self, vector: np.ndarray, limit: int, filters: SearchFilters | None = None) -> list[Hit]:
        res = self._client.query_points(
            self.collection, query=vector.tolist(), using="dense", limit=limit, query_filter=self._filter(filters), with_payload=True,
            search_params=self._search, consistency=self._read,
        )
        return [to_hit(p.id, p.score, p.payload) for p in res.points]

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
        return [to_hit(p.id, p.score, p.payload) for p in res.points]

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
