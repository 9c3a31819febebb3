"""Small text helpers shared by the classifier, the reranker and the answerer."""

from __future__ import annotations

import re
from functools import lru_cache

STOPWORDS = frozenset(
    """a about above after again against all also am an and any are as at be because been before being below between both but by
    can could did do does doing down during each few for from further had has have having he her here hers him his how i if in
    into is it its itself just me more most my no nor not now of off on once only or other our ours out over own same she should
    so some such than that the their theirs them then there these they this those through to too under until up very was we were
    what when where which while who whom why will with would you your yours one ones get gets got us let lets may might must
    still yet way ever even much many i'm it's don't doesn't isn't can't won't we're they're what's""".split()
)
# Words that carry the question's form, not its topic.
QUESTION_WORDS = frozenset(
    """happen happened happens happening tell know need needs want wants say says said look looking check see mean means meaning
    usual usually actually exactly thing things something anything right wrong going go goes keep keeps kept make makes made
    fix fixed fixes do done use used using work works working way ways first set""".split()
)

IDENT_PATTERNS = [
    re.compile(r"\b[A-Z][a-z0-9]+(?:[A-Z][a-z0-9]*){1,}\b"),  # CamelCase: KubePodCrashLooping
    re.compile(r"\b[a-z][a-z0-9]*(?:_[a-z0-9]+){1,}\b"),  # snake_case metrics
    re.compile(r"(?<![\w-])--[a-z][a-z0-9-]+"),  # --flags
    re.compile(r"\b[A-Z]{2,}-\d{2,}(?:-\d+)?\b"),  # INC-2024-031, SRE-1234
    re.compile(r"\b[a-z0-9]+(?:-[a-z0-9]+){1,}\b"),  # kebab-case names: checkout-api, orders-db
    re.compile(r"\b[a-z]+(?:[A-Z][a-z0-9]+)+\b"),  # lowerCamel fields: maxReplicas, proxyReadTimeout
]
# Quoted strings ('mvcc: database space exceeded'): the quote must open after a space or start
# and close before a non-word character, so apostrophes (etcd's, couldn't) never pair up.
QUOTED = re.compile(r"(?:(?<=\s)|^)(['\"`‘“])([^'\"`‘’“”\n]{3,160}?)(['\"`’”])(?=[\s.,;:?!)]|$)")
# Label matchers pasted from a page or a query ('severity=critical', job="apiserver", long=6h):
# they name one alert rule or target among many that share a name.
LABEL = re.compile(r"(?<![\w.-])([a-zA-Z_][a-zA-Z0-9_]*)=[\"']?([A-Za-z0-9_.:/-]*[A-Za-z0-9])[\"']?(?![\w=])")
TOKEN = re.compile(r"[a-z0-9]+(?:[._/-][a-z0-9]+)*")


@lru_cache(maxsize=8192)
def stem(word: str) -> str:
    """A light English stemmer, consistent across inflections: fire/fires/fired/firing -> fir,
    restarts -> restart, policies -> policy. Identifiers and numbers pass through."""
    w = word
    if len(w) <= 3 or not w.isalpha():
        return w
    if w.endswith("ies") and len(w) > 4:
        w = w[:-3] + "y"
    elif w.endswith("sses"):
        w = w[:-2]
    elif w.endswith("es") and re.search(r"(s|x|z|ch|sh)es$", w):
        w = w[:-2]
    elif w.endswith("s") and not w.endswith(("ss", "us", "is")):
        w = w[:-1]
    for suffix in ("ing", "ed"):
        if w.endswith(suffix) and len(w) - len(suffix) >= 3:
            w = w[: -len(suffix)]
            if len(w) > 3 and w[-1] == w[-2] and w[-1] not in "lsz":  # running -> run
                w = w[:-1]
            break
    if w.endswith("e") and len(w) > 3:
        w = w[:-1]
    return w


def words(text: str) -> list[str]:
    """Lower-case word tokens, identifiers split into parts as well as kept whole."""
    out: list[str] = []
    for tok in TOKEN.findall(text.lower()):
        out.append(tok)
        if any(ch in tok for ch in "._/-"):
            out.extend(p for p in re.split(r"[._/-]", tok) if p)
    return out


def content_terms(text: str) -> list[str]:
    """Stemmed content words of a question, in order, without duplicates."""
    seen: dict[str, None] = {}
    for w in words(_split_camel(text)):
        if w in STOPWORDS or w in QUESTION_WORDS or len(w) < 2:
            continue
        seen.setdefault(stem(w))
    return list(seen)


@lru_cache(maxsize=16384)
def term_set(text: str) -> frozenset[str]:
    """Stemmed words of a document (for overlap checks); cached: the same titles and chunks come
    back query after query."""
    return frozenset(stem(w) for w in words(_split_camel(text)))


def _split_camel(text: str) -> str:
    """Adds the camelCase parts next to the identifier: 'KubePodCrashLooping kube pod crash looping'."""
    def repl(m: re.Match[str]) -> str:
        parts = re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z0-9]+", m.group(0))
        return m.group(0) + " " + " ".join(parts)

    return IDENT_PATTERNS[0].sub(repl, text)


def identifiers(text: str) -> list[str]:
    """Exact identifiers a question names: alert/metric names, flags, incident ids, quoted strings."""
    found: dict[str, None] = {}
    for pat in IDENT_PATTERNS:
        for m in pat.finditer(text):
            tok = m.group(0)
            if pat is IDENT_PATTERNS[4] and tok.count("-") < 1:
                continue
            found.setdefault(tok)
    for m in QUOTED.finditer(text):
        found.setdefault(m.group(2).strip())
    for m in LABEL.finditer(text):
        found.setdefault(f"{m.group(1)}={m.group(2)}")
    return list(found)


@lru_cache(maxsize=1024)
def ident_pattern(ident: str) -> re.Pattern[str] | None:
    """How a label matcher ('long=6h') is written in a source: ``long: 6h`` in a rule's YAML,
    ``long="6h"`` in PromQL, ``long=6h`` in prose (lower-case). None for other identifiers,
    which are found as they are spelled."""
    m = re.fullmatch(r"([a-zA-Z_][a-zA-Z0-9_]*)=(.+)", ident)
    if not m:
        return None
    key, value = (re.escape(g.lower()) for g in m.groups())
    return re.compile(rf"(?<![\w-]){key}\s*[:=]\s*[\"']?{value}(?![\w-])")


def mentions(ident: str, text_lower: str) -> bool:
    """Whether lower-cased text names the identifier (a label matcher in any of its spellings)."""
    pat = ident_pattern(ident)
    return bool(pat.search(text_lower)) if pat else ident.lower() in text_lower
