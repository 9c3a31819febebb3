"""``strategies.png``: grouped bars of the headline retrieval metrics per strategy."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

CHART_METRICS = ["recall@3", "mrr@10", "ndcg@10", "must_cite@3"]
LABELS = {"recall@3": "recall@3", "mrr@10": "MRR@10", "ndcg@10": "nDCG@10", "must_cite@3": "must-cite@3"}


def strategies_chart(strategies: Mapping[str, Mapping[str, float]], path: Path, title: str = "Retrieval strategies") -> Path:
    """Write the chart (Agg canvas, no display, no global pyplot state) and return its path."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = list(strategies)
    fig = Figure(figsize=(max(8.0, 1.6 * len(names) + 2), 5.2), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    width = 0.8 / max(1, len(CHART_METRICS))
    colors = ["#4C72B0", "#DD8452", "#55A868", "#C44E52"]
    for j, metric in enumerate(CHART_METRICS):
        xs = [i + (j - (len(CHART_METRICS) - 1) / 2) * width for i in range(len(names))]
        values = [float(strategies[n].get(metric, 0.0)) for n in names]
        bars = ax.bar(xs, values, width, label=LABELS[metric], color=colors[j % len(colors)])
        for bar, v in zip(bars, values, strict=True):
            ax.text(bar.get_x() + bar.get_width() / 2, v + 0.01, f"{v:.2f}", ha="center", va="bottom", fontsize=6.5, rotation=90)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels([_wrap(n) for n in names], fontsize=8)
    ax.set_ylim(0, 1.12)
    ax.set_ylabel("score (file level)")
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=len(CHART_METRICS), frameon=False, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def _wrap(name: str, width: int = 18) -> str:
    words, lines, line = name.split(), [], ""
    for w in words:
        if line and len(line) + 1 + len(w) > width:
            lines.append(line)
            line = w
        else:
            line = f"{line} {w}".strip()
    lines.append(line)
    return "\n".join(lines)
