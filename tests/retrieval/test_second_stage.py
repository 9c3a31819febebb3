"""A cross-encoder second stage through the real sentence-transformers loader and the real store.

No cross-encoder weights can be installed here, so the test makes a tiny one (random, seeded)
with the packaged model's tokenizer: what is checked is the wiring (settings -> KnowledgeBase
-> the judge's order over the feature reranker's head), not the judge's quality."""

import copy

from srekb.retrieval.kb import KnowledgeBase
from srekb.retrieval.models.embedding import resolve_model_path
from srekb.retrieval.search.judge import CrossEncoderReranker
from srekb.retrieval.search.rerank import FeatureReranker
from srekb.retrieval.types import Intent


def _tiny_cross_encoder(directory):
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(str(resolve_model_path("all-MiniLM-L6-v2")))
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, num_labels=1)
    BertForSequenceClassification(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def test_cross_encoder_orders_the_head_of_the_feature_ranking(shipped_kb, tmp_path):
    model = _tiny_cross_encoder(tmp_path / "ce")
    settings = shipped_kb.settings.model_copy(update={"reranker_model": str(model), "rerank_depth": 5})
    kb = KnowledgeBase(settings, store=shipped_kb.store, embedder=shipped_kb.embedder)
    assert isinstance(kb.reranker, CrossEncoderReranker)
    question = "orders-db replica lag is growing, what should I check?"
    candidates = shipped_kb.search(question, 50, rerank=False).hits  # the engine's fused order
    strategy = kb.strategies[Intent.TROUBLESHOOTING]
    features = FeatureReranker().rerank(question, copy.deepcopy(candidates), strategy)
    judged = kb.reranker.rerank(question, copy.deepcopy(candidates), strategy)
    head = judged[:5]
    assert all(h.scores.judge is not None for h in head) and not any(h.scores.judge is not None for h in judged[5:])
    assert [h.scores.judge for h in head] == sorted((h.scores.judge for h in head), reverse=True)
    assert {h.id for h in head} == {h.id for h in features[:5]}  # the judge reorders the feature head, nothing else
    assert [h.id for h in judged[5:]] == [h.id for h in features[5:]]
    assert any(h.scores.judge is not None for h in kb.search(question).hits)  # and search uses it
    kb.close()
