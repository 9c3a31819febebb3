"""Adapters for agent frameworks.

* :func:`agent_tools` returns plain typed functions with docstrings that Google ADK (and other
  tool-calling frameworks: LangChain ``@tool``, OpenAI function calling) can register as tools;
  they return JSON-serialisable dicts.
* :func:`llama_index_retriever` returns a LlamaIndex ``BaseRetriever`` so sre-kb plugs into
  LlamaIndex query engines (imported lazily: LlamaIndex is only loaded when asked for).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from srekb.retrieval.errors import SreKbError
from srekb.retrieval.kb import KnowledgeBase

if TYPE_CHECKING:
    from llama_index.core.retrievers import BaseRetriever


def agent_tools(kb: KnowledgeBase) -> list[Callable[..., dict[str, Any]]]:
    """Two tools bound to ``kb``: ``ask_sre_knowledge_base`` and ``search_sre_knowledge_base``."""

    def ask_sre_knowledge_base(question: str, source_type: str | None = None, service: str | None = None) -> dict[str, Any]:
        """Answer an on-call / SRE question from the team's runbooks, incident history, alert rules,
        configs and docs, with exact citations.

        Args:
            question: the question in plain words, e.g. "etcd has no leader, what do I check?".
            source_type: optional restriction to one of "runbook", "incident", "config", "doc".
            service: optional restriction to one service name, e.g. "checkout-api".

        Returns:
            A dict with "answer" (text with [n] markers), "mode" (generative, extractive or
            abstained), "abstained" (true when the knowledge base does not contain the answer),
            "citations" (list of {n, path, lines, title, section, incident_id, date, ...}) and
            "citation_block" (the formatted "Citations:" list). On invalid input: {"error": ...}.
        """
        filters = _filters(source_type, service)
        try:
            return kb.ask(question, filters=filters).to_dict()
        except SreKbError as exc:
            return {"error": str(exc)}

    def search_sre_knowledge_base(question: str, k: int = 5, source_type: str | None = None, service: str | None = None) -> dict[str, Any]:
        """Find the runbook sections, incidents, alert rules and config objects most relevant to a
        question, without writing an answer.

        Args:
            question: what to look for, e.g. "which alert fires on checkout 5xx rate".
            k: how many results (1-100).
            source_type: optional restriction to one of "runbook", "incident", "config", "doc".
            service: optional restriction to one service name.

        Returns:
            A dict with "intent" and "hits": a list of {path, source_type, lines, score, title,
            section, incident_id, date, text}, best first. On invalid input: {"error": ...}.
        """
        try:
            result = kb.search(question, k, _filters(source_type, service))
        except SreKbError as exc:
            return {"error": str(exc)}
        out = result.to_dict()
        del out["timings_ms"]
        return out

    return [ask_sre_knowledge_base, search_sre_knowledge_base]


def _filters(source_type: str | None, service: str | None) -> dict[str, Any] | None:
    filters: dict[str, Any] = {}
    if source_type:
        filters["source_types"] = [source_type]
    if service:
        filters["services"] = [service]
    return filters or None


def llama_index_retriever(kb: KnowledgeBase, k: int = 5) -> BaseRetriever:
    """A LlamaIndex retriever over ``kb`` (nodes carry path, lines and citation label as metadata)."""
    from llama_index.core.retrievers import BaseRetriever
    from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

    class SreKbRetriever(BaseRetriever):
        def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
            hits = kb.search(query_bundle.query_str, k).hits
            out = []
            for h in hits:
                c = h.chunk
                node = TextNode(
                    id_=h.id or f"{c.path}#{c.key}",
                    text=c.text,
                    metadata={
                        "path": c.path, "source_type": c.source_type.value, "title": c.title, "section": c.section,
                        "line_start": c.line_start, "line_end": c.line_end, "citation": kb.formatter.label(c),
                        **{k_: v for k_, v in c.meta.items() if isinstance(v, str | int | float)},
                    },
                )
                out.append(NodeWithScore(node=node, score=h.score))
            return out

    return SreKbRetriever()
