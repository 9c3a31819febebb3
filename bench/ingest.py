"""Ingestion benchmark: first-ingest throughput against the encoder alone, and re-ingest cost.

    python bench/ingest.py [PATH ...]        (default: the shipped corpus + ../shared/corpora/real)

Prints: first-ingest chunks/s, raw embedding chunks/s of the very same chunk texts by the model
alone, their ratio (target >= 0.9), and the unchanged re-ingest time as a fraction of the first
ingest (target <= 0.02). The model is loaded and warmed before any timing.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from srekb.ingest.pipeline import Ingestor  # noqa: E402
from srekb.retrieval.models.embedding import make_embedder  # noqa: E402
from srekb.retrieval.settings import Settings  # noqa: E402
from srekb.retrieval.store import EdgeStore  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="*", type=Path, default=[ROOT / "corpora" / "sre", ROOT.parent / "shared" / "corpora" / "real"])
    parser.add_argument("--backend", choices=["auto", "onnx", "torch"], default="auto")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(store=Path(tmp) / "store", embedding_backend=args.backend)
        embedder = make_embedder(settings)
        embedder.embed_batch(["warm up the encoder"] * 8)
        store = EdgeStore(settings.store, embedder.dim, embedder.name)
        ingestor = Ingestor(store, embedder, settings)
        paths = [p for p in args.paths if p.exists()]

        t = time.perf_counter()
        first = ingestor.run(paths, exclude=["questions*.jsonl"])
        first_s = time.perf_counter() - t
        texts = [c.embed_text() for c in store.chunks()]
        unique = list(dict.fromkeys(texts))

        t = time.perf_counter()
        embedder.embed_batch(unique)
        raw_s = time.perf_counter() - t

        t = time.perf_counter()
        again = ingestor.run(paths, exclude=["questions*.jsonl"])
        again_s = time.perf_counter() - t
        store.close()

    ingest_rate = first.chunks_written / first_s
    raw_rate = len(unique) / raw_s * (first.chunks_written / max(1, len(unique)))
    print(f"corpus: {', '.join(str(p) for p in paths)}")
    print(f"encoder: {embedder.name} ({type(embedder).__name__})")
    print(f"files: {len(first.added)} ingested, {len(first.skipped)} skipped; chunks: {first.chunks_written} ({len(unique)} unique texts)")
    print(f"first ingest: {first_s:.1f} s = {ingest_rate:.1f} chunks/s (of which embedding {first.embed_seconds:.1f} s)")
    print(f"raw embedding of the same chunks: {raw_s:.1f} s = {raw_rate:.1f} chunks/s")
    print(f"ratio ingest/raw: {ingest_rate / raw_rate:.3f}   (target >= 0.9)")
    print(f"unchanged re-ingest: {again_s:.3f} s = {again_s / first_s:.4f} of first ingest   (target <= 0.02); "
          f"{len(again.unchanged)} unchanged, {again.chunks_embedded} embedded")


if __name__ == "__main__":
    main()
