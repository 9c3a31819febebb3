"""Extractive answers on real third-party documents (../shared/corpora/real): whole units only,
numbered procedures whole and in order, commands verbatim, and the value asked for first with
its file and line."""

from __future__ import annotations

import json
import re

from tests.conftest import REAL

MARKERS = re.compile(r"\s*\[\d+\]")


def _body(text: str) -> str:
    return text.split("\n\n", 1)[1] if text.startswith("Caveat:") else text


def _opens_a_unit(unit: str, source: str) -> bool | None:
    """Whether ``unit`` starts where a sentence or a list item starts in ``source`` (None: not
    quoted from it, e.g. a rule's summary or a table row, which the answer writes)."""
    head = MARKERS.sub("", unit)[:25]
    at = source.find(head)
    if at < 0:
        return None
    before = source[source.rfind("\n", 0, at) + 1 : at]
    return not before.strip() or bool(re.fullmatch(r"\s*([-*+]|\d+[.)]|>|\|)\s*", before)) or before.rstrip()[-1:] in ".!?:|"


def test_no_answer_starts_mid_sentence(real_kb):
    questions = [json.loads(line) for line in (REAL / "questions.jsonl").read_text().splitlines() if line.strip()]
    answered = checked = 0
    for q in questions:
        a = real_kb.ask(q["question"])
        if a.abstained:
            continue
        answered += 1
        assert not re.match(r"[\s,;.)\]]", _body(a.text)), (q["id"], a.text[:120])
        for part in a.parts:
            assert part.source is not None and 1 <= part.source <= len(a.citations)
            if part.kind != "sentence":
                continue
            source = (REAL / a.citations[part.source - 1].path).read_text()
            for sentence in re.split(r"(?<=[.!?])\s+(?=\S)", part.text):
                verdict = _opens_a_unit(sentence, source)
                if verdict is not None:
                    checked += 1
                    assert verdict, (q["id"], sentence[:120])
    assert answered >= 40 and checked >= 40


def test_a_numbered_procedure_comes_out_whole_and_in_order(real_kb):
    a = real_kb.ask("How do I replace a corrupted etcd member?")
    source = (REAL / "etcd-docs/op-guide/data_corruption.md").read_text()
    steps = re.findall(r"^\d+\. .*$", source.split("### Replace member", 1)[1].split("###", 1)[0], re.M)
    assert len(steps) == 6
    assert "\n".join(steps) in a.text  # every step, its number and its words, in the source's order
    part = next(p for p in a.parts if p.kind == "steps")
    assert part.text.startswith("Member can be replaced by [") and "etcd-docs/op-guide/data_corruption.md" == a.citations[part.source - 1].path


def test_a_code_block_comes_out_verbatim(real_kb):
    a = real_kb.ask("How can I combine etcd_mvcc_db_total_size_in_bytes and etcd_mvcc_db_total_size_in_use_in_bytes "
                    "to see how much space a defragmentation would give back?")
    code = next(p for p in a.parts if p.kind == "code")
    block = code.text.split("\n\n", 1)[1]
    assert block.startswith("```") and block.endswith("```")
    cited = a.citations[code.source - 1]
    assert block in (REAL / cited.path).read_text()  # fences, language and every character as the source has them


def test_a_threshold_question_leads_with_the_threshold_and_its_line(real_kb):
    a = real_kb.ask("What expression and duration does kube-prometheus use for the KubePodCrashLooping alert?")
    lead = a.parts[0]
    assert lead.kind == "value" and _body(a.text).startswith(lead.text)
    m = re.search(r"fires when `(.+?)`, for `(\w+)`.*\(`([^`]+):L(\d+)`\) \[(\d+)\]", lead.text)
    assert m, lead.text
    expr, duration, path, line, n = m.groups()
    lines = (REAL / path).read_text().splitlines()
    assert "expr:" in lines[int(line) - 1] and expr.startswith(lines[int(line) - 1].split("expr:", 1)[1].strip().rstrip("|>").strip()[:20])
    assert ">= 1" in expr and duration == "15m"
    assert a.citations[int(n) - 1].path == path
