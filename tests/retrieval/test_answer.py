"""Answer assembly logic on small hand-made hits (the real-model path is in test_kb.py)."""

from srekb.retrieval.answer.draft import Draft, verify_markers
from srekb.retrieval.answer.extractive import ExtractiveAnswerer
from srekb.retrieval.stats import CorpusStats
from srekb.retrieval.text import term_set
from srekb.retrieval.types import Chunk, Hit, SourceType


def _hit(path, text, st=SourceType.RUNBOOK, title="T", section="S", meta=None):
    return Hit(Chunk(path, st, title, section, text, 1, 5, meta=meta or {}), 1.0)


# The corpus knows the everyday words of the questions below (so they are on topic), not the anchors.
STATS = CorpusStats({t: 3 for t in term_set("etcd leader no alert route alerts what does mean went wrong say runbook incident grafana requests failing")}, 100)


def test_unsupported_marker_is_moved_to_the_supporting_source_or_removed():
    a = _hit("a.md", "Restart the etcd member with the stale WAL directory.")
    b = _hit("b.md", "Check the PgBouncer pool size in pgbouncer.ini.")
    draft = Draft("Restart the etcd member with the stale WAL directory [2]. The moon is made of cheese [1]. Uncited aside.",
                  [a, b], "generative")
    fixed = verify_markers(draft)
    # The claim no source supports is removed and counted; a sentence without a marker is kept as written.
    assert fixed.text == "Restart the etcd member with the stale WAL directory [1]. Uncited aside."
    assert [h.chunk.path for h in fixed.sources] == ["a.md"]  # renumbered, b.md no longer cited
    assert (fixed.unsupported, fixed.checked, fixed.verified) == (1, 2, True)


def test_a_number_command_or_name_the_source_does_not_state_makes_the_claim_unsupported():
    src = _hit("a.md", "Raise `default_pool_size` to 40 in pgbouncer.ini, then run `systemctl reload pgbouncer`.")
    ok = "Raise `default_pool_size` to 40 in pgbouncer.ini [1]."
    for wrong in ("Raise `default_pool_size` to 400 in pgbouncer.ini [1].",  # a number the source does not write
                  "Raise `max_client_conn` to 40 in pgbouncer.ini [1].",  # a name it does not write
                  "Then run `systemctl restart pgbouncer` [1]."):  # a command it does not write
        fixed = verify_markers(Draft(f"{ok} {wrong}", [src], "generative"))
        assert fixed.text == ok and fixed.unsupported == 1, wrong


def test_generated_markdown_keeps_its_lines_and_code_blocks():
    src = _hit("a.md", "Check the member: run etcdctl endpoint status. Then restart etcd.")
    text = "Check the member [1]:\n\n```sh\netcdctl endpoint status\n```\n\n1. Then restart etcd [1].\n2. Reboot the moon [1]."
    fixed = verify_markers(Draft(text, [src], "generative"))
    assert fixed.text == "Check the member [1]:\n\n```sh\netcdctl endpoint status\n```\n\n1. Then restart etcd [1]."
    assert fixed.unsupported == 1


def test_a_numbered_procedure_comes_whole_in_order_under_its_lead_in():
    text = ("## Replace member\n\nMember can be replaced by:\n1. Stopping the etcd instance.\n2. Backing up the data directory.\n"
            "3. Removing the member with `etcdctl member remove`.\n4. Adding it back with `etcdctl member add`.")
    draft = ExtractiveAnswerer(STATS).answer("how do I replace a failed etcd member?", [_hit("runbooks/etcd.md", text)])
    assert draft.text == ("Member can be replaced by [1]:\n\n1. Stopping the etcd instance.\n2. Backing up the data directory.\n"
                          "3. Removing the member with `etcdctl member remove`.\n4. Adding it back with `etcdctl member add`.")
    assert [(p.kind, p.source) for p in draft.parts] == [("steps", 1)]


def test_a_command_comes_verbatim_in_its_code_block():
    code = "```sh\n$ ETCDCTL_API=3 etcdctl --write-out=table endpoint status\n$ etcdctl alarm disarm\n```"
    text = f"After compacting and defragmenting, disarm the NOSPACE alarm:\n\n{code}\n\nThen writes succeed."
    draft = ExtractiveAnswerer(STATS).answer("how do I disarm the etcd NOSPACE alarm", [_hit("runbooks/etcd.md", text)])
    assert code in draft.text and draft.text.startswith("After compacting and defragmenting, disarm the NOSPACE alarm [1]:")
    assert draft.parts[0].kind == "code"


def test_a_threshold_question_leads_with_the_rule_and_its_line():
    rule = _hit("configs/rules.yml", "- alert: EtcdNoLeader\n  expr: etcd_server_has_leader == 0\n  for: 1m", SourceType.CONFIG,
                "Prometheus Alert Rules", "EtcdNoLeader", {"alert": "EtcdNoLeader", "expr": "etcd_server_has_leader == 0", "for": "1m",
                                                           "severity": "critical"})
    doc = _hit("runbooks/etcd.md", "When etcd has no leader, check the network between members.")
    draft = ExtractiveAnswerer(STATS).answer("What threshold and duration does the etcd no leader alert use?", [doc, rule])
    assert draft.parts[0].kind == "value" and draft.parts[0].source == 1
    assert draft.text.startswith("**EtcdNoLeader** fires when `etcd_server_has_leader == 0`, for `1m`, severity `critical` "
                                 "(`configs/rules.yml:L2`) [1].")
    assert [h.chunk.path for h in draft.sources] == ["configs/rules.yml", "runbooks/etcd.md"]


def test_config_lines_are_quoted_verbatim_with_their_line_numbers():
    cfg = _hit("configs/pgbouncer.ini", "[pgbouncer]\n; the pool per user and database\ndefault_pool_size = 40\nlisten_port = 6432",
               SourceType.CONFIG, "pgbouncer.ini", "pgbouncer")
    draft = ExtractiveAnswerer(STATS).answer("what is the pgbouncer default_pool_size?", [cfg])
    assert draft.text.startswith("`configs/pgbouncer.ini:L3` [1]:\n\n```ini\ndefault_pool_size = 40")


def test_a_chunk_cut_mid_sentence_is_not_quoted_from_its_tail():
    cut = _hit("runbooks/etcd.md", "and then the etcd leader is elected again.\n\nThe etcd leader election takes one second.")
    draft = ExtractiveAnswerer(STATS).answer("how long does etcd leader election take?", [cut])
    assert draft.text == "The etcd leader election takes one second [1]."


def test_extractive_answer_quotes_sources_with_markers():
    hits = [
        _hit("runbooks/etcd.md", "## Diagnosis\nCheck leader election with etcdctl endpoint status.\nUnrelated line about cats."),
        _hit("configs/rules.yml", "- alert: EtcdNoLeader", SourceType.CONFIG, "Prometheus Alert Rules", "EtcdNoLeader",
             {"alert": "EtcdNoLeader", "expr": "etcd_server_has_leader == 0", "for": "1m", "severity": "critical"}),
    ]
    draft = ExtractiveAnswerer(STATS).answer("etcd has no leader, what do I check?", hits)
    assert "Check leader election with etcdctl endpoint status [1]." in draft.text
    assert "cats" not in draft.text  # a sentence with none of the question's terms is not quoted
    assert "EtcdNoLeader fires when `etcd_server_has_leader == 0`, holds for 1m, severity critical [2]." in draft.text
    assert draft.mode == "extractive" and [h.chunk.path for h in draft.sources] == ["runbooks/etcd.md", "configs/rules.yml"]


def test_evidence_order_quotes_the_section_that_answers_the_intent():
    """Each file keeps its place; within it Mitigation goes before Symptoms and Related links go last."""
    from srekb.retrieval.search.sections import evidence_order
    from srekb.retrieval.types import Intent

    symptoms = _hit("runbooks/redis.md", "Memory is high.", section="Redis memory > Symptoms")
    other = _hit("runbooks/node.md", "Node is fine.", section="Node > Overview")
    related = _hit("runbooks/redis.md", "See the eviction doc.", section="Redis memory > Related")
    mitigation = _hit("runbooks/redis.md", "Raise maxmemory.", section="Redis memory > Mitigation")
    for h, score in zip((symptoms, other, related, mitigation), (9.0, 8.5, 8.4, 8.0), strict=True):
        h.score = score
    hits = [symptoms, other, related, mitigation]
    assert evidence_order(hits, Intent.TROUBLESHOOTING) == [mitigation, other, symptoms, related]
    assert evidence_order(hits, Intent.MONITORING)[0] is symptoms  # 'Symptoms' answers what an alert means
