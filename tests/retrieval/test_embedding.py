"""The two real backends of the packaged model agree, so either can query a store built by the other."""

import numpy as np
from srekb.retrieval.models.embedding import SentenceTransformerEmbedder, make_embedder, resolve_model_path
from srekb.retrieval.settings import Settings

TEXTS = ["etcd has no leader, what do I check?", "KubePodCrashLooping: Diagnosis\nkubectl describe pod", "x " * 400]


def test_onnx_and_torch_vectors_agree(real_embedder):
    torch_embedder = SentenceTransformerEmbedder(resolve_model_path("all-MiniLM-L6-v2"), name="all-MiniLM-L6-v2")
    a = real_embedder.embed_batch(TEXTS)
    b = torch_embedder.embed_batch(TEXTS)
    assert a.shape == b.shape == (3, 384)
    assert float(np.min(np.sum(a * b, axis=1))) > 0.9999
    assert real_embedder.name == torch_embedder.name == "all-MiniLM-L6-v2"


def test_the_exported_encoder_runs_fused_attention(real_embedder):
    """The ONNX export is optimised: one fused Attention kernel per layer of the 6-layer model."""
    import onnx

    graph = onnx.load(str(real_embedder.onnx_path), load_external_data=False).graph
    ops = [n.op_type for n in graph.node]
    assert ops.count("Attention") == 6
    assert len(ops) < 100  # the plain export has 338 nodes, most of them shape arithmetic


def test_unknown_model_is_a_clear_error(tmp_path):
    import pytest
    from srekb.retrieval.errors import ConfigError

    with pytest.raises(ConfigError, match="SRE_KB_EMBEDDING_MODEL"):
        make_embedder(Settings(embedding_model=str(tmp_path / "nope"), model_cache=tmp_path))


def test_attention_fusion_leaves_a_graph_it_cannot_fuse_as_it_is(tmp_path, caplog):
    """Another architecture, or a graph the optimiser fails on, keeps the plain export (correct, only slower)."""
    from types import SimpleNamespace

    from srekb.retrieval.models.embedding import _fuse_attention

    path = tmp_path / "model.onnx"
    path.write_bytes(b"not an onnx graph")
    _fuse_attention(path, SimpleNamespace(model_type="gpt2", num_attention_heads=12, hidden_size=768))
    assert path.read_bytes() == b"not an onnx graph"
    _fuse_attention(path, SimpleNamespace(model_type="bert", num_attention_heads=12, hidden_size=384))
    assert path.read_bytes() == b"not an onnx graph"
    assert "keeping the plain export" in caplog.text
