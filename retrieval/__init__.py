"""sre-kb's core library: what agents embed.

    from srekb.retrieval import KnowledgeBase
    kb = KnowledgeBase.open(".srekb")
    answer = kb.ask("etcd has no leader, what do I check?")
    print(answer.text, answer.citation_block, sep="\\n\\n")
"""

from srekb.retrieval.adapters import agent_tools, llama_index_retriever
from srekb.retrieval.answer.answerability import Answerability, AnswerabilityModel
from srekb.retrieval.answer.citations import Citation, SRECitationFormatter
from srekb.retrieval.answer.draft import NOT_ENOUGH, Answerer, Draft
from srekb.retrieval.answer.extractive import ExtractiveAnswerer
from srekb.retrieval.answer.generative import LLMAnswerer
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
from srekb.retrieval.models.llm import LLM, FakeLLM, GeminiLLM
from srekb.retrieval.search.intent import EmbeddingIntentClassifier, IntentClassifier, LLMIntentClassifier, RuleIntentClassifier
from srekb.retrieval.search.judge import CrossEncoderReranker, LLMReranker, SecondStageReranker
from srekb.retrieval.search.rerank import FeatureReranker, Reranker, RerankWeights
from srekb.retrieval.search.strategy import DEFAULT_STRATEGIES, Strategy
from srekb.retrieval.settings import Settings, get_settings
from srekb.retrieval.store import EdgeStore, SearchFilters, ServerStore, Store, open_store
from srekb.retrieval.types import Chunk, Features, Hit, Intent, Scores, SourceRecord, SourceType

__all__ = [
    "DEFAULT_STRATEGIES",
    "LLM",
    "NOT_ENOUGH",
    "Answer",
    "Answerability",
    "AnswerabilityModel",
    "Answerer",
    "Chunk",
    "Citation",
    "ConfigError",
    "CrossEncoderReranker",
    "Draft",
    "EdgeStore",
    "Embedder",
    "EmbeddingIntentClassifier",
    "ExtractiveAnswerer",
    "FakeLLM",
    "FeatureReranker",
    "Features",
    "GeminiLLM",
    "HashEmbedder",
    "Hit",
    "IngestError",
    "Intent",
    "IntentClassifier",
    "KnowledgeBase",
    "LLMAnswerer",
    "LLMIntentClassifier",
    "LLMReranker",
    "OnnxEmbedder",
    "QueryError",
    "RerankWeights",
    "Reranker",
    "RuleIntentClassifier",
    "SRECitationFormatter",
    "Scores",
    "SearchFilters",
    "SearchResult",
    "SecondStageReranker",
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
