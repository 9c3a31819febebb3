"""Corpus term statistics (document frequencies) for the answerability check.

Computed once from the stored chunks and cached next to the store, keyed by a fingerprint of
the ingested files, so it is rebuilt only after an ingest changed something.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
from collections import Counter
from pathlib import Path

from srekb.retrieval.search.linking import link_names
from srekb.retrieval.store import Store
from srekb.retrieval.text import term_set

log = logging.getLogger(__name__)
KEBAB = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)+")


class CorpusStats:
    def __init__(self, df: dict[str, int], n_docs: int, names: set[str] | None = None, links: dict[str, list[str]] | None = None) -> None:
        self.df = df
        self.n_docs = max(1, n_docs)
        # Hyphenated names the corpus uses for things (services, hosts, files): from source paths
        # and ``service`` fields. 'payments-db' is a name; 'key-value' is English.
        self.names = names or set()
        # Which files hold each alert rule and runbook ("rule:kubepodcrashlooping" -> paths), so
        # search can fetch a rule's runbook (or a runbook's rule) that the engine did not return.
        self.links = links or {}

    def idf(self, term: str) -> float:
        return math.log((self.n_docs + 1) / (self.df.get(term, 0) + 0.5))

    @classmethod
    def build(cls, store: Store) -> CorpusStats:
        df: Counter[str] = Counter()
        names: set[str] = set()
        links: dict[str, set[str]] = {}
        n = 0
        for chunk in store.chunks():
            n += 1
            df.update(term_set(f"{chunk.title} {chunk.section} {chunk.text}"))
            names.update(KEBAB.findall(f"{chunk.path} {chunk.meta.get('service', '')}".lower()))
            for kind, name in link_names(chunk):
                links.setdefault(f"{kind}:{name}", set()).add(chunk.path)
        return cls(dict(df), n, names, {k: sorted(v) for k, v in links.items()})

    @classmethod
    def load_or_build(cls, store: Store, cache_dir: Path) -> CorpusStats:
        sources = store.sources()
        fingerprint = hashlib.sha256(json.dumps(sorted((p, r.sha256) for p, r in sources.items())).encode()).hexdigest()[:16]
        path = cache_dir / f"stats-{fingerprint}.json"
        if path.exists():
            try:
                data = json.loads(path.read_text())
                return cls(data["df"], data["n_docs"], set(data["names"]), data["links"])
            except (OSError, ValueError, KeyError):
                log.info("corpus stats cache %s unreadable or from an older version; rebuilding", path)
        stats = cls.build(store)
        try:
            cache_dir.mkdir(parents=True, exist_ok=True)
            for old in cache_dir.glob("stats-*.json"):
                old.unlink(missing_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps({"df": stats.df, "n_docs": stats.n_docs, "names": sorted(stats.names), "links": stats.links}))
            tmp.replace(path)
        except OSError as exc:
            log.warning("cannot cache corpus stats in %s: %s", cache_dir, exc)
        return stats
