"""The server store on a Qdrant cluster (issue 17): the requests the real ``qdrant-client`` sends
carry the cluster layout, quantization, consistency and tenant from settings; tenants sharing
one collection never see each other's documents.

No Qdrant server binary can be installed here, so the layout is checked on the wire: the real
client talks REST to a local stub that records every request and answers like Qdrant. The
tenant behaviour runs on qdrant-client's local mode, the same code path as the suite's other
server-store tests."""

from __future__ import annotations

import json
import threading
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError
from srekb.retrieval.errors import ConfigError
from srekb.retrieval.models.sparse import default_bm25
from srekb.retrieval.settings import Settings
from srekb.retrieval.store import HybridQuery, SearchFilters, ServerOptions, ServerStore, open_store
from srekb.retrieval.types import Chunk, SourceRecord, SourceType


class QdrantRecorder(BaseHTTPRequestHandler):
    """Answers Qdrant's REST routes with empty, well-formed results and records each request."""

    calls: list[tuple[str, str, Any]] = []
    protocol_version = "HTTP/1.1"  # keep-alive, as Qdrant serves

    def _answer(self) -> None:
        n = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(n)) if n else None
        self.calls.append((self.command, self.path, body))
        route = self.path.split("?")[0]
        result: Any = True
        for suffix, value in [
            ("/exists", {"exists": False}),
            ("/index", {"operation_id": 1, "status": "completed"}),
            ("/points/query/batch", [{"points": []} for _ in (body or {}).get("searches", [])]),
            ("/points/query", {"points": []}),
            ("/points/scroll", {"points": [], "next_page_offset": None}),
            ("/points/count", {"count": 0}),
            ("/points", {"operation_id": 1, "status": "completed"}),
            ("/points/delete", {"operation_id": 1, "status": "completed"}),
        ]:
            if route.endswith(suffix):
                result = value
                break
        data = json.dumps({"result": result, "status": "ok", "time": 0.0}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_DELETE = _answer

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def qdrant_stub() -> Iterator[tuple[str, list[tuple[str, str, Any]]]]:
    calls: list[tuple[str, str, Any]] = []
    handler = type("Recorder", (QdrantRecorder,), {"calls": calls})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", calls
    server.shutdown()
    server.server_close()


def _client(url: str) -> Any:
    """The real REST client; its version check runs in a thread that could outlive the stub."""
    from qdrant_client import QdrantClient

    return QdrantClient(url=url, check_compatibility=False)


def _chunk(path: str, text: str) -> Chunk:
    return Chunk(path, SourceType.RUNBOOK, path, "s", text, 1, 2, key="k")


def _query(text: str, dim: int = 8) -> HybridQuery:
    rng = np.random.default_rng(zlib.crc32(text.encode()))
    v = rng.normal(size=dim).astype(np.float32)
    return HybridQuery(dense=v / np.linalg.norm(v), sparse=default_bm25().query(text))


def _write(store: ServerStore, chunk: Chunk, dim: int = 8) -> None:
    v = np.ones((1, dim), dtype=np.float32) / np.sqrt(dim)
    store.upsert([chunk], v, [default_bm25().document(chunk.embed_text())], file_hash="h")
    store.put_source(SourceRecord(chunk.path, "/root", SourceType.RUNBOOK, "h", 1, 1, "2026-12-07T00:00:00"))


def test_settings_reach_a_cluster_on_the_wire(qdrant_stub):
    """Collection creation takes shards, replicas and write consistency from settings, indexes
    the tenant as a tenant, keeps int8 copies in RAM with originals on disk; reads ask a majority
    and rescore quantized candidates; writes and deletes carry the tenant."""
    url, calls = qdrant_stub
    settings = Settings(
        qdrant_url=url, collection="kb", qdrant_shards=6, qdrant_replicas=2, qdrant_write_consistency=2,
        qdrant_read_consistency="majority", qdrant_quantization="scalar", qdrant_on_disk=True, tenant="team-a",
    )
    store = ServerStore(url, "kb", 8, "m", options=ServerOptions.from_settings(settings), client=_client(url))
    _write(store, _chunk("runbooks/disk.md", "disk full"))
    store.hybrid(_query("disk full"))
    store.delete_path("runbooks/disk.md")

    def bodies(method: str, route: str) -> list[Any]:
        return [b for m, p, b in calls if m == method and p.split("?")[0] == route]

    (created,) = bodies("PUT", "/collections/kb")
    assert (created["shard_number"], created["replication_factor"], created["write_consistency_factor"]) == (6, 2, 2)
    assert created["quantization_config"] == {"scalar": {"type": "int8", "quantile": 0.99, "always_ram": True}}
    assert created["vectors"]["dense"]["on_disk"] is True and created["on_disk_payload"] is True
    (sources,) = bodies("PUT", "/collections/kb__sources")
    assert (sources["shard_number"], sources["replication_factor"]) == (6, 2)
    indexes = {b["field_name"]: b["field_schema"] for b in bodies("PUT", "/collections/kb/index")}
    assert indexes["tenant"] == {"type": "keyword", "is_tenant": True}
    assert {"path", "source_type", "meta.service", "meta.date", "file_hash"} <= set(indexes)

    (upsert,) = bodies("PUT", "/collections/kb/points")
    assert upsert["points"][0]["payload"]["tenant"] == "team-a"
    batch = [(p, b) for m, p, b in calls if p.startswith("/collections/kb/points/query/batch")]
    (path, body), = batch
    assert "consistency=majority" in path
    fused, dense, sparse = body["searches"]
    mine = {"key": "tenant", "match": {"value": "team-a"}}
    assert fused["prefetch"][0]["params"] == {"quantization": {"rescore": True, "oversampling": 2.0}}
    assert dense["params"] == {"quantization": {"rescore": True, "oversampling": 2.0}}
    assert all(mine in q["filter"]["must"] for q in [fused, dense, sparse, *fused["prefetch"]])
    (deleted,) = bodies("POST", "/collections/kb/points/delete")
    assert mine in deleted["filter"]["must"]


def test_defaults_leave_the_servers_layout(qdrant_stub):
    """Without cluster settings nothing is imposed: no shard or replica count, no quantization,
    no tenant index or tenant condition."""
    url, calls = qdrant_stub
    store = ServerStore(url, "kb", 8, "m", options=ServerOptions.from_settings(Settings(qdrant_url=url)), client=_client(url))
    store.hybrid(_query("disk"))
    (created,) = [b for m, p, b in calls if m == "PUT" and p.split("?")[0] == "/collections/kb"]
    assert not {"shard_number", "replication_factor", "write_consistency_factor", "quantization_config"} & set(created)
    assert not any(b and b.get("field_name") == "tenant" for _, _, b in calls)
    (batch,) = [b for m, p, b in calls if "/points/query/batch" in p and "consistency" not in p]
    assert all("filter" not in q and "params" not in q for q in batch["searches"][1:])


def test_tenants_share_a_collection_and_see_only_their_own():
    """Two teams in one collection: the same path in both does not collide; search, count,
    sources and deletes each stay inside the team."""
    from qdrant_client import QdrantClient

    client = QdrantClient(location=":memory:")
    a = ServerStore(":memory:", "kb", 8, "m", options=ServerOptions(tenant="team-a"), client=client)
    b = ServerStore(":memory:", "kb", 8, "m", options=ServerOptions(tenant="team-b"), client=client)
    _write(a, _chunk("runbooks/disk.md", "team a: disk full, clean the WAL volume"))
    _write(b, _chunk("runbooks/disk.md", "team b: disk full, expand the PVC"))
    _write(b, _chunk("runbooks/etcd.md", "team b: etcd has no leader"))

    assert (a.count(), b.count()) == (1, 2)
    assert [h.chunk.text for h in a.hybrid(_query("disk full"))] == ["team a: disk full, clean the WAL volume"]
    assert {h.chunk.path for h in b.hybrid(_query("disk full"))} == {"runbooks/disk.md", "runbooks/etcd.md"}
    assert [h.chunk.text for h in a.dense_search(_query("x").dense, 10, SearchFilters(paths=["runbooks/disk.md"]))] == [
        "team a: disk full, clean the WAL volume"
    ]
    assert set(a.sources()) == {"runbooks/disk.md"} and set(b.sources()) == {"runbooks/disk.md", "runbooks/etcd.md"}

    a.delete_path("runbooks/disk.md")
    a.drop_source("runbooks/disk.md")
    assert a.count() == 0 and a.sources() == {}
    assert b.count() == 2 and [c.text for c in b.chunks("runbooks/disk.md")] == ["team b: disk full, expand the PVC"]


def test_tenant_needs_a_server_and_a_plain_name(tmp_path):
    """A tenant on the embedded store would be silently ignored: refused with what to do instead;
    a tenant name that is not a plain token is refused at start-up."""
    with pytest.raises(ConfigError, match="own --store"):
        open_store(Settings(store=tmp_path / "s", tenant="team-a"), 8, "m")
    for bad in ["", "team a", "../x", "a" * 200]:
        with pytest.raises(ValidationError):
            Settings(tenant=bad)
    with pytest.raises(ValidationError):
        Settings(qdrant_read_consistency="some")
