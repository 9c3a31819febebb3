"""Shared fixtures: the real packaged model, both store backends, the corpora."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAGAS_DO_NOT_TRACK", "true")

from srekb.retrieval.models.embedding import Embedder, HashEmbedder, make_embedder  # noqa: E402
from srekb.retrieval.settings import Settings  # noqa: E402
from srekb.retrieval.store import EdgeStore, ServerStore, Store  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "corpora" / "sre"
SHIPPED_QUESTIONS = ROOT / "corpora" / "eval" / "questions.jsonl"
REAL = ROOT.parent / "shared" / "corpora" / "real"
REAL_EXCLUDE = ["questions*.jsonl"]


class CountingEmbedder:
    """Wraps an embedder, counts the texts it is asked to embed, and memoises vectors so the same
    real-model vectors can be reused across tests without paying for the model twice."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.name = inner.name
        self.dim = inner.dim
        self.max_tokens = getattr(inner, "max_tokens", 256)
        self.calls = 0
        self.texts = 0
        self._memo: dict[str, np.ndarray] = {}

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        self.texts += len(texts)
        missing = [t for t in dict.fromkeys(texts) if t not in self._memo]
        if missing:
            for t, v in zip(missing, self.inner.embed_batch(missing), strict=True):
                self._memo[t] = v
        return np.stack([self._memo[t] for t in texts]) if texts else np.zeros((0, self.dim), np.float32)

    def reset(self) -> None:
        self.calls = self.texts = 0


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(store=tmp_path_factory.mktemp("store"))


@pytest.fixture(scope="session")
def real_embedder(settings: Settings) -> Embedder:
    """The packaged all-MiniLM-L6-v2 (ONNX Runtime backend, exported from the wheel's weights)."""
    return make_embedder(settings)


@pytest.fixture(scope="session")
def shared_memo(real_embedder: Embedder) -> CountingEmbedder:
    return CountingEmbedder(real_embedder)


@pytest.fixture
def embedder(shared_memo: CountingEmbedder) -> CountingEmbedder:
    """The real model behind a counter (fresh counts per test, shared memo)."""
    shared_memo.reset()
    return shared_memo


@pytest.fixture
def fake_llm():
    """The one language-model fake: ``fake_llm(reply)`` (a text, a list served in turn, a function
    of the prompt, or an exception to raise) -> a :class:`FakeLLM` that records its prompts."""
    from srekb.retrieval.models.llm import FakeLLM

    return lambda reply="", name="fake:model": FakeLLM(reply, name)


@pytest.fixture
def fake_embedder() -> HashEmbedder:
    return HashEmbedder(64)


def _make_store(kind: str, tmp_path: Path, dim: int, model: str) -> Store:
    if kind == "edge":
        return EdgeStore(tmp_path / "store", dim, model)
    return ServerStore(":memory:", "sre_kb_test", dim, model)


@pytest.fixture(params=["edge", "server"])
def store_kind(request: pytest.FixtureRequest) -> str:
    """Every store test runs on the embedded engine and on the server code path."""
    return str(request.param)


@pytest.fixture
def make_store(store_kind: str, tmp_path: Path) -> Iterator:
    opened: list[Store] = []

    def factory(dim: int, model: str) -> Store:
        s = _make_store(store_kind, tmp_path, dim, model)
        opened.append(s)
        return s

    yield factory
    for s in opened:
        try:
            s.close()
        except Exception:
            pass


@pytest.fixture(scope="session")
def shipped_store_dir(tmp_path_factory: pytest.TempPathFactory, shared_memo: CountingEmbedder) -> Path:
    """The shipped corpus ingested once (real model, real embedded engine), then closed."""
    from srekb.ingest.pipeline import Ingestor

    directory = tmp_path_factory.mktemp("shipped") / "store"
    store = EdgeStore(directory, shared_memo.dim, shared_memo.name)
    Ingestor(store, shared_memo, Settings()).run([SHIPPED])
    store.close()
    # A second copy for tests that run `srekb` in another process while this one holds the first.
    import shutil

    shutil.copytree(directory, directory.parent / "cli-store")
    return directory


@pytest.fixture(scope="session")
def cli_store_dir(shipped_store_dir: Path) -> Path:
    """The shipped corpus store for subprocesses (never opened by the test process)."""
    return shipped_store_dir.parent / "cli-store"


@pytest.fixture(scope="session")
def shipped_kb(shipped_store_dir: Path, shared_memo: CountingEmbedder, tmp_path_factory: pytest.TempPathFactory):
    from srekb.retrieval.kb import KnowledgeBase

    settings = Settings(store=shipped_store_dir, model_cache=tmp_path_factory.mktemp("cache"))
    kb = KnowledgeBase(settings, embedder=shared_memo.inner)
    yield kb
    kb.close()


@pytest.fixture(scope="session")
def real_kb(tmp_path_factory: pytest.TempPathFactory, shared_memo: CountingEmbedder):
    """The shared real third-party corpus ingested once (real model, real embedded engine)."""
    from srekb.ingest.pipeline import Ingestor
    from srekb.retrieval.kb import KnowledgeBase

    if not REAL.is_dir():
        pytest.fail(f"{REAL} is missing: the tests on real documents need ../shared/corpora/real")
    directory = tmp_path_factory.mktemp("real") / "store"
    store = EdgeStore(directory, shared_memo.dim, shared_memo.name)
    Ingestor(store, shared_memo, Settings()).run([REAL], exclude=REAL_EXCLUDE)
    store.close()
    kb = KnowledgeBase(Settings(store=directory, model_cache=tmp_path_factory.mktemp("cache")), embedder=shared_memo.inner)
    yield kb
    kb.close()
