"""Evaluation runner: drives the KnowledgeBase (and baselines) over labelled questions."""

from __future__ import annotations

import re
import time
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from srekb.eval.dataset import Question, qrels_of
from srekb.eval.metrics import hit_at, lines_overlap, mean, mrr_at, ndcg_at, percentile, recall_at
from srekb.retrieval.kb import Answer, KnowledgeBase
from srekb.retrieval.types import Chunk, Hit

SearchFn = Callable[[str], list[Hit]]


def paths_in_order(hits: list[Hit]) -> list[str]:
    """File ranking from chunk hits: each file at its best chunk's position."""
    return list(dict.fromkeys(h.chunk.path for h in hits))


def run_scores(hits: list[Hit]) -> dict[str, float]:
    order = paths_in_order(hits)
    return {p: float(len(order) - i) for i, p in enumerate(order)}


class OkapiBaseline:
    """rank-bm25's BM25Okapi over the same chunks as ours: the external lexical baseline."""

    def __init__(self, chunks: list[Chunk]) -> None:
        from rank_bm25 import BM25Okapi

        self.chunks = chunks
        self.bm25 = BM25Okapi([_tok(c.embed_text()) for c in chunks]) if chunks else None

    def search(self, question: str, k: int = 10) -> list[Hit]:
        if not self.bm25:
            return []
        scores = self.bm25.get_scores(_tok(question))
        order = np.argsort(-scores, kind="stable")[:k]
        return [Hit(self.chunks[i], float(scores[i])) for i in order]


def _tok(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


NAIVE_CHUNK_TOKENS = 256
NAIVE_OVERLAP_TOKENS = 20


def naive_windows(kb: KnowledgeBase, chunk_tokens: int = NAIVE_CHUNK_TOKENS, overlap: int = NAIVE_OVERLAP_TOKENS) -> list[Chunk]:
    """Every ingested file cut the way an afternoon build cuts it: LlamaIndex's ``SentenceSplitter``
    at ``chunk_tokens`` encoder word pieces (``overlap`` shared), blind to sections, rules and
    objects. Each window keeps the file's path and the 1-based lines it spans, so it is scored
    exactly like our chunks. The text comes from disk (from the file's chunks if it is gone)."""
    from llama_index.core import Document
    from llama_index.core.node_parser import SentenceSplitter
    from srekb.ingest.text import wordpiece_tokenizer

    splitter = SentenceSplitter(chunk_size=chunk_tokens, chunk_overlap=overlap, tokenizer=wordpiece_tokenizer(kb.settings.embedding_model) or str.split)
    out: list[Chunk] = []
    for path, record in sorted(kb.store.sources().items()):
        by_line, _, _ = kb.source_lines(record)
        text = "\n".join(by_line.get(n, "") for n in range(1, max(by_line, default=0) + 1))
        if not text.strip():
            continue
        starts = [0] + [m.end() for m in re.finditer("\n", text)]  # char offset of each line start
        for node in splitter.get_nodes_from_documents([Document(text=text)]):
            body = node.get_content()
            start = getattr(node, "start_char_idx", None)
            begin = start if isinstance(start, int) and start >= 0 else max(0, text.find(body[:80]))
            end = begin + max(0, len(body) - 1)
            first, last = bisect_right(starts, begin), bisect_right(starts, end)
            out.append(Chunk(path, record.source_type, record.title or path, "", body, first, max(first, last), key=f"w{begin}"))
    return out


class NaiveHybrid:
    """The afternoon baseline the issues measure against: rank-bm25 (BM25Okapi) + dense MiniLM
    (exact cosine in memory) over fixed 256-token windows (:func:`naive_windows`), fused by RRF
    k=60. Same encoder as ours; none of our chunking, engine, routing or reranking."""

    def __init__(self, kb: KnowledgeBase, windows: list[Chunk] | None = None, vectors: np.ndarray | None = None) -> None:
        self.kb = kb
        self.windows = naive_windows(kb) if windows is None else windows
        self.okapi = OkapiBaseline(self.windows)
        if vectors is None:
            vectors = kb.embedder.embed_batch([w.text for w in self.windows]) if self.windows else np.zeros((0, 1), dtype=np.float32)
        self.vectors = vectors

    def dense_search(self, question: str, k: int) -> list[Hit]:
        if not self.windows:
            return []
        scores = self.vectors @ self.kb.embedder.embed_batch([question])[0]
        order = np.argsort(-scores, kind="stable")[:k]
        return [Hit(self.windows[i], float(scores[i])) for i in order]

    def search(self, question: str, k: int = 10, depth: int = 60) -> list[Hit]:
        fused: dict[int, float] = {}
        by_id: dict[int, Hit] = {}
        for lst in (self.dense_search(question, depth), self.okapi.search(question, depth)):
            for rank, h in enumerate(lst, 1):
                fused[id(h.chunk)] = fused.get(id(h.chunk), 0.0) + 1.0 / (60 + rank)
                by_id.setdefault(id(h.chunk), h)
        top = sorted(fused, key=lambda i: -fused[i])[:k]
        return [Hit(by_id[i].chunk, fused[i]) for i in top]


STRATEGY_NAMES = [
    "bm25 (rank-bm25 BM25Okapi)",
    "bm25 (qdrant)",
    "dense",
    "naive hybrid (rank-bm25 + dense, 256-token windows, RRF k=60)",
    "hybrid",
    "hybrid + rerank",
    "hybrid + rerank + intent",
]


def strategies(kb: KnowledgeBase, naive: NaiveHybrid | None = None) -> dict[str, SearchFn]:
    """Every strategy compared, on the same index (in the order of ``STRATEGY_NAMES``)."""
    bm25 = kb.bm25
    okapi = OkapiBaseline(list(kb.store.chunks()))
    naive = naive or NaiveHybrid(kb)
    fns: list[SearchFn] = [
        lambda q: okapi.search(q, 10),
        lambda q: kb.store.sparse_search(bm25.query(q), 10),
        lambda q: kb.store.dense_search(kb.embedder.embed_batch([q])[0], 10),
        lambda q: naive.search(q, 10),
        lambda q: kb.search(q, 10, rerank=False, route=False).hits,
        lambda q: kb.search(q, 10, rerank=True, route=False).hits,
        lambda q: kb.search(q, 10).hits,
    ]
    return dict(zip(STRATEGY_NAMES, fns, strict=True))


@dataclass
class StrategyResult:
    name: str
    metrics: dict[str, float]
    per_question: list[dict[str, Any]] = field(default_factory=list)
    run: dict[str, dict[str, float]] = field(default_factory=dict)


def evaluate_search(name: str, fn: SearchFn, questions: list[Question], tick: Callable[[], None] | None = None) -> StrategyResult:
    qrels = qrels_of(questions)
    per: list[dict[str, Any]] = []
    run: dict[str, dict[str, float]] = {}
    latencies = []
    for q in questions:
        if not q.answerable:
            continue
        t = time.perf_counter()
        hits = fn(q.question)
        if tick:
            tick()
        latencies.append((time.perf_counter() - t) * 1000)
        order = paths_in_order(hits)
        run[q.id] = run_scores(hits)
        rel = qrels[q.id]
        per.append({
            "id": q.id, "intent": q.intent, "ranking": order[:10],
            "recall@1": recall_at(rel, order, 1), "recall@3": recall_at(rel, order, 3), "recall@10": recall_at(rel, order, 10),
            "mrr@10": mrr_at(rel, order, 10), "ndcg@10": ndcg_at(rel, order, 10),
            "must_cite@3": hit_at(q.must_cite, order, 3) if q.must_cite else 0.0,
            "must_cite@1": hit_at(q.must_cite, order, 1) if q.must_cite else 0.0,
        })
    keys = ["recall@1", "recall@3", "recall@10", "mrr@10", "ndcg@10", "must_cite@1", "must_cite@3"]
    metrics = {k: mean([p[k] for p in per]) for k in keys}
    metrics["latency_p50_ms"] = percentile(latencies, 50)
    metrics["latency_p95_ms"] = percentile(latencies, 95)
    return StrategyResult(name, metrics, per, run)


def evaluate_answers(
    kb: KnowledgeBase, questions: list[Question], on_answer: Callable[[Question, Answer], None] | None = None
) -> dict[str, Any]:
    """Ask every question: intent accuracy, abstention, citations, coverage, per-stage timings.
    ``on_answer`` sees every question with its :class:`Answer` (the ragas adapter uses it)."""
    rows: list[dict[str, Any]] = []
    for q in questions:
        ans = kb.ask(q.question)
        if on_answer is not None:
            on_answer(q, ans)
        cited = [c.path for c in ans.citations]
        must_lines = [c.lines for c in ans.citations if c.path == q.must_cite]
        rows.append({
            "id": q.id, "answerable": q.answerable, "intent": q.intent, "predicted_intent": ans.intent.value,
            "abstained": ans.abstained, "caveat": getattr(ans, "outcome", "") == "caveat", "cited": cited, "must_cite": q.must_cite,
            "must_cite_hit": bool(q.must_cite and q.must_cite in cited),
            "lines_hit": bool(q.must_cite_lines and any(lines_overlap(ln, q.must_cite_lines) for ln in must_lines)),
            "has_lines_label": bool(q.must_cite_lines),
            "citation_relevant": [p in set(q.relevant) | {q.must_cite} for p in cited],
            "coverage": ans.answerability.coverage if ans.answerability else None,
            "missing": (ans.answerability.missing_identifiers + ans.answerability.missing_terms[:3]) if ans.answerability else [],
            "answer": ans.text, "total_ms": ans.timings_ms.get("total", 0.0),
            "checked": ans.checked, "unsupported": ans.unsupported,
            "timings_ms": {k: round(v, 3) for k, v in ans.timings_ms.items()},
        })
    ans_rows = [r for r in rows if r["answerable"]]
    un_rows = [r for r in rows if not r["answerable"]]
    labelled = [r for r in ans_rows if r["has_lines_label"]]
    all_cites: list[bool] = [x for r in ans_rows for x in r["citation_relevant"]]
    return {
        "intent_accuracy": mean([1.0 if r["intent"] == r["predicted_intent"] else 0.0 for r in rows if r["intent"]]),
        "must_cite_in_citations": mean([1.0 if r["must_cite_hit"] else 0.0 for r in ans_rows]),
        "cited_lines_overlap": mean([1.0 if r["lines_hit"] else 0.0 for r in labelled]),
        "abstain_on_unanswerable": mean([1.0 if r["abstained"] else 0.0 for r in un_rows]),
        "abstain_or_caveat_on_unanswerable": mean([1.0 if r["abstained"] or r["caveat"] else 0.0 for r in un_rows]),
        "caveat_on_answerable": mean([1.0 if r["caveat"] else 0.0 for r in ans_rows]),
        "false_abstention": mean([1.0 if r["abstained"] else 0.0 for r in ans_rows]),
        # Of the answers that abstained, the share that should have (unanswerable questions).
        "abstention_precision": mean([0.0 if r["answerable"] else 1.0 for r in rows if r["abstained"]]),
        "knowledge_coverage": mean([0.0 if r["abstained"] else 1.0 for r in ans_rows]),
        "citation_accuracy": mean([1.0 if x else 0.0 for x in all_cites]),
        "ask_p50_ms": percentile([r["total_ms"] for r in rows], 50),
        # The answer's own marker check beside ragas' faithfulness: of the generated sentences that
        # cite a source, the share whose numbers, commands and names the source states. Extractive
        # answers quote their sources, so without a model nothing is checked (None).
        "marker_faithfulness": (1.0 - sum(r["unsupported"] for r in rows) / checked) if (checked := sum(r["checked"] for r in rows)) else None,
        "unsupported_sentences": float(sum(r["unsupported"] for r in rows)),
        "rows": rows,
    }
