"""Answer assembly logic on small hand-made hits (the real-model path is in test_kb.py)."""

from retrieval.answer import Draft, ExtractiveAnswerer, assess, verify_markers
from retrieval.stats import CorpusStats
from retrieval.text import term_set
from retrieval.types import Chunk, Hit, SourceType


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


def test_assess_flags_missing_identifier_product_date_and_runbook():
    hits = [_hit("runbooks/etcd.md", "etcd leader election. Alertmanager routes to PagerDuty.", meta={"date": "2019-05-30"},
                 st=SourceType.INCIDENT)]
    assert assess("etcd has no leader", hits, STATS).reasons == []
    assert "GrafanaRequestsFailing" in assess("What does GrafanaRequestsFailing mean?", hits, STATS).reasons[0]
    assert "Slack" in assess("How do I route alerts to Slack?", hits, STATS).reasons[0]
    assert assess("How do I bake sourdough bread?", hits, STATS).reasons == ["the knowledge base does not cover this topic"]
    assert assess("What went wrong in September 2018?", hits, STATS).reasons == ["no source is dated September 2018"]
    rb = [_hit("configs/rules.yml", "alert: KubeFooDown", st=SourceType.CONFIG)]
    assert assess("What does the runbook for KubeFooDown say?", rb, STATS).reasons == ["no runbook for KubeFooDown in the sources"]
