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


def test_assess_checks_hyphenated_names_but_not_english_compounds():
    """prometheus-k8s missing from the evidence is a gap; key-value or write-ahead missing is wording."""
    stats = CorpusStats({t: 3 for t in term_set("retention prometheus etcd key value store write ahead log payments db fail")}, 100,
                        names={"payments-db-wal-disk-full"})
    hits = [_hit("docs/prometheus.md", "The Prometheus instance keeps metrics for a while. etcd is a key value store.")]
    assert assess("What is the retention of prometheus-k8s?", hits, stats).reasons == ["not mentioned in the sources: prometheus-k8s"]
    assert assess("Is etcd a key-value store with a write-ahead log?", hits, stats).reasons == []
    assert "payments-db" in assess("Why did payments-db fail?", hits, stats).reasons[0]  # a name the corpus gives a file


def test_assess_wants_named_things_together_in_one_source():
    """The maxReplicas of an HPA that does not exist: both names are known, never in one source."""
    stats = CorpusStats({t: 3 for t in term_set("maxReplicas checkout api search svc hpa HorizontalPodAutoscaler payments db disk full incident caused")}, 100,
                        names={"payments-db"})
    hits = [
        _hit("configs/k8s/checkout-api.yaml", "kind: HorizontalPodAutoscaler\nspec:\n  maxReplicas: 12", st=SourceType.CONFIG),
        _hit("runbooks/search-latency.md", "search-svc latency rises when the cluster is red."),
    ]
    assert assess("What is the maxReplicas of the checkout-api HPA?", hits, stats).reasons == []
    assert assess("What is the maxReplicas of the search-svc HorizontalPodAutoscaler?", hits, stats).reasons == [
        "no source covers search-svc and maxReplicas together"
    ]
    dated = [_hit("incidents/a.md", "payments-db disk-full incident.", st=SourceType.INCIDENT, meta={"date": "2024-06-12"})]
    assert assess("What caused the payments-db disk-full incident in 2024?", dated, stats).reasons == []
    assert "together" in assess("What caused the payments-db disk-full incident in 2025?", dated, stats).reasons[0]


def test_assess_wants_a_stated_frequency_for_how_often():
    """'Take periodic snapshots' is on topic but says nothing of how often: abstain. A stated
    frequency in any spelling answers it."""
    stats = CorpusStats({t: 3 for t in term_set("often take etcd snapshot backups postgres backup")}, 100)
    vague = [_hit("docs/etcd.md", "By taking periodic snapshots of an etcd member, a cluster can be recovered.")]
    assert assess("How often should we take etcd snapshot backups?", vague, stats).reasons == ["no source states how often"]
    assert assess("What are etcd snapshot backups for?", vague, stats).reasons == []
    rate = [_hit("docs/etcd.md", "Periodic etcd snapshot backups; etcd handles 1500 writes per second.")]
    assert assess("How often should we take etcd snapshot backups?", rate, stats).reasons == ["no source states how often"]
    for stated in ("Snapshots are taken every 6 hours.", "A nightly snapshot is kept.", "Back up twice a day.",
                   "backup:\n  interval: 30m", 'schedule: "0 */6 * * *"'):
        hits = [_hit("docs/etcd.md", f"etcd snapshot backups. {stated}")]
        assert assess("How often are etcd snapshot backups taken?", hits, stats).reasons == [], stated


def test_evidence_order_quotes_the_section_that_answers_the_intent():
    """Each file keeps its place; within it Mitigation goes before Symptoms and Related links go last."""
    from retrieval.kb import evidence_order
    from retrieval.types import Intent

    symptoms = _hit("runbooks/redis.md", "Memory is high.", section="Redis memory > Symptoms")
    other = _hit("runbooks/node.md", "Node is fine.", section="Node > Overview")
    related = _hit("runbooks/redis.md", "See the eviction doc.", section="Redis memory > Related")
    mitigation = _hit("runbooks/redis.md", "Raise maxmemory.", section="Redis memory > Mitigation")
    for h, score in zip((symptoms, other, related, mitigation), (9.0, 8.5, 8.4, 8.0), strict=True):
        h.score = score
    hits = [symptoms, other, related, mitigation]
    assert evidence_order(hits, Intent.TROUBLESHOOTING) == [mitigation, other, symptoms, related]
    assert evidence_order(hits, Intent.MONITORING)[0] is symptoms  # 'Symptoms' answers what an alert means


def test_label_matchers_are_not_answerability_anchors():
    """'Ready=False' ranks the sources that quote it; a top source that does not quote it is no gap."""
    stats = CorpusStats({t: 3 for t in term_set("cert manager certificate ready false dns challenge fix last time")}, 100)
    hits = [_hit("incidents/tls.md", "cert-manager could not renew the certificate: the DNS-01 challenge failed.", st=SourceType.INCIDENT)]
    assert assess("cert-manager shows a Certificate with Ready=False. What fixed this last time?", hits, stats).reasons == []
