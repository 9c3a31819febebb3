"""Scale benchmark: bytes per chunk on disk and `srekb serve` memory at 100k chunks, projected to 1M and 10M.

    python bench/scale.py [--chunks 100000] [--source-store DIR] [--requests 600]

Builds an embedded store of ``--chunks`` chunks the way bench/query.py does (the shipped and
real corpora ingested once by the real Ingestor, then synthetic copies with perturbed text,
noisy vectors and recomputed BM25; a source record per file), then:

  * sizes the store by component, in allocated bytes (``st_blocks``, so the engine's
    preallocated, still-sparse files count for what they hold): dense vectors, the HNSW graph,
    sparse (BM25) vectors and their index, payloads, payload indexes, WAL, the rest;
  * starts `srekb serve` on it and reads the server's memory from /proc (VmRSS, its anonymous
    part RssAnon, the file-backed part RssFile: memory-mapped store pages the kernel can drop
    and re-read, and the peak VmHWM) after start-up, and after ``--requests`` `/v1/search`
    requests with questions it has not seen plus 30 `/v1/ask`;
  * projects bytes per chunk to 1M and 10M chunks, for the embedded layout and for a Qdrant
    cluster with scalar quantization (int8 dense copies in RAM, originals on disk).

Target printed beside the figures: server RSS <= 1.5 GB at 100k chunks. Progress goes to
stderr, figures to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from srekb.retrieval.models.embedding import make_embedder  # noqa: E402
from srekb.retrieval.settings import Settings  # noqa: E402
from srekb.retrieval.types import SourceRecord, SourceType  # noqa: E402

from bench.http_load import start_server, stop_server  # noqa: E402
from bench.query import build_store, load_questions, progress, scale, source_corpus  # noqa: E402

TARGET_RSS_GB = 1.5
COMPONENTS = [  # (label, substring of a path under the shard), first match wins
    ("dense vectors", "vector_storage-dense"),
    ("HNSW graph (dense)", "vector_index-dense"),
    ("sparse vectors", "vector_storage-bm25"),
    ("sparse index", "vector_index-bm25"),
    ("payloads", "payload_storage"),
    ("payload indexes", "payload_index"),
    ("WAL", "/wal/"),
]


def allocated(directory: Path) -> dict[str, int]:
    """Allocated bytes under a store directory by component."""
    out: dict[str, int] = {label: 0 for label, _ in COMPONENTS} | {"other": 0}
    other: dict[str, int] = {}
    for path in directory.rglob("*"):
        if not path.is_file():
            continue
        size = path.stat().st_blocks * 512
        rel = "/" + str(path.relative_to(directory))
        label = next((lab for lab, key in COMPONENTS if key in rel), "other")
        out[label] += size
        if label == "other":
            name = path.parent.name if path.parent.name != "shard" else path.name
            other[name] = other.get(name, 0) + size
    progress("other: " + ", ".join(f"{k} {v / 1e6:.1f} MB" for k, v in sorted(other.items(), key=lambda kv: -kv[1])[:8]))
    return out


def memory(pid: int) -> dict[str, float]:
    """The process's memory in MB from /proc/PID/status."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
            fields[key] = int(value.split()[0]) / 1024  # kB -> MB
    return fields


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--chunks", type=int, default=100_000, help="store size in chunks (default: %(default)s)")
    ap.add_argument("--source-store", type=Path, metavar="DIR", help="read the source chunks from this store instead of ingesting")
    ap.add_argument("--requests", type=int, default=600, help="/v1/search requests after start-up (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.chunks < 1 or args.requests < 0:
        ap.error("--chunks must be positive and --requests not negative")

    with tempfile.TemporaryDirectory(prefix="srekb-scale-") as tmp:
        settings = Settings(store=Path(tmp) / "unused")
        embedder = make_embedder(settings)
        src = source_corpus(embedder, settings, args.source_store)
        corpus = scale(src, args.chunks, args.seed)
        directory = Path(tmp) / "store"
        progress(f"writing {len(corpus.chunks):,} chunks ({max(0, args.chunks - len(src.chunks)):,} synthetic) and building the index")
        store, write_s, opt_s = build_store(directory, corpus, embedder)
        per_file: dict[str, tuple[str, int]] = {}
        for c, h in zip(corpus.chunks, corpus.hashes, strict=True):
            per_file[c.path] = (h, per_file.get(c.path, (h, 0))[1] + 1)
        for path, (h, n) in per_file.items():
            store.put_source(SourceRecord(path, str(ROOT), SourceType.DOC, h, 0, n, "2026-12-07T00:00:00", path))
        store.close()
        progress(f"written in {write_s:.0f} s, index built in {opt_s:.0f} s; {len(per_file):,} source files")
        sizes = allocated(directory)
        total = sum(sizes.values())

        env = {**os.environ, "HF_HUB_OFFLINE": "1"}
        for key in ("GOOGLE_API_KEY", "GEMINI_API_KEY", "SRE_KB_GOOGLE_API_KEY"):
            env.pop(key, None)
        t = time.perf_counter()
        server, url = start_server(directory, env)
        try:
            ready_s = time.perf_counter() - t
            started = memory(server.pid)
            progress(f"server up in {ready_s:.1f} s; {args.requests} searches and 30 asks")
            questions = load_questions()
            errors = 0
            with httpx.Client(timeout=60) as http:
                for i in range(args.requests):
                    r = http.post(f"{url}/v1/search", json={"question": f"{questions[i % len(questions)]} ({i})", "k": 10})
                    errors += r.status_code != 200
                for i in range(30):
                    r = http.post(f"{url}/v1/ask", json={"question": questions[(i * 7) % len(questions)]})
                    errors += r.status_code != 200
                health = http.get(f"{url}/health").json()
            loaded = memory(server.pid)
        finally:
            stop_server(server)

    n = len(corpus.chunks)
    print(f"store of {n:,} chunks ({len(per_file):,} files), {embedder.name} ({embedder.dim}-d), cores: {os.cpu_count()}")
    print(f"write {write_s:.0f} s, index build {opt_s:.0f} s, server ready in {ready_s:.1f} s, "
          f"store health: {json.dumps(health.get('components', {}).get('store', health))[:200]}")
    print("\n| component | MB on disk | bytes per chunk | 1M chunks (GB) | 10M chunks (GB) |\n|---|---|---|---|---|")
    for label, size in [*sizes.items(), ("total", total)]:
        print(f"| {label} | {size / 1e6:,.1f} | {size / n:,.0f} | {size / n * 1e6 / 1e9:,.2f} | {size / n * 1e7 / 1e9:,.1f} |")
    print("\n| server memory (MB) | VmRSS | RssAnon | RssFile | VmHWM (peak) |\n|---|---|---|---|---|")
    for label, m in [("after start-up", started), (f"after {args.requests} searches + 30 asks ({errors} errors)", loaded)]:
        print(f"| {label} | {m['VmRSS']:,.0f} | {m['RssAnon']:,.0f} | {m['RssFile']:,.0f} | {m['VmHWM']:,.0f} |")
    ok = loaded["VmHWM"] / 1000 <= TARGET_RSS_GB
    print(f"\npeak RSS {loaded['VmHWM'] / 1000:.2f} GB at {n:,} chunks (target <= {TARGET_RSS_GB} GB: {'met' if ok else 'NOT met'})")
    dense = sizes["dense vectors"] / n
    print(f"projection, in RAM for speed: dense vectors + HNSW graph {(dense + sizes['HNSW graph (dense)'] / n) * 1e7 / 1e9:,.1f} GB at 10M chunks; "
          f"with scalar quantization the in-RAM dense part is about a quarter ({dense / 4 * 1e7 / 1e9:,.1f} GB of int8 copies at 10M) "
          "and the float originals stay on disk for rescoring")
    print(json.dumps({"chunks": n, "files": len(per_file), "bytes": sizes, "memory_mb": {"started": started, "loaded": loaded}}))


if __name__ == "__main__":
    main()
