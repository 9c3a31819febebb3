"""One settings class for the whole service, read from ``SRE_KB_*`` environment variables."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    """Validated once at start-up; obtain it with :func:`get_settings` and pass it down."""

    model_config = SettingsConfigDict(env_prefix="SRE_KB_", extra="ignore")

    # store
    store: Path = Field(default=Path(".srekb"), description="embedded store directory")
    qdrant_url: str | None = Field(default=None, description="Qdrant server URL; set to use a server instead of the embedded store")
    qdrant_api_key: str | None = None
    collection: str = "sre_kb"
    # a Qdrant cluster (read when a collection is created, except the consistency and tenant)
    qdrant_shards: int | None = Field(
        default=None, ge=1, le=1000, description="shards of a new collection; on a cluster, a multiple of the node count (server default: 1)"
    )
    qdrant_replicas: int | None = Field(
        default=None, ge=1, le=100, description="copies of each shard on distinct nodes: survives replicas-1 node losses (server default: 1)"
    )
    qdrant_write_consistency: int | None = Field(
        default=None, ge=1, le=100, description="replicas that must acknowledge a write before it returns (at most the replicas)"
    )
    qdrant_read_consistency: Literal["all", "majority", "quorum"] | None = Field(
        default=None, description="replicas a read asks: unset asks one (fastest), 'majority' never misses an acknowledged write"
    )
    qdrant_quantization: Literal["none", "scalar"] = Field(
        default="none",
        description="scalar: int8 copies of the dense vectors kept in RAM (4x smaller), the originals rescore the top hits",
    )
    qdrant_on_disk: bool = Field(default=False, description="keep original vectors and payloads on disk (memory-mapped), not in RAM")
    tenant: str | None = Field(
        default=None, min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        description="a team's partition of a shared Qdrant collection: its writes are tagged, its reads filtered (server only)",
    )

    # models
    embedding_model: str = Field(default="all-MiniLM-L6-v2", description="packaged model name, or any sentence-transformers path/name")
    embedding_backend: Literal["auto", "onnx", "torch"] = "auto"
    embedding_batch_size: int = Field(default=32, ge=1, le=1024)
    onnx_threads: int = Field(
        default=0, ge=0, le=64,
        description="encoder threads per call (0: all cores, fastest single query; 1: best throughput for a busy server, "
        "the default of `srekb serve`)",
    )
    model_cache: Path = Field(default=Path.home() / ".cache" / "sre-kb", description="where the exported ONNX model is kept")

    # ingestion
    max_file_bytes: int = Field(default=2_000_000, ge=1, description="files larger than this are skipped")
    max_chunk_tokens: int = Field(default=256, ge=32, le=512, description="word pieces per chunk: what the encoder reads")
    allowed_roots: list[Path] = Field(default_factory=list, description="API ingest may only read under these")

    # retrieval (the seed's EnhancedSREMemorySystem.retrieval_config defaults)
    similarity_top_k: int = Field(default=10, ge=1, le=100)
    reranking_enabled: bool = True
    hybrid_search: bool = True
    max_question_chars: int = Field(default=2000, ge=10)

    model_file: Path | None = Field(
        default=None, description="fitted model (reranker weights, intent, answerability); default: the one shipped in the package"
    )
    rerank_weights: Path | None = Field(default=None, description="tuned reranker weights (JSON written by srekb eval --tune)")
    reranker: Literal["auto", "features", "cross-encoder", "llm", "gemini"] = Field(
        default="auto",
        description="second stage over the feature reranker's top rerank_depth: auto = cross-encoder when reranker_model "
        "is set, else none (features only); llm = the rerank task's model (SRE_KB_LLM_RERANK; 'gemini' is an old name for it). "
        "A key alone never turns on model reranking: it adds a model call to every search",
    )
    reranker_model: str | None = Field(default=None, description="local folder of a sentence-transformers cross-encoder")
    rerank_depth: int = Field(default=10, ge=2, le=100, description="how many of the feature reranker's top hits the second stage reorders")
    intent_classifier: Literal["embedding", "llm", "gemini"] = Field(
        default="embedding",
        description="embedding: offline, < 2 ms; llm: asks the intent task's model (SRE_KB_LLM_INTENT; 'gemini' is an old name), "
        "the embedding one on failure",
    )

    # HTTP service
    api_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="bearer keys; when set every route but health needs one (a JSON list, or comma-separated)"
    )
    allow_insecure: bool = Field(default=False, description="serve on a non-loopback address without API keys")

    @field_validator("api_keys", mode="before")
    @classmethod
    def _keys(cls, value: Any) -> Any:
        """A JSON list or comma-separated ('k1,k2'); a bare 'plainkey' is one key."""
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                try:
                    return json.loads(text)
                except ValueError as exc:
                    raise ValueError(f"not a JSON list of keys ({exc.args[0]}): use '[\"k1\", \"k2\"]' or 'k1,k2'") from exc
            return [k.strip() for k in text.split(",")] if text else []
        return value

    @field_validator("api_keys")
    @classmethod
    def _no_empty_key(cls, keys: list[str]) -> list[str]:
        # An empty key would match an empty bearer token; spaces around one never match what a client sends.
        for k in keys:
            if not k.strip() or k != k.strip():
                raise ValueError("an API key is empty or has surrounding spaces: list non-empty keys, e.g. '[\"k1\", \"k2\"]' or 'k1,k2'")
        return keys
    session_ttl_s: float = Field(default=3600.0, gt=0, description="follow-up sessions expire after this idle time")
    max_sessions: int = Field(default=10_000, ge=1, description="live follow-up sessions kept; beyond, the least recently used go")
    max_upload_bytes: int = Field(default=20_000_000, ge=1, description="total size of one multipart upload")
    keep_alive_s: float = Field(
        default=75.0, gt=0, le=3600,
        description="idle seconds a client connection stays open: longer than any pool or load balancer in front keeps one idle "
        "(AWS ALB: 60 s), so the server never closes a connection just as a client reuses it (that race resets requests)",
    )
    max_inflight: int = Field(
        default=64, ge=1, le=100_000,
        description="questions (/v1/ask, /v1/search) in progress at once; beyond, an immediate 503 with Retry-After, not a queue",
    )
    backlog: int = Field(default=2048, ge=1, le=65535, description="connections the kernel queues before the server accepts them")

    # Language models (optional: without one, answers are extractive and every task runs offline)
    google_api_key: str | None = Field(
        default=None, validation_alias=AliasChoices("SRE_KB_GOOGLE_API_KEY", "GOOGLE_API_KEY", "GEMINI_API_KEY"),
        description="Gemini key: enables the gemini backend",
    )
    gemini_model: str = "gemini-2.5-flash"
    gemini_base_url: str | None = Field(default=None, description="another Gemini API endpoint (a proxy, a test stub)")
    openai_base_url: str | None = Field(
        default=None, validation_alias=AliasChoices("SRE_KB_OPENAI_BASE_URL", "OPENAI_BASE_URL"),
        description="an OpenAI-compatible endpoint: llama.cpp server (http://localhost:8080/v1), vLLM (:8000/v1), "
        "Ollama (http://localhost:11434/v1), a LiteLLM proxy; enables the openai backend",
    )
    openai_model: str | None = Field(default=None, description="model name on that endpoint (or on api.openai.com), e.g. llama3.1:8b")
    openai_api_key: str | None = Field(
        default=None, validation_alias=AliasChoices("SRE_KB_OPENAI_API_KEY", "OPENAI_API_KEY"), description="not needed by most local servers"
    )
    llm_order: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="fallback order of backends for every task, e.g. 'openai,gemini' or 'openai:llama3.1:8b,gemini:gemini-2.5-flash' "
        "(default: every configured backend, gemini first)",
    )
    llm_answer: Annotated[list[str], NoDecode] = Field(default_factory=list, description="the answer's backends (default: llm_order); 'none': extractive")
    llm_rerank: Annotated[list[str], NoDecode] = Field(default_factory=list, description="backends of SRE_KB_RERANKER=llm (default: llm_order)")
    llm_intent: Annotated[list[str], NoDecode] = Field(default_factory=list, description="backends of SRE_KB_INTENT_CLASSIFIER=llm (default: llm_order)")
    llm_judge: Annotated[list[str], NoDecode] = Field(default_factory=list, description="eval's ragas judge (default: llm_order)")
    llm_sessions: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="follow-up rewrites (default: llm_order); 'none': the rule-based rewrite"
    )
    llm_timeout_s: float = Field(
        default=20.0, gt=0, le=600,
        description="seconds one model call may take (connect + reply; a stream: until its first token) before the next backend is tried",
    )
    llm_breaker_failures: int = Field(default=2, ge=1, le=1000, description="consecutive failures after which a backend is skipped")
    llm_breaker_cooldown_s: float = Field(default=30.0, gt=0, description="how long a failing backend is skipped before one trial call")

    @field_validator("llm_order", "llm_answer", "llm_rerank", "llm_intent", "llm_judge", "llm_sessions", mode="before")
    @classmethod
    def _backend_list(cls, value: Any) -> Any:
        """'gemini,openai:llama3.1:8b' (or a JSON list)."""
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [b.strip() for b in text.split(",") if b.strip()]
        return value

@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment on first use."""
    return Settings()
