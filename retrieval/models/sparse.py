"""BM25 sparse vectors computed the way the Qdrant engine expects (IDF is applied by Qdrant).

The Code tokenizer keeps an identifier whole *and* splits it into parts (``KubePodCrashLooping``
→ kubepodcrashlooping, kube, pod, crash, looping; ``node_filesystem_avail_bytes`` likewise), so
alert names, metrics and error strings are findable both exactly and by their words.
"""

from __future__ import annotations

from functools import lru_cache

import qdrant_edge as qe


class Bm25Encoder:
    """Document and query sparse vectors from ``qdrant_edge.Bm25``."""

    def __init__(self, tokenizer: qe.TokenizerType = qe.TokenizerType.Code) -> None:
        self._bm25 = qe.Bm25(qe.Bm25Config(tokenizer=tokenizer))

    def document(self, text: str) -> tuple[list[int], list[float]]:
        vec = self._bm25.embed_document(text)
        return list(vec.indices), list(vec.values)

    def query(self, text: str) -> tuple[list[int], list[float]]:
        vec = self._bm25.embed_query(text)
        return list(vec.indices), list(vec.values)


@lru_cache(maxsize=1)
def default_bm25() -> Bm25Encoder:
    return Bm25Encoder()
