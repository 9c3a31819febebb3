"""Citations in the exact form on-call engineers read, plus structured fields for machines.

    Citations:
    1) Prometheus Alert Rules: CPU Usage Monitoring (prometheus.yml:L45)
    2) K8s Deployment Guide: Rolling Update Strategy (k8s-docs/deployment.md)
    3) Incident #12345: Similar CPU Spike Resolution (2024-08-20)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from srekb.retrieval.types import Chunk, SourceType


@dataclass
class Citation:
    """One numbered source of an answer."""

    n: int
    source_type: SourceType
    path: str
    lines: tuple[int, int] | None
    incident_id: str | None
    date: str | None
    title: str
    section: str
    text: str
    label: str

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["source_type"] = self.source_type.value
        d["lines"] = list(self.lines) if self.lines else None
        return d


class SRECitationFormatter:
    """Numbers sources in answer order (each source once) and renders the citation block."""

    header = "Citations:"

    def label(self, chunk: Chunk) -> str:
        """The one-line label of a chunk, by source type."""
        if chunk.source_type is SourceType.INCIDENT:
            iid = chunk.meta.get("incident_id") or chunk.path
            date = chunk.meta.get("date")
            title = chunk.title if chunk.title != iid else chunk.section
            title = title.removeprefix(f"{iid}:").removeprefix(f"{iid} -").strip() or title
            return f"Incident #{iid}: {title}" + (f" ({date})" if date else f" ({chunk.path})")
        if chunk.source_type is SourceType.CONFIG:
            return f"{chunk.title}: {chunk.section} ({chunk.path}:L{chunk.line_start})"
        return f"{chunk.title}: {chunk.section} ({chunk.path})"

    def cite(self, chunks: Sequence[Chunk]) -> list[Citation]:
        """Citations for chunks in answer order; a chunk seen before keeps its first number."""
        out: list[Citation] = []
        seen: set[tuple[str, int, int]] = set()
        for chunk in chunks:
            key = (chunk.path, chunk.line_start, chunk.line_end)
            if key in seen:
                continue
            seen.add(key)
            out.append(
                Citation(
                    n=len(out) + 1,
                    source_type=chunk.source_type,
                    path=chunk.path,
                    lines=(chunk.line_start, chunk.line_end) if chunk.line_start else None,
                    incident_id=chunk.meta.get("incident_id"),
                    date=chunk.meta.get("date"),
                    title=chunk.title,
                    section=chunk.section,
                    text=chunk.text,
                    label=self.label(chunk),
                )
            )
        return out

    def format(self, citations: Sequence[Citation]) -> str:
        """The citation block; empty when there is nothing to cite."""
        if not citations:
            return ""
        return "\n".join([self.header, *(f"{c.n}) {c.label}" for c in citations)])
