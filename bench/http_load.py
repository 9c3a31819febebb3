"""HTTP load benchmark: `POST /v1/search` at N concurrent clients for T seconds on the shipped corpus.

    python bench/http_load.py [--clients 32] [--seconds 30] [--store DIR]

Starts `srekb serve` as its own process on 127.0.0.1 (ingesting corpora/sre into the store
first, not timed), then drives it with asyncio + httpx clients on loopback, each sending the
labelled questions of corpora/eval/questions.jsonl in turn. Prints req/s, p50/p95/p99 latency
and errors. Targets: >= 150 req/s, p99 < 100 ms, 0 errors. The load generator shares the
machine's cores with the server: on 2 cores that costs the server part of its CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def client(url: str, questions: list[str], offset: int, stop: float, lat: list[float], errors: list[str]) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        i = offset
        while time.perf_counter() < stop:
            q = questions[i % len(questions)]
            i += 1
            t = time.perf_counter()
            try:
                r = await http.post(f"{url}/v1/search", json={"question": q, "k": 10})
                if r.status_code != 200:
                    errors.append(f"HTTP {r.status_code}")
                    continue
            except httpx.HTTPError as exc:
                errors.append(type(exc).__name__)
                continue
            lat.append((time.perf_counter() - t) * 1000)


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, int(round(p / 100 * len(s))) - 1))] if s else 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--store", type=Path, default=None, help="store directory (default: a temporary one)")
    ap.add_argument("--onnx-threads", type=int, default=None, help="SRE_KB_ONNX_THREADS for the server (1: one core per request)")
    args = ap.parse_args()
    tmp = tempfile.TemporaryDirectory()
    store = args.store or Path(tmp.name) / "store"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    if args.onnx_threads is not None:
        env["SRE_KB_ONNX_THREADS"] = str(args.onnx_threads)
    for key in ("GOOGLE_API_KEY", "GEMINI_API_KEY", "SRE_KB_GOOGLE_API_KEY"):
        env.pop(key, None)
    print("ingesting corpora/sre (not timed)...", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "api.cli", "ingest", str(ROOT / "corpora" / "sre"), "--store", str(store)],
                   cwd=ROOT, env=env, check=False, capture_output=True)
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "api.cli", "serve", "--store", str(store), "--port", str(port)],
                              cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        questions = [json.loads(line)["question"] for line in (ROOT / "corpora" / "eval" / "questions.jsonl").read_text().splitlines()]
        for q in questions[:10]:  # warm-up
            httpx.post(f"{url}/v1/search", json={"question": q}, timeout=30)
        lat: list[float] = []
        errors: list[str] = []
        start = time.perf_counter()
        stop = start + args.seconds

        async def run() -> None:
            await asyncio.gather(*(client(url, questions, i * 7, stop, lat, errors) for i in range(args.clients)))

        asyncio.run(run())
        elapsed = time.perf_counter() - start
    finally:
        server.terminate()
        server.wait(10)
        tmp.cleanup()
    rps = len(lat) / elapsed
    print(f"POST /v1/search, {args.clients} concurrent clients, {elapsed:.1f} s, cores: {os.cpu_count()}, "
          f"SRE_KB_ONNX_THREADS={env.get('SRE_KB_ONNX_THREADS', 'default')}")
    print(f"requests: {len(lat)} ok, {len(errors)} errors {sorted(set(errors))[:5]}")
    print(f"throughput: {rps:.1f} req/s   (target >= 150)")
    print(f"latency ms: p50 {pct(lat, 50):.1f}  p95 {pct(lat, 95):.1f}  p99 {pct(lat, 99):.1f}   (target p99 < 100)")


if __name__ == "__main__":
    main()
