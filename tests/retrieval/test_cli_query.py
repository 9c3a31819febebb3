"""``srekb search`` / ``srekb ask`` as scripts call them: a real process, the real model and engine."""

import json
import os
import subprocess
import sys


def srekb(*args: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env_extra or {})}
    env.pop("GOOGLE_API_KEY", None)
    env.pop("GEMINI_API_KEY", None)
    return subprocess.run([sys.executable, "-m", "srekb.api.cli", *args], capture_output=True, text=True, timeout=300, env=env)


def test_ask_json_contract(cli_store_dir):
    res = srekb("ask", "PatroniNoLeader is firing, what should I check?", "--store", str(cli_store_dir), "--json")
    assert res.returncode == 0, res.stderr
    d = json.loads(res.stdout)
    assert set(d) == {"question", "intent", "mode", "abstained", "outcome", "answerability", "answer", "citations", "citation_block", "hits", "timings_ms"}
    assert d["mode"] == "extractive" and d["abstained"] is False and d["intent"] in {"troubleshooting", "monitoring", "configuration", "general"}
    c = d["citations"][0]
    assert set(c) >= {"n", "source_type", "path", "lines", "incident_id", "date", "title", "section", "text"}
    assert c["n"] == 1 and (c["lines"] is None or len(c["lines"]) == 2)
    assert set(d["hits"][0]) >= {"path", "source_type", "lines", "score", "title", "section"}
    assert d["citation_block"].startswith("Citations:\n1) ")


def test_ask_human_output_and_search(cli_store_dir):
    res = srekb("ask", "How long may a SEV1 page go unacknowledged?", "--store", str(cli_store_dir))
    assert res.returncode == 0, res.stderr
    assert "\nCitations:\n1) " in res.stdout and "mode: extractive" in res.stdout
    res = srekb("search", "KafkaConsumerLagHigh", "--store", str(cli_store_dir), "--k", "3", "--json")
    hits = json.loads(res.stdout)["hits"]
    assert len(hits) == 3 and "KafkaConsumerLagHigh" in json.dumps(hits[0])


def test_query_errors_are_clear(cli_store_dir, tmp_path):
    res = srekb("ask", "   ", "--store", str(cli_store_dir))
    assert res.returncode == 2 and "question is empty" in res.stderr and "Traceback" not in res.stderr
    res = srekb("search", "disk", "--k", "500", "--store", str(cli_store_dir))
    assert res.returncode == 2 and "k must be between 1 and 100" in res.stderr
    res = srekb("ask", "etcd has no leader", "--store", str(tmp_path / "nothing"))
    assert res.returncode == 1 and "srekb ingest" in res.stderr and "Traceback" not in res.stderr
