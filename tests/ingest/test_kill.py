"""``kill -9`` of ``srekb ingest`` mid-write, then the same command again (issue 17's fault
suite, the command-line half; the HTTP half is tests/api/test_job_restart.py): nothing lost,
nothing duplicated, and a file is only ever recorded as ingested once its chunks are there."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter

from srekb.ingest.loaders import discover
from srekb.retrieval.store import EdgeStore

from tests.conftest import SHIPPED


def test_ingest_killed_mid_write_then_rerun_gives_the_clean_store(tmp_path, shipped_kb):
    store = tmp_path / "store"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "srekb.api.cli", "ingest", str(SHIPPED), "--store", str(store), "--json"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    recorded = 0
    deadline = time.time() + 300
    try:  # kill it once some files are recorded (the first of two encoder batches is written), before the end
        while time.time() < deadline and proc.poll() is None and not recorded:
            time.sleep(0.02)
            try:
                with sqlite3.connect(f"file:{store / 'sources.sqlite'}?mode=ro", uri=True, timeout=1) as db:
                    recorded = db.execute("SELECT count(*) FROM sources").fetchone()[0]
            except sqlite3.Error:
                pass  # not created yet
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    # The clean ingest of the same tree, read from the suite's shipped store (other tests may have
    # added sources of their own to it: only the tree's files are compared).
    on_disk = {rel for rel, _, _ in discover([SHIPPED]).files}
    clean = {p: r.chunks for p, r in shipped_kb.store.sources().items() if p in on_disk}
    assert proc.returncode == -signal.SIGKILL and 0 < recorded < len(clean), (proc.returncode, recorded)

    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert len(report["unchanged"]) >= recorded and len(report["unchanged"]) + len(report["added"]) == len(clean)

    s = EdgeStore(store, shipped_kb.embedder.dim, shipped_kb.embedder.name, create=False)
    try:
        keys = Counter((c.path, c.key) for c in s.chunks())
        assert max(keys.values()) == 1  # no chunk twice
        assert s.count() == sum(clean.values())
        assert {p: r.chunks for p, r in s.sources().items()} == clean
        assert Counter(p for p, _ in keys) == Counter(clean)  # every file has exactly its chunks
    finally:
        s.close()
