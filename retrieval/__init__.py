"""sre-kb's core library: what agents embed.

    from srekb.retrieval import KnowledgeBase
    kb = KnowledgeBase.open(".srekb")
    answer = kb.ask("etcd has no leader, what do I check?")
    print(answer.text, answer.citation_block, sep="\\n\\n")
"""

from srekb.retrieval.adapters import agent_tools, llama_index_retriever
from srekb.retrieval.answer.answerability import Answerability, AnswerabilityModel
from srekb.retrieval.answer.citations import Citation, SRECitationFormatter
from srekb.retrieval.answer.extractive import Answerer, ExtractiveAnswerer, GeminiAnswerer
from srekb.retrieval.errors import (
    ConfigError,
    IngestError,
    QueryError,
    SkippedFile,
    SreKbError,
    StoreError,
    StoreLockedError,
    StoreNotFoundError,
)
from srekb.retrieval.kb import Answer, KnowledgeBase, SearchResult
from srekb.retrieval.models.embedding import Embedder, HashEmbedder, OnnxEmbedder, SentenceTransformerEmbedder, make_embedder
from srekb.retrieval.search.intent import EmbeddingIntentClassifier, GeminiIntentClassifier, IntentClassifier, RuleIntentClassifier
from srekb.retrieval.search.rerank import CrossEncoderReranker, FeatureReranker, GeminiReranker, Reranker, RerankWeights, SecondStageReranker
from srekb.retrieval.search.strategy import DEFAULT_STRATEGIES, Strategy
from srekb.retrieval.settings import Settings, get_settings
from srekb.retrieval.store import EdgeStore, SearchFilters, ServerStore, Store, open_store
from srekb.retrieval.types import Chunk, Hit, Intent, SourceRecord, SourceType

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
