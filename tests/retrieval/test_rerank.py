"""FeatureReranker logic on small hand-made hits (its measured effect is in the eval report)."""

from retrieval.rerank import FeatureReranker, RerankWeights
from retrieval.strategy import DEFAULT_STRATEGIES
from retrieval.types import Chunk, Hit, Intent, SourceType


def _hit(path, st, title, section, text, meta=None, fused=0.5, dense=0.5, bm25=0.5):
    h = Hit(Chunk(path, st, title, section, text, 1, 5, meta=meta or {}), fused)
    h.scores = {"fused": fused, "dense": dense, "bm25": bm25}
    return h


def test_a_named_rule_pulls_its_runbook_up_beside_it():
    """The rule links its runbook by runbook_url even when the runbook's heading names another alert."""
    rule = _hit("manifests/prometheus-rules.yaml", SourceType.CONFIG, "Prometheus Alert Rules", "PrometheusRemoteWriteBehind",
                "alert: PrometheusRemoteWriteBehind\nexpr: lag > 120", {"alert": "PrometheusRemoteWriteBehind",
                "runbook_url": "https://runbooks.example/runbooks/prometheus/prometheusremotewritebehind"}, fused=1.0, dense=0.7, bm25=1.0)
    others = [_hit(f"manifests/other-{i}.yaml", SourceType.CONFIG, "Prometheus Alert Rules", f"KubeThing{i}", "alert: KubeThing",
                   {"alert": f"KubeThing{i}"}, fused=0.9, dense=0.65, bm25=0.4) for i in range(4)]
    runbook = _hit("runbooks/prometheus/PrometheusRemoteWriteBehind.md", SourceType.RUNBOOK, "Prometheus Remote Write Behind",
                   "Meaning", "Prometheus remote write is behind.", {"alert": "PrometheusRemoteStorageFailures"}, fused=0.5, dense=0.6, bm25=0.5)
    question = "What threshold does the PrometheusRemoteWriteBehind rule use?"
    strategy = DEFAULT_STRATEGIES[Intent.MONITORING]
    without = FeatureReranker(RerankWeights(companion=0.0)).rerank(question, [rule, *others, runbook], strategy)
    assert without[0] is rule and without.index(runbook) > 1
    ranked = FeatureReranker(RerankWeights(companion=0.5)).rerank(question, [rule, *others, runbook], strategy)
    assert ranked[0] is rule and ranked[1] is runbook and runbook.scores["f_companion"] == 1.0


def test_unlinked_chunks_are_left_alone():
    hits = [_hit(f"docs/d{i}.md", SourceType.DOC, "Doc", "S", "text about etcd", fused=1.0 - i / 10) for i in range(5)]
    before = [h.chunk.path for h in FeatureReranker(RerankWeights(companion=0.0)).rerank("etcd", list(hits), DEFAULT_STRATEGIES[Intent.GENERAL])]
    after = [h.chunk.path for h in FeatureReranker().rerank("etcd", list(hits), DEFAULT_STRATEGIES[Intent.GENERAL])]
    assert before == after
