"""Which section of a document answers what: the section cues the reranker and the answer's
quoting order share, and the section a question asks for ('why' -> Root cause)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from functools import lru_cache

from srekb.retrieval.types import Chunk, Hit, Intent, Scores, SourceType

# Which sections answer which intent; sections that rarely answer anything.
SECTION_CUES: dict[str, re.Pattern[str]] = {
    "troubleshooting": re.compile(r"mitigat|remediat|resolution|resolv|fix|recover|workaround|diagnos|investigat|debug|troubleshoot|steps|check", re.I),
    "configuration": re.compile(r"config|setting|parameter|option|flag|spec|values|how to|procedure|steps|rotation|rollback|rollout", re.I),
    "monitoring": re.compile(r"symptom|meaning|alert|metric|threshold|expr|dashboard|slo|detect", re.I),
    "general": re.compile(r"summary|root cause|cause|impact|timeline|resolution|action items|lessons|policy|overview|incident record|issue", re.I),
}
LOW_VALUE_SECTION = re.compile(r"^(related|references?|see also|further reading|links|changelog|table of contents)\b", re.I)


@lru_cache(maxsize=16384)
def section_value(section: str, intent: str) -> float:
    """-1 for a section that rarely answers anything (Related, References), 1 for one that answers
    this intent (Mitigation for troubleshooting), else 0."""
    if LOW_VALUE_SECTION.match(section.split(" > ")[-1]):
        return -1.0
    cue = SECTION_CUES.get(intent)
    return 1.0 if cue and cue.search(section) else 0.0


# How much a section's fit to the intent counts against the reranker's order of a file's chunks
# when the answer picks what to quote (measured on the shipped questions: cited-lines overlap
# best at 2; the real questions' overlap holds up to 3 and drops at 5).
EVIDENCE_SECTION_WEIGHT = 2.0


def evidence_order(hits: list[Hit], intent: Intent) -> list[Hit]:
    """The hits in the order the answer quotes them: each file keeps its place, but within a file
    the section that answers the intent (Mitigation for troubleshooting) moves ahead of its
    Symptoms, and link lists (Related, References) move back. Search results and the
    answerability check keep the reranker's order."""
    slots: dict[str, list[int]] = {}
    for i, h in enumerate(hits):
        slots.setdefault(h.chunk.path, []).append(i)
    out = list(hits)
    for positions in slots.values():
        if len(positions) > 1:
            chunks = sorted((hits[i] for i in positions),
                            key=lambda h: h.score + EVIDENCE_SECTION_WEIGHT * section_value(h.chunk.section, intent.value), reverse=True)
            for i, h in zip(positions, chunks, strict=True):
                out[i] = h
    return out


# What a question asks for, and the section of a runbook or postmortem that says it: 'why' -> Root
# cause, 'what fixed it' -> Resolution, 'how do I stop it / what now' -> Mitigation.
SECTION_ASKS: list[tuple[re.Pattern[str], re.Pattern[str]]] = [
    (re.compile(r"\bwhy\b|\broot cause\b|\bwhat caused\b", re.I), re.compile(r"root cause|cause", re.I)),
    (re.compile(r"\bwhat (fixed|resolved|ended|stopped)\b|\bhow was (it|this) (fixed|resolved)\b", re.I), re.compile(r"resolution|fix|mitigation", re.I)),
    (re.compile(r"\bhow (do|can|should|would) (i|we)\b|\bwhat (now|should (i|we) do|do (i|we) do)\b"
                r"|\b(fix|stop|mitigate|resolve|recover|restore|unblock)\b", re.I),
     re.compile(r"mitigation|remediation|resolution|fix|recover|workaround", re.I)),
]


def with_asked_section(question: str, hits: list[Hit], file_chunks: Callable[[str], Iterable[Chunk]]) -> list[Hit]:
    """The evidence, plus the section of the first runbook or postmortem in the top 3 that says
    what the question asks (its Mitigation for 'how do I stop it', its Root cause for 'why')
    when that section was not retrieved or ranks too low to be quoted: it goes into the file's
    place, first (``file_chunks``: a file's stored chunks). Measured on the shipped questions:
    cited lines up; trying the next file when the first has no such section cost a must-cite."""
    wanted = next((section for ask, section in SECTION_ASKS if ask.search(question)), None)
    first = next((h for h in hits[:3] if h.chunk.source_type in (SourceType.RUNBOOK, SourceType.INCIDENT)), None)
    if wanted is None or first is None:
        return hits
    path = first.chunk.path

    def asked(c: Chunk) -> bool:
        return c.path == path and bool(wanted.search(c.section.split(" > ")[-1]))

    if any(asked(h.chunk) for h in hits[:3]):
        return hits
    further = next((h for h in hits if asked(h.chunk)), None)  # retrieved, but too far down to be quoted
    section = further.chunk if further else min((c for c in file_chunks(path) if asked(c)), key=lambda c: c.line_start, default=None)
    if section is None:
        return hits
    out = [h for h in hits if h is not further]
    out.insert(out.index(first) + 1, Hit(section, first.score + 1e-6, scores=Scores(asked_section=True)))
    return out
