"""sre-kb's core library: what agents embed.

    from retrieval import KnowledgeBase
    kb = KnowledgeBase.open(".srekb")
    answer = kb.ask("etcd has no leader, what do I check?")
    print(answer.text, answer.citation_block, sep="\\n\\n")
"""

from retrieval.adapters import agent_tools, llama_index_retriever
from retrieval.answer import Answerer, ExtractiveAnswerer, GeminiAnswerer
from retrieval.answerability import Answerability, AnswerabilityModel
from retrieval.citations import Citation, SRECitationFormatter
from retrieval.embedding import Embedder, HashEmbedder, OnnxEmbedder, SentenceTransformerEmbedder, make_embedder
from retrieval.errors import (
    ConfigError,
    IngestError,
    QueryError,
    SkippedFile,
    SreKbError,
    StoreError,
    StoreLockedError,
    StoreNotFoundError,
)
from retrieval.intent import EmbeddingIntentClassifier, GeminiIntentClassifier, IntentClassifier, RuleIntentClassifier
from retrieval.kb import Answer, KnowledgeBase, SearchResult
from retrieval.rerank import CrossEncoderReranker, FeatureReranker, GeminiReranker, Reranker, RerankWeights, SecondStageReranker
from retrieval.settings import Settings, get_settings
from retrieval.store import EdgeStore, SearchFilters, ServerStore, Store, open_store
from retrieval.strategy import DEFAULT_STRATEGIES, Strategy
from retrieval.types import Chunk, Hit, Intent, SourceRecord, SourceType

__all__ = [
    "Answer",
    "Answerability",
    "AnswerabilityModel",
    "Answerer",
    "Chunk",
    "Citation",
    "ConfigError",
    "CrossEncoderReranker",
    "DEFAULT_STRATEGIES",
    "EdgeStore",
    "Embedder",
    "EmbeddingIntentClassifier",
    "ExtractiveAnswerer",
    "FeatureReranker",
    "GeminiAnswerer",
    "GeminiIntentClassifier",
    "GeminiReranker",
    "HashEmbedder",
    "Hit",
    "IngestError",
    "Intent",
    "IntentClassifier",
    "KnowledgeBase",
    "OnnxEmbedder",
    "QueryError",
    "RerankWeights",
    "Reranker",
    "RuleIntentClassifier",
    "SRECitationFormatter",
    "SecondStageReranker",
    "SearchFilters",
    "SearchResult",
    "SentenceTransformerEmbedder",
    "ServerStore",
    "Settings",
    "SkippedFile",
    "SourceRecord",
    "SourceType",
    "SreKbError",
    "Store",
    "StoreError",
    "StoreLockedError",
    "StoreNotFoundError",
    "Strategy",
    "agent_tools",
    "get_settings",
    "llama_index_retriever",
    "make_embedder",
    "open_store",
]
