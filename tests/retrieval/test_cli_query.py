"""``srekb search`` / ``srekb ask`` as scripts call them: a real process, the real model and engine."""

import json
import os
import re
import subprocess
import sys

from tests.llm_stub import LLMStub

MODEL_ENV = ("GOOGLE_API_KEY", "GEMINI_API_KEY", "OPENAI_BASE_URL", "OPENAI_API_KEY")


def srekb(*args: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    """The command with no model configured unless ``env_extra`` configures one."""
    env = {k: v for k, v in os.environ.items() if k not in MODEL_ENV and not k.startswith(("SRE_KB_OPENAI_", "SRE_KB_GEMINI_", "SRE_KB_LLM_"))}
    env.update({"HF_HUB_OFFLINE": "1", **(env_extra or {})})
    return subprocess.run([sys.executable, "-m", "srekb.api.cli", *args], capture_output=True, text=True, timeout=300, env=env)


def test_ask_json_contract(cli_store_dir):
    res = srekb("ask", "PatroniNoLeader is firing, what should I check?", "--store", str(cli_store_dir), "--json")
    assert res.returncode == 0, res.stderr
    d = json.loads(res.stdout)
    assert set(d) == {"question", "intent", "mode", "abstained", "outcome", "answerability", "answer", "parts", "backend", "llm_error",
                      "unsupported", "citations", "citation_block", "hits", "timings_ms"}
    assert d["backend"] is None and d["llm_error"] is None and d["unsupported"] == 0  # no model configured: quoted offline
    assert d["parts"] and all(set(p) == {"kind", "text", "source"} for p in d["parts"])
    assert d["mode"] == "extractive" and d["abstained"] is False and d["intent"] in {"troubleshooting", "monitoring", "configuration", "general"}
    c = d["citations"][0]
    assert set(c) >= {"n", "source_type", "path", "lines", "incident_id", "date", "title", "section", "text"}
    assert c["n"] == 1 and (c["lines"] is None or len(c["lines"]) == 2)
    assert set(d["hits"][0]) >= {"path", "source_type", "lines", "score", "title", "section"}
    assert d["citation_block"].startswith("Citations:\n1) ")


def test_ask_human_output_and_search(cli_store_dir):
    res = srekb("ask", "How long may a SEV1 page go unacknowledged?", "--store", str(cli_store_dir))
    assert res.returncode == 0, res.stderr
    assert "\nCitations:\n1) " in res.stdout and "mode: extractive (quoted from the sources)" in res.stdout
    assert "no LLM configured" not in res.stdout and "model failed" not in res.stdout
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


def test_ask_renders_the_answers_markdown_as_plain_text_when_piped(cli_store_dir):
    """Numbered steps keep their numbers (a list may start at 2), bold and italics lose their
    marks, inline code keeps its backticks (no colours mark it in a pipe), nothing is padded."""
    question = "PatroniNoLeader is firing, what should I check?"
    answer = json.loads(srekb("ask", question, "--store", str(cli_store_dir), "--json").stdout)["answer"]
    steps = re.findall(r"^(\d+)\. ", answer, re.M)
    assert steps, answer  # the question's answer quotes numbered steps
    res = srekb("ask", question, "--store", str(cli_store_dir))
    assert res.returncode == 0, res.stderr
    text = res.stdout.split("\nCitations:\n", 1)[0]
    assert re.findall(r"^(\d+)\. ", text, re.M) == steps, text
    assert "**" not in text and "From *" not in text
    assert all(code in text for code in re.findall(r"`[^`\n]+`", answer))
    assert "\x1b[" not in res.stdout and all(line == line.rstrip() for line in res.stdout.splitlines())


LONG_COMMAND = ("kubectl -n inventory exec -it inventory-redis-0 -- redis-cli -a \"$REDIS_PASSWORD\" cluster info "
                "| grep -E 'cluster_state|cluster_slots_ok|cluster_known_nodes'")
MODEL_REPLY = ("Check the cluster first:\n\n"
               "1. The cluster has 16384 hash slots spread over 6 primaries [1].\n"
               "2. With full coverage required, **one** failed slot makes the whole cluster refuse every command [1].\n\n"
               "The moon is made of green cheese [1].\n\n"
               f"```bash\n{LONG_COMMAND}\n  | sed 's/<b>/x/'\n```\n\n"
               "- The pods are `inventory-redis-0..11` in namespace `inventory` [1].")


def test_ask_prints_a_models_markdown_and_names_the_model(cli_store_dir):
    """A generated answer: steps numbered, the code block verbatim (a 150-column line neither
    wrapped nor cropped, its indent kept, its <b> text), the footer names the backend and counts
    the sentence removed as unsupported."""
    with LLMStub() as stub:
        stub.behave("ok", MODEL_REPLY)
        res = srekb("ask", "How do I check the redis cluster slots?", "--store", str(cli_store_dir),
                    env_extra={"SRE_KB_OPENAI_BASE_URL": stub.openai_url, "SRE_KB_OPENAI_MODEL": "stub-model", "SRE_KB_LLM_TIMEOUT_S": "10"})
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert "1. The cluster has 16384 hash slots spread over 6 primaries [1]." in lines, res.stdout
    assert "2. With full coverage required, one failed slot makes the whole cluster refuse every command [1]." in lines
    assert LONG_COMMAND in lines and "  | sed 's/<b>/x/'" in lines
    assert "• The pods are `inventory-redis-0..11` in namespace `inventory` [1]." in lines
    assert "```" not in res.stdout and "**" not in res.stdout and "green cheese" not in res.stdout
    assert "mode: generative · answered by openai:stub-model" in res.stdout
    assert "1 unsupported sentence removed" in res.stdout and "model failed" not in res.stdout


def test_ask_says_the_configured_model_failed(cli_store_dir):
    """Bug: with a model configured but unreachable the footer said "no LLM configured"."""
    res = srekb("ask", "How long may a SEV1 page go unacknowledged?", "--store", str(cli_store_dir),
                env_extra={"SRE_KB_OPENAI_BASE_URL": "http://127.0.0.1:9/v1", "SRE_KB_OPENAI_MODEL": "m", "SRE_KB_LLM_TIMEOUT_S": "2"})
    assert res.returncode == 0, res.stderr
    assert "mode: extractive (quoted from the sources)" in res.stdout and "no LLM configured" not in res.stdout
    note = next(line for line in res.stdout.splitlines() if line.startswith("model failed: "))
    assert note.startswith("model failed: openai:m: ") and note.endswith("; answered extractively"), note
