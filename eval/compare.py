"""A report against a baseline report (``srekb eval --baseline OLD/report.json``).

Every strategy metric, answer metric, offline ragas metric and per-stage latency gets its old
value, new value and delta. A quality metric is a regression when it is worse by more than
``QUALITY_TOLERANCE`` (absolute; ``false_abstention`` is better lower, every other quality metric
better higher); a latency (``*_ms``) when it is worse by more than ``LATENCY_TOLERANCE`` (relative).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

QUALITY_TOLERANCE = 0.005
LATENCY_TOLERANCE = 0.20
LOWER_IS_BETTER = {"false_abstention", "unsupported_sentences"}
EPS = 1e-9


def is_latency(metric: str) -> bool:
    return metric.endswith("_ms")


def delta(metric: str, old: float, new: float) -> dict[str, Any]:
    """``{old, new, delta, regression}`` (+ ``relative`` for latencies)."""
    d: dict[str, Any] = {"old": old, "new": new, "delta": round(new - old, 4)}
    if is_latency(metric):
        rel = (new - old) / old if old > 0 else 0.0
        d["relative"] = round(rel, 4)
        d["regression"] = bool(old > 0 and rel > LATENCY_TOLERANCE + EPS)
    else:
        worse = (new - old) if metric in LOWER_IS_BETTER else (old - new)
        d["regression"] = bool(worse > QUALITY_TOLERANCE + EPS)
    return d


def _numbers(d: Mapping[str, Any] | None) -> dict[str, float]:
    return {k: float(v) for k, v in (d or {}).items() if isinstance(v, int | float) and not isinstance(v, bool)}


def _block(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None, keys: list[str] | None = None) -> dict[str, Any]:
    o, n = _numbers(old), _numbers(new)
    names = keys if keys is not None else [k for k in n if k in o]
    return {k: delta(k, o[k], n[k]) for k in names if k in o and k in n}


def _stages(report: Mapping[str, Any]) -> dict[str, float]:
    flat: dict[str, float] = {}
    for stage, m in (report.get("latency_stages") or {}).items():
        for q in ("p50_ms", "p95_ms"):
            if q in m:
                flat[f"{stage} {q}"] = float(m[q])
    return flat


GATED_STRATEGY = "hybrid + rerank + intent"


def compare(
    report: Mapping[str, Any], baseline: Mapping[str, Any], baseline_path: str = "", gated_strategy: str = GATED_STRATEGY
) -> dict[str, Any]:
    """Deltas of ``report`` against ``baseline`` and the lists of regressions: ``regressions``
    (all, marked in the report), ``quality_regressions`` (latency left out) and
    ``gating_regressions`` (what ``--fail-on-regression`` fails on: quality regressions of the
    service's own strategy, of the answers and of the ragas figures). The baselines without a
    reranker are left out of the gate on purpose: the engine orders RRF ties arbitrarily, so on
    the same index one question in 150 can move between two runs (measured: ``hybrid``
    recall@3 -0.007), while the reranked strategies are stable."""
    from srekb.eval.ragas_metrics import JUDGE_KEYS, OFFLINE_KEYS

    out: dict[str, Any] = {"path": baseline_path, "strategies": {}, "added": [], "missing": []}
    old_strats = baseline.get("strategies") or {}
    for name, metrics in (report.get("strategies") or {}).items():
        if name in old_strats:
            out["strategies"][name] = _block(old_strats[name], metrics)
        else:
            out["added"].append(name)
    out["missing"] = [name for name in old_strats if name not in (report.get("strategies") or {})]
    out["answers"] = _block(baseline.get("answers"), report.get("answers"))
    old_r, new_r = baseline.get("ragas") or {}, report.get("ragas") or {}
    out["ragas"] = _block(old_r.get("offline"), new_r.get("offline"), OFFLINE_KEYS)
    old_j, new_j = old_r.get("judge") or {}, new_r.get("judge") or {}
    if old_j.get("status") == "ok" and new_j.get("status") == "ok":
        out["ragas"] |= _block(old_j, new_j, JUDGE_KEYS)
    out["latency_stages"] = _block(_stages(baseline), _stages(report))
    found: list[tuple[str, str, dict[str, Any]]] = [
        (name, m, d) for name, block in out["strategies"].items() for m, d in block.items() if d["regression"]
    ]
    for group in ("answers", "ragas", "latency_stages"):
        found += [(group, m, d) for m, d in out[group].items() if d["regression"]]
    out["regressions"] = [f"{where}: {m} {_describe(m, d)}" for where, m, d in found]
    out["quality_regressions"] = [f"{where}: {m} {_describe(m, d)}" for where, m, d in found if not is_latency(m)]
    gated = {gated_strategy, "answers", "ragas"}
    out["gating_regressions"] = [f"{where}: {m} {_describe(m, d)}" for where, m, d in found if not is_latency(m) and where in gated]
    return out


def _describe(metric: str, d: Mapping[str, Any]) -> str:
    if is_latency(metric):
        return f"{d['old']:.1f} -> {d['new']:.1f} ms ({d['relative']:+.0%})"
    return f"{d['old']:.3f} -> {d['new']:.3f} ({d['delta']:+.3f})"


def _cell(metric: str, d: Mapping[str, Any] | None) -> str:
    if d is None:
        return "n/a"
    text = f"{d['relative']:+.0%}" if is_latency(metric) else f"{d['delta']:+.3f}"
    return f"**{text} ▼**" if d["regression"] else text


def to_markdown(cmp: Mapping[str, Any], search_keys: list[str]) -> list[str]:
    """The "against the baseline" section of report.md (list of lines)."""
    lines = ["", f"## Against the baseline {cmp.get('path') or ''}".rstrip(), "",
             f"Deltas (now − baseline); **▼** marks a regression: a quality metric worse by more than {QUALITY_TOLERANCE}, "
             f"a latency worse by more than {LATENCY_TOLERANCE:.0%}.", ""]
    lines += ["| strategy | " + " | ".join(search_keys) + " |", "|---|" + "---|" * len(search_keys)]
    for name, block in cmp["strategies"].items():
        lines.append(f"| {name} | " + " | ".join(_cell(k, block.get(k)) for k in search_keys) + " |")
    for name in cmp.get("added", []):
        lines.append(f"| {name} | " + " | ".join("new" for _ in search_keys) + " |")
    if cmp.get("missing"):
        lines += ["", "In the baseline only: " + ", ".join(cmp["missing"])]
    for title, group in (("Answers", "answers"), ("ragas", "ragas"), ("Per-stage latency (`ask`)", "latency_stages")):
        if not cmp.get(group):
            continue
        lines += ["", f"{title}:", "", "| metric | baseline | now | delta |", "|---|---|---|---|"]
        for m, d in cmp[group].items():
            fmt = "{:.1f}" if is_latency(m) else "{:.3f}"
            lines.append(f"| {m} | {fmt.format(d['old'])} | {fmt.format(d['new'])} | {_cell(m, d)} |")
    lines += [""]
    if cmp["regressions"]:
        lines += [f"**{len(cmp['regressions'])} regression(s):**", ""] + [f"- {r}" for r in cmp["regressions"]]
    else:
        lines += ["No regression against the baseline."]
    return lines
