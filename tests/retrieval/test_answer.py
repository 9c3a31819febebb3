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


def test_unsupported_marker_is_moved_to_the_supporting_source_or_dropped():
    a = _hit("a.md", "Restart the etcd member with the stale WAL directory.")
    b = _hit("b.md", "Check the PgBouncer pool size in pgbouncer.ini.")
    draft = Draft("Restart the etcd member with the stale WAL directory [2]. The moon is made of cheese [1].", [a, b], "generative")
    fixed = verify_markers(draft)
    assert fixed.text == "Restart the etcd member with the stale WAL directory [1]. The moon is made of cheese."
    assert [h.chunk.path for h in fixed.sources] == ["a.md"]  # renumbered, b.md no longer cited


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
