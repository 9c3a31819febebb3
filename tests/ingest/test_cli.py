"""``srekb ingest`` / ``srekb sources`` as a user runs them: a real process, the real model."""

import json
import os
import subprocess
import sys
from pathlib import Path


def srekb(*args: str, env_store: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    if env_store:
        env["SRE_KB_STORE"] = str(env_store)
    return subprocess.run([sys.executable, "-m", "srekb.api.cli", *args], capture_output=True, text=True, timeout=300, env=env)


def test_ingest_reports_and_exit_codes(tmp_path):
    root = tmp_path / "kb"
    (root / "runbooks").mkdir(parents=True)
    (root / "runbooks" / "disk.md").write_text("# Disk full\n\n## Mitigation\n\nDelete old WAL segments.\n")
    store = tmp_path / "store"
    res = srekb("ingest", str(root), "--json", env_store=store)
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["added"] == ["runbooks/disk.md"] and report["skipped"] == []

    (root / "bad.yml").write_text("a: [1\n")
    res = srekb("ingest", str(root), "--store", str(store))
    assert res.returncode == 3, res.stdout + res.stderr  # something was skipped
    assert "bad.yml: malformed YAML at line" in res.stdout
    assert "unchanged" in res.stdout

    res = srekb("sources", "--store", str(store), "--json")
    assert res.returncode == 0, res.stderr
    rows = json.loads(res.stdout)
    assert [r["path"] for r in rows] == ["runbooks/disk.md"] and rows[0]["source_type"] == "runbook" and rows[0]["chunks"] == 1


def test_cli_errors_are_one_line_not_tracebacks(tmp_path):
    res = srekb("ingest", str(tmp_path / "missing"), "--store", str(tmp_path / "s"))
    assert res.returncode == 1 and "no such file or directory" in res.stderr and "Traceback" not in res.stderr
    res = srekb("ingest", str(tmp_path), "--type", "bogus", "--store", str(tmp_path / "s"))
    assert res.returncode == 2 and "unknown --type 'bogus'" in res.stderr
    res = srekb("sources", "--store", str(tmp_path / "nothing-here"))
    assert res.returncode == 1 and "srekb ingest" in res.stderr and "Traceback" not in res.stderr
