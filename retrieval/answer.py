"""Answers: Gemini when a key is configured, otherwise a grounded extractive answer.

Either way the answer is built only from the retrieved chunks, every ``[n]`` points at a
source that supports its sentence (checked by term overlap, not by trusting a model), and a
question whose key terms are not in the evidence gets an abstention instead of a guess.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

from retrieval.stats import CorpusStats
from retrieval.text import content_terms, identifiers, stem, term_set
from retrieval.types import Hit, SourceType

log = logging.getLogger(__name__)

NOT_ENOUGH = "Not enough information in the knowledge base to answer this."
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z`\"'(\[])")
MARKER = re.compile(r"\[(\d+)\]")


@dataclass
class Draft:
    """An answer text with ``[n]`` markers indexing ``sources`` (1-based) and the mode used."""

    text: str
    sources: list[Hit]
    mode: str


class Answerer(Protocol):
    def answer(self, question: str, hits: Sequence[Hit]) -> Draft:
        """Write an answer from the hits."""
        ...


# ------------------------------------------------------------------------- answerability ---


@dataclass
class Answerability:
    """Does the evidence mention what the question is specifically about?

    A near-miss question (adjacent topic present, the specific thing absent) retrieves
    confident-looking hits, so scores cannot tell it apart (measured: top-1 cosine AUC 0.47).
    What does: the question's *specific* anchors — identifiers, named products, dates, and a
    runbook asked for by alert name — must appear in the evidence.
    """

    coverage: float  # IDF-weighted share of the question's terms found in the evidence (reported)
    missing_identifiers: list[str]
    missing_terms: list[str]
    reasons: list[str]

    def answerable(self, threshold: float = 0.0) -> bool:
        return not self.reasons and self.coverage >= threshold


def _evidence_text(hit: Hit) -> str:
    c = hit.chunk
    extras = " ".join(str(v) for v in c.meta.values() if isinstance(v, str | int))
    return f"{c.path} {c.title} {c.section} {extras} {c.text}"


def _mentioned(anchor: str, ev_lower: str, ev_terms: set[str]) -> bool:
    """An identifier must appear verbatim; a quoted phrase may be reworded a little (80 % of its words)."""
    if " " not in anchor.strip():
        return anchor.lower() in ev_lower
    words = term_set(anchor)
    return anchor.lower() in ev_lower or (bool(words) and len(words & ev_terms) / len(words) >= 0.8)


# Capitalised words that are not specific anchors (sentence starts are skipped separately).
GENERIC_CAPS = frozenset(
    """I A An The What Which Who When Where Why How Is Are Do Does Did Can Could Should Would Will Our My We Your It In On At For
    If After Before Two One Three Some Our Yes No Friday Monday Tuesday Wednesday Thursday Saturday Sunday TLS CPU RAM GPU API
    HTTP HTTPS DNS SSH TCP UDP IP OOM PR PRs CI CD UI URL JSON YAML AWS GCP EKS GKE AKS SLO SLA SEV RPO RTO OK Kubernetes Linux
    Prometheus Alertmanager Grafana Pod Pods Node Nodes Service Services Deployment Job Jobs SRE On-call""".split()
)
MONTHS = "january february march april may june july august september october november december".split()
MONTH_STEMS = frozenset(stem(m) for m in MONTHS)
DATE_ASK = re.compile(r"\b(" + "|".join(MONTHS) + r")\b(?:\s+\d{1,2}(?:st|nd|rd|th)?,?)?\s+((?:19|20)\d\d)\b", re.I)
RUNBOOK_ASK = re.compile(r"\brunbooks?\b", re.I)
# 'How often should we ...' is answered by a stated frequency, not by text on the topic: 'every
# 30 minutes', 'daily', 'twice a week', 'interval: 5m', a cron schedule. 'periodic' is not one,
# nor a throughput ('1500 writes per second').
FREQUENCY_ASK = re.compile(r"\bhow (often|frequently)\b", re.I)
FREQUENCY = re.compile(
    r"\bevery\s+(\d+(\.\d+)?\s*[a-z]+|few\s+[a-z]+|other\s+[a-z]+|(second|minute|hour|day|night|week|month|quarter|year)s?\b)"
    r"|\b(hourly|daily|nightly|weekly|fortnightly|monthly|quarterly|yearly|annually)\b"
    r"|\b(once|twice|\d+\s*times)\s+(a|an|per|each|every)\s+[a-z]+"
    r"|\bper\s+(hour|day|week|month|quarter|year)\b"  # 'writes per second' is a rate, not how often to act
    r"|\b(interval|frequency|period|schedule)\w*\W{0,3}(of\s+|is\s+|=\s*)?\d+\s*[a-z]+"
    r"|(?<![^\s\"'])(@(hourly|daily|weekly|monthly)|[\d*/,-]+\s+[\d*/,-]+\s+[\d*/,-]+\s+[\d*/,-]+\s+[\d*/,-]+)(?![^\s\"'])",
    re.I,
)


# Kubernetes kinds and states: CamelCase, but vocabulary rather than the thing a question is about.
GENERIC_IDENTIFIERS = frozenset(
    """ConfigMap ConfigMaps DaemonSet DaemonSets StatefulSet StatefulSets ReplicaSet ReplicaSets CronJob CronJobs PersistentVolume
    PersistentVolumes PersistentVolumeClaim PersistentVolumeClaims StorageClass HorizontalPodAutoscaler PodDisruptionBudget
    NetworkPolicy ServiceAccount ClusterRole ClusterRoleBinding RoleBinding CustomResourceDefinition ServiceMonitor PodMonitor
    PrometheusRule AlertmanagerConfig CrashLoopBackOff ImagePullBackOff ErrImagePull OOMKilled ContainerCreating
    kube-system kube-public default-scheduler""".split()
)


@lru_cache(maxsize=1)
def _english_words() -> frozenset[str]:
    """The encoder's whole-word vocabulary: a cheap English dictionary shipped with the model."""
    from tokenizers import Tokenizer

    from retrieval.embedding import resolve_model_path

    path = resolve_model_path("all-MiniLM-L6-v2") / "tokenizer.json"
    if not path.exists():
        return frozenset()
    return frozenset(w for w in Tokenizer.from_file(str(path)).get_vocab() if w.isalpha())


def _is_name(token: str, stats: CorpusStats) -> bool:
    """A hyphenated token that names a thing ('prometheus-k8s', 'search-svc', 'payments-db'), not an
    English compound ('key-value', 'write-ahead', 'per-node'): a part that is no English word, or a
    name the corpus gives a service or file."""
    if not re.fullmatch(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)+", token):
        return False
    english = _english_words()
    if english and any(part not in english for part in token.split("-")):
        return True
    return any(re.search(rf"(?<![a-z0-9]){re.escape(token)}(?![a-z0-9])", name) for name in stats.names)


def _named_entities(question: str) -> list[str]:
    """Capitalised words inside a sentence (products, tools): 'Slack', 'CoreDNS', 'GitHub'."""
    out: list[str] = []
    for sentence in re.split(r"(?<=[.?!:;])\s+", question):
        tokens = [t.rstrip(".-") for t in re.findall(r"[A-Za-z][\w.-]*", sentence)]
        for tok in tokens[1:]:
            if tok[0].isupper() and tok not in GENERIC_CAPS and not tok.isupper() and tok.lower() not in MONTHS:
                out.append(tok)
    return list(dict.fromkeys(out))


def assess(question: str, hits: Sequence[Hit], stats: CorpusStats, top: int = 5) -> Answerability:
    """Check the question's specific anchors against the top evidence."""
    evidence_hits = list(hits[:top])
    evidence = [_evidence_text(h) for h in evidence_hits]
    ev_terms: set[str] = set()
    for e in evidence:
        ev_terms |= term_set(e)
    ev_lower = " ".join(evidence).lower()
    terms = content_terms(question)
    weights = {t: stats.idf(t) for t in terms}
    total = sum(weights.values()) or 1.0
    covered = sum(w for t, w in weights.items() if t in ev_terms)
    missing = sorted((t for t in terms if t not in ev_terms), key=lambda t: -weights[t])
    reasons: list[str] = []
    # Off-topic: most of the question's words never occur anywhere in the knowledge base
    # (measured: every labelled answerable question knows >= 73 % of its terms).
    # Identifiers, their parts and dates are checked on their own below.
    ident_terms = set(content_terms(" ".join(identifiers(question))))
    topical = [t for t in terms if t.isalpha() and t not in MONTH_STEMS and t not in ident_terms]
    known = sum(1 for t in topical if stats.df.get(t, 0) > 0)
    if topical and known / len(topical) < 0.6:
        reasons.append("the knowledge base does not cover this topic")
    # Label matchers (Ready=False, long=6h) rank the sources; they are details, not what a question is about.
    specific = [
        i for i in identifiers(question)
        if "=" not in i
        and ("_" in i or any(ch.isupper() for ch in i[1:]) or i.startswith("--") or re.match(r"[A-Z]{2,}-\d", i) or " " in i or _is_name(i, stats))
    ]
    missing_ids = [i for i in specific if not _mentioned(i, ev_lower, ev_terms)]
    if missing_ids:
        reasons.append("not mentioned in the sources: " + ", ".join(missing_ids))
    # Two specific things asked about together ('the maxReplicas of the search-svc HPA') must meet
    # in one source: each may be known on its own while the combination is not documented.
    together = [i for i in specific if " " not in i and i not in GENERIC_IDENTIFIERS and i not in missing_ids]
    if together:  # 'the payments-db disk-full incident in 2025': the year belongs to the thing named
        together += [y for y in re.findall(r"(?<![\d-])(?:19|20)\d\d(?![\d-])", question) if y not in together]
    if not missing_ids and len(together) >= 2:
        texts = [_evidence_text(h).lower() for h in evidence_hits]
        if not any(all(i.lower() in t for i in together) for t in texts):
            reasons.append("no source covers " + " and ".join(together) + " together")
    # A capitalised word is an anchor only when the knowledge base has never seen it ('Opsgenie'):
    # a known word missing from the top hits ('Running', 'Ready') is a retrieval question, not a gap.
    names = [
        n for n in _named_entities(question)
        if n.lower() not in ev_lower and n not in missing_ids and stats.df.get(stem(n.lower()), 0) == 0
    ]
    if names:
        reasons.append("not mentioned in the sources: " + ", ".join(names))
    for m in DATE_ASK.finditer(question):
        month, year = MONTHS.index(m.group(1).lower()) + 1, m.group(2)
        dated = [str(h.chunk.meta.get("date", "")) for h in evidence_hits if h.chunk.meta.get("date")]
        if dated and not any(d.startswith(f"{year}-{month:02d}") for d in dated) and f"{m.group(1).lower()} {year}" not in ev_lower:
            reasons.append(f"no source is dated {m.group(1)} {year}")
    for iso in re.findall(r"(?<!\d)(?:19|20)\d\d-[01]\d-[0-3]\d(?!\d)", question):
        if iso not in ev_lower:
            reasons.append(f"no source mentions {iso}")
    if FREQUENCY_ASK.search(question) and not FREQUENCY.search(ev_lower):
        reasons.append("no source states how often")
    if RUNBOOK_ASK.search(question):
        alerts = [i for i in specific if re.fullmatch(r"[A-Z][a-z0-9]+(?:[A-Z][A-Za-z0-9]*)+", i)]
        for alert in alerts:
            has_runbook = any(
                h.chunk.source_type is SourceType.RUNBOOK and alert.lower() in _evidence_text(h).lower() for h in evidence_hits
            )
            if not has_runbook:
                reasons.append(f"no runbook for {alert} in the sources")
    return Answerability(coverage=covered / total, missing_identifiers=missing_ids + names, missing_terms=missing, reasons=reasons)


# ---------------------------------------------------------------------------- extractive ---


LIST_ITEM = re.compile(r"^([-*+]|\d+[.)])\s+")
META_LINE = re.compile(r"^\*\*[^*]{1,30}:\*\*|^\|")  # '**Service:** x' header fields, table rows


def _units(text: str) -> list[str]:
    """Sentences and list items of a chunk. Hard-wrapped lines of a paragraph are joined before
    splitting into sentences; headings, fences, table rows and bold header fields are dropped;
    a lead-in ending with ':' carries the list items that follow it (up to three)."""
    blocks: list[str] = []
    para: list[str] = []
    in_code = False

    def flush() -> None:
        if para:
            blocks.append(" ".join(para))
            para.clear()

    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith(("```", "~~~")):
            flush()
            in_code = not in_code
            continue
        if in_code:
            if line and not line.startswith(("#", "//", "$ #")):  # comments are not answers
                blocks.append(f"`{line}`")
            continue
        if not line or line.startswith("#") or set(line) <= set("|-: ") or META_LINE.match(LIST_ITEM.sub("", line)):
            flush()
            continue
        if LIST_ITEM.match(line):
            flush()
            para.append(LIST_ITEM.sub("", line))
            continue
        para.append(line)
    flush()
    out: list[str] = []
    lead: list[str] | None = None
    for block in blocks:
        if lead is not None and len(lead) < 4:
            lead.append(block)
            out[-1] = " ".join([lead[0], "; ".join(lead[1:])])
            continue
        lead = None
        parts = [p.strip() for p in SENTENCE_END.split(block) if len(p.strip()) > 2] if not block.startswith("`") else [block]
        out.extend(parts)
        if parts and parts[-1].endswith(":"):
            lead = [parts[-1]]
    return out


def _rule_sentence(hit: Hit) -> str | None:
    m = hit.chunk.meta
    if not m.get("alert") or not m.get("expr") or hit.chunk.source_type is not SourceType.CONFIG:
        return None
    parts = [f"{m['alert']} fires when `{' '.join(str(m['expr']).split())}`"]
    if m.get("for"):
        parts.append(f"holds for {m['for']}")
    if m.get("severity"):
        parts.append(f"severity {m['severity']}")
    s = ", ".join(parts)
    if m.get("summary"):
        summary = re.sub(r"\s*\(?\{\{[^}]*\}\}\)?", "", str(m["summary"])).strip()
        s += f" ({summary})" if summary else ""
    return s + "."


class ExtractiveAnswerer:
    """Quotes the sentences of the top sources that best match the question, with [n] markers."""

    mode = "extractive"

    def __init__(self, stats: CorpusStats | None = None, max_sources: int = 3, max_sentences: int = 4) -> None:
        self.stats = stats
        self.max_sources = max_sources
        self.max_sentences = max_sentences

    def answer(self, question: str, hits: Sequence[Hit]) -> Draft:
        terms = content_terms(question)
        stats = self.stats
        weights = {t: stats.idf(t) if stats else 1.0 for t in terms}
        total = sum(weights.values()) or 1.0
        picked: list[tuple[float, int, int, str]] = []  # (score, hit index, unit index, text)
        for hi, hit in enumerate(hits[: self.max_sources]):
            rule = _rule_sentence(hit)
            if rule:
                picked.append((2.0 - hi * 0.1, hi, -1, rule))
                continue
            scored = []
            for ui, unit in enumerate(_units(hit.chunk.text)):
                ts = term_set(unit)
                s = sum(w for t, w in weights.items() if t in ts) / total
                if unit.startswith("`"):
                    s *= 0.7  # prose explains; a command is quoted when it is what matches best
                scored.append((s - 0.01 * ui - 0.15 * hi, hi, ui, unit))
            scored.sort(reverse=True)
            take = 2 if hi == 0 else 1
            picked.extend(x for n, x in enumerate(scored[:take]) if x[0] + 0.15 * hi > 0.05 or (hi == 0 and n == 0))
        picked.sort(key=lambda x: -x[0])
        picked = picked[: self.max_sentences]
        # Keep the source order, and each source's sentences in document order.
        picked.sort(key=lambda x: (x[1], x[2]))
        sources: list[Hit] = []
        parts: list[str] = []
        for _, hi, _, unit in picked:
            hit = hits[hi]
            if hit not in sources:
                sources.append(hit)
            parts.append(attach(unit, [sources.index(hit) + 1]))
        return Draft(" ".join(parts), sources, self.mode)


# -------------------------------------------------------------------------------- gemini ---


class GeminiAnswerer:
    """Gemini through google-genai: numbered sources in the prompt, answers cite them as [n]."""

    mode = "generative"

    def __init__(self, api_key: str, model: str, timeout_s: float, fallback: Answerer) -> None:
        from retrieval.llm import gemini_client

        self._client = gemini_client(api_key, timeout_s)
        self._model = model
        self._fallback = fallback

    def answer(self, question: str, hits: Sequence[Hit]) -> Draft:
        sources = list(hits[:6])
        numbered = "\n\n".join(f"[{i}] {h.chunk.title}: {h.chunk.section} ({h.chunk.path})\n{h.chunk.text}" for i, h in enumerate(sources, 1))
        prompt = (
            "You are an SRE assistant. Answer the on-call engineer's question using ONLY the numbered sources. "
            "Be short and specific (commands, thresholds, names). After each sentence cite its source as [n]. "
            f"If the sources do not contain the answer, reply exactly: {NOT_ENOUGH}\n\n"
            f"Sources:\n{numbered}\n\nQuestion: {question}\nAnswer:"
        )
        try:
            resp = self._client.models.generate_content(model=self._model, contents=prompt)
            text = (resp.text or "").strip()
        except Exception as exc:  # network, quota, key: degrade to the offline answer, never fail
            log.warning("gemini answer failed (%s: %s); answering extractively", type(exc).__name__, exc)
            draft = self._fallback.answer(question, hits)
            draft.mode = "extractive"
            return draft
        if not text:
            return self._fallback.answer(question, hits)
        return Draft(text, sources, self.mode)


def attach(sentence: str, markers: list[int]) -> str:
    """'Restart the member.' + [1] -> 'Restart the member [1].' (markers before the full stop)."""
    tags = "".join(f" [{n}]" for n in markers)
    if sentence.endswith((".", "!", "?")):
        return sentence[:-1].rstrip() + tags + sentence[-1]
    return sentence + tags


def verify_markers(draft: Draft) -> Draft:
    """Every [n] must point to a source that supports its sentence: keep it if the sentence's
    terms overlap the source enough, move it to the best-supporting source otherwise, drop it if
    none supports it; then renumber the used sources in answer order."""
    source_terms = [term_set(f"{h.chunk.title} {h.chunk.section} {h.chunk.text}") for h in draft.sources]
    sentences = re.split(r"(?<=\])\s+|(?<=[.!?])\s+(?!\[)", draft.text)
    fixed: list[str] = []
    for sent in sentences:
        markers = [int(m) for m in MARKER.findall(sent)]
        if not markers:
            fixed.append(sent)
            continue
        body = re.sub(r"\s+([.!?,;:])", r"\1", MARKER.sub("", sent)).strip()
        terms = term_set(body) - {"the", "a"}
        support = [len(terms & st) / max(1, len(terms)) for st in source_terms]
        keep = [n for n in markers if 1 <= n <= len(draft.sources) and support[n - 1] >= 0.3]
        if not keep and support:
            best = max(range(len(support)), key=lambda i: support[i])
            if support[best] >= 0.3:
                keep = [best + 1]
        fixed.append(attach(body, list(dict.fromkeys(keep))) if keep else body)
    text = " ".join(fixed)
    # renumber in order of first use
    order: list[int] = []
    for m in MARKER.findall(text):
        if int(m) not in order:
            order.append(int(m))
    mapping = {old: new for new, old in enumerate(order, 1)}
    text = MARKER.sub(lambda m: f"[{mapping[int(m.group(1))]}]", text)
    return Draft(text, [draft.sources[i - 1] for i in order], draft.mode)
