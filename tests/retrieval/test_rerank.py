"""FeatureReranker logic on small hand-made hits (its measured effect is in the eval report)."""

import pytest
from srekb.retrieval.models.llm import FakeLLM
from srekb.retrieval.search.judge import LLMReranker, make_reranker
from srekb.retrieval.search.rerank import FeatureReranker, RerankWeights
from srekb.retrieval.search.strategy import DEFAULT_STRATEGIES
from srekb.retrieval.types import Chunk, Hit, Intent, Scores, SourceType


def _hit(path, st, title, section, text, meta=None, fused=0.5, dense=0.5, bm25=0.5):
    h = Hit(Chunk(path, st, title, section, text, 1, 5, meta=meta or {}), fused)
    h.scores = Scores(fused=fused, dense=dense, bm25=bm25)
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
    assert ranked[0] is rule and ranked[1] is runbook and runbook.scores.companion


def test_unlinked_chunks_are_left_alone():
    hits = [_hit(f"docs/d{i}.md", SourceType.DOC, "Doc", "S", "text about etcd", fused=1.0 - i / 10) for i in range(5)]
    before = [h.chunk.path for h in FeatureReranker(RerankWeights(companion=0.0)).rerank("etcd", list(hits), DEFAULT_STRATEGIES[Intent.GENERAL])]
    after = [h.chunk.path for h in FeatureReranker().rerank("etcd", list(hits), DEFAULT_STRATEGIES[Intent.GENERAL])]
    assert before == after


def test_a_runbook_leads_its_rule_unless_the_definition_is_asked():
    def pair():
        rule = _hit("rules.yaml", SourceType.CONFIG, "Prometheus Alert Rules", "KubeAPIErrorBudgetBurn", "alert: KubeAPIErrorBudgetBurn",
                    {"alert": "KubeAPIErrorBudgetBurn"}, fused=1.0, dense=0.7, bm25=1.0)
        other = _hit("docs/api.md", SourceType.DOC, "API server", "Logs", "kube-apiserver logs", fused=0.8, dense=0.6, bm25=0.5)
        runbook = _hit("runbooks/KubeAPIErrorBudgetBurn.md", SourceType.RUNBOOK, "Kube API Error Budget Burn", "Mitigation",
                       "Check the apiserver.", fused=0.6, dense=0.5, bm25=0.5)
        return rule, other, runbook

    strategy = DEFAULT_STRATEGIES[Intent.MONITORING]
    rule, other, runbook = pair()
    ranked = FeatureReranker().rerank("KubeAPIErrorBudgetBurn paged me, where do I start?", [rule, other, runbook], strategy)
    assert ranked[:2] == [runbook, rule]
    rule, other, runbook = pair()
    ranked = FeatureReranker().rerank("What expression does KubeAPIErrorBudgetBurn use?", [rule, other, runbook], strategy)
    assert ranked[:2] == [rule, runbook]


def test_label_matchers_pick_the_rule_among_same_named_ones():
    """Two rules share an alert name; the page's labels (long=6h short=30m) name the second."""
    rules = [
        _hit("rules.yaml", SourceType.CONFIG, "Rules", "KubeAPIErrorBudgetBurn", f"alert: KubeAPIErrorBudgetBurn\nlabels:\n  long: {long}\n  short: {short}",
             {"alert": "KubeAPIErrorBudgetBurn"}, fused=fused, dense=0.5, bm25=0.5)
        for long, short, fused in (("1h", "5m", 1.0), ("6h", "30m", 0.9))
    ]
    ranked = FeatureReranker().rerank('Paged with long=6h and short="30m": how urgent?', rules, DEFAULT_STRATEGIES[Intent.MONITORING])
    assert "long: 6h" in ranked[0].chunk.text and ranked[0].scores.features.ident > ranked[1].scores.features.ident


def _ranked_docs(n=12):
    return [_hit(f"docs/d{i}.md", SourceType.DOC, "Doc", f"S{i}", f"etcd text {i}", fused=1.0 - i / 20, dense=0.9 - i / 40) for i in range(n)]


def test_an_llm_judge_reorders_the_feature_head_and_keeps_the_tail(fake_llm):
    strategy = DEFAULT_STRATEGIES[Intent.GENERAL]
    features = [h.chunk.path for h in FeatureReranker().rerank("etcd", _ranked_docs(), strategy)]
    llm = fake_llm('{"order": [3, 1, 99, 3]}')  # out of range and repeated numbers are ignored
    ranked = LLMReranker(llm, depth=4).rerank("etcd", _ranked_docs(), strategy)
    paths = [h.chunk.path for h in ranked]
    assert paths[:4] == [features[2], features[0], features[1], features[3]]  # unnamed ones keep their order after
    assert paths[4:] == features[4:]
    assert [h.score for h in ranked] == sorted((h.score for h in ranked), reverse=True)
    assert "Question: etcd" in llm.prompts[0] and "[4] Doc: S3" in llm.prompts[0] and "[5]" not in llm.prompts[0]
    assert [h.scores.judge for h in ranked[:2]] == [1.0, 2.0]


def test_a_failing_judge_keeps_the_feature_order(caplog, fake_llm):
    strategy = DEFAULT_STRATEGIES[Intent.GENERAL]
    features = [h.chunk.path for h in FeatureReranker().rerank("etcd", _ranked_docs(), strategy)]
    for reply in ("not json", '{"order": "first"}', "", TimeoutError("the model timed out")):
        ranked = LLMReranker(fake_llm(reply)).rerank("etcd", _ranked_docs(), strategy)
        assert [h.chunk.path for h in ranked] == features
    assert "llm reranking failed" in caplog.text and "timed out" in caplog.text


def test_settings_pick_the_second_stage(tmp_path):
    from srekb.retrieval.errors import ConfigError
    from srekb.retrieval.settings import Settings

    assert type(make_reranker(Settings())) is FeatureReranker
    # A key alone never turns on model reranking (a model call per search); SRE_KB_RERANKER=llm does.
    assert type(make_reranker(Settings(google_api_key="k"), llm=FakeLLM())) is FeatureReranker
    assert isinstance(make_reranker(Settings(google_api_key="k", reranker="llm"), llm=FakeLLM()), LLMReranker)
    assert type(make_reranker(Settings(google_api_key="k", reranker="features"), llm=FakeLLM())) is FeatureReranker
    with pytest.raises(ConfigError, match="SRE_KB_RERANKER_MODEL"):
        make_reranker(Settings(reranker="cross-encoder"))
    with pytest.raises(ConfigError, match="GOOGLE_API_KEY"):
        make_reranker(Settings(reranker="gemini"))
    with pytest.raises(ConfigError, match="not a local folder"):
        make_reranker(Settings(reranker_model=str(tmp_path / "missing")))


def test_settings_pick_the_intent_classifier(tmp_path):
    from srekb.retrieval.errors import ConfigError
    from srekb.retrieval.models.embedding import HashEmbedder
    from srekb.retrieval.search.intent import EmbeddingIntentClassifier, LLMIntentClassifier, make_classifier
    from srekb.retrieval.settings import Settings

    assert isinstance(make_classifier(Settings(model_cache=tmp_path), HashEmbedder()), EmbeddingIntentClassifier)
    llm_classifier = make_classifier(Settings(model_cache=tmp_path, intent_classifier="gemini"), HashEmbedder(), llm=FakeLLM("monitoring."))
    assert isinstance(llm_classifier, LLMIntentClassifier) and llm_classifier.classify("anything") is Intent.MONITORING
    with pytest.raises(ConfigError, match="GOOGLE_API_KEY"):
        make_classifier(Settings(model_cache=tmp_path, intent_classifier="gemini"), HashEmbedder())


def test_intent_cues_match_in_any_case():
    import re

    from srekb.retrieval.search.intent import CUES, RuleIntentClassifier
    from srekb.retrieval.types import Intent

    # The cues are matched against the lower-cased question, so a capital letter in one
    # (outside an escape such as \b or \d) could never match.
    for cues in CUES.values():
        for cue in cues:
            body = re.sub(r"\\[A-Za-z]", "", cue.pattern.pattern)
            assert body == body.lower(), cue.pattern.pattern
            assert not cue.pattern.flags & re.IGNORECASE
    rules = RuleIntentClassifier()
    assert rules.classify("What caused INC-2024-031 and what were the action items?") is Intent.GENERAL
    assert rules.classify("WHICH ALERT fires on the PromQL THRESHOLD for disk usage?") is Intent.MONITORING
    assert rules.scores("what caused inc-2024-031?") == rules.scores("What Caused INC-2024-031?")

def test_companions_come_from_the_nearest_folder_tree():
    from srekb.retrieval.search.linking import nearest_paths

    rules = ("configs/rules.yml", "copies/a/configs/rules.yml", "copies/b/configs/rules.yml")
    assert nearest_paths("copies/a/runbooks/x.md", rules) == ["copies/a/configs/rules.yml"]
    assert nearest_paths("copies/b/runbooks/x.md", rules[:2]) == ["copies/a/configs/rules.yml"]  # same top folder
    assert nearest_paths("runbooks/x.md", rules) == list(rules)  # none closer than another: all
