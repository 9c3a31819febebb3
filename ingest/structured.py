"""Structured files with line numbers: Prometheus rules, Alertmanager routes, Kubernetes objects,
incident records (YAML/JSON, GitHub-issues exports), and any YAML / JSON / INI / TOML / nginx
config, one chunk per rule / route / object / incident / top-level block."""

from __future__ import annotations

import configparser
import json
import re
from collections.abc import Iterator
from pathlib import PurePosixPath
from typing import Any

import yaml
from srekb.ingest.markdown import ISO_DATE, SEVERITY
from srekb.ingest.text import TokenCounter, split_lines
from srekb.retrieval.errors import SkippedFile
from srekb.retrieval.types import Chunk, SourceType

INCIDENT_KEYS = {"root_cause", "resolution", "severity", "impact", "postmortem", "detected_by", "incident_id"}
INCIDENT_LABEL = "sre-incident"


class ChunkBuilder:
    """Collects chunks of one file: windows a line range to the token budget, keys stay unique."""

    def __init__(self, path: str, lines: list[str], source_type: SourceType, budget: int, count: TokenCounter) -> None:
        self.path, self.lines, self.source_type, self.budget, self.count = path, lines, source_type, budget, count
        self.chunks: list[Chunk] = []
        self._keys: dict[str, int] = {}
        self.notes: list[str] = []

    def add(self, title: str, section: str, start: int, end: int, meta: dict[str, Any] | None = None, key: str | None = None,
            source_type: SourceType | None = None) -> None:
        """Add lines start..end (1-based, inclusive), split to fit the budget."""
        start, end = self._trim(start, end)
        if end < start:
            return
        header = self.count(f"{title}: {section}") + 2
        base = key or f"{section}"
        for span in split_lines(self.lines[start - 1 : end], start, max(32, self.budget - header), self.count):
            n = self._keys.get(base, 0)
            self._keys[base] = n + 1
            self.chunks.append(
                Chunk(self.path, source_type or self.source_type, title, section, span.text, span.start, span.end, key=f"{base}#{n}", meta=dict(meta or {}))
            )

    def _trim(self, start: int, end: int) -> tuple[int, int]:
        end = min(end, len(self.lines))
        while end >= start and (not self.lines[end - 1].strip() or self.lines[end - 1].strip() in ("---", "...")):
            end -= 1
        while start <= end and not self.lines[start - 1].strip():
            start += 1
        return start, end


# ---------------------------------------------------------------------------------- YAML ---


def _lines_of(node: yaml.Node, lines: list[str]) -> tuple[int, int]:
    """1-based inclusive line range of a node.

    PyYAML's end mark sits where the *next* token starts: column 0 of the following line, or
    just after the ``- `` of the next sequence item; both mean the node ended a line earlier.
    """
    start = node.start_mark.line + 1
    end_line, col = node.end_mark.line, node.end_mark.column
    before = lines[end_line][:col] if end_line < len(lines) else ""
    end = end_line if before.strip() in ("", "-") else end_line + 1
    return start, max(start, end)


def _get(node: yaml.Node, key: str) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == key:
                return v
    return None


def _key_node(node: yaml.Node, key: str) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for k, _ in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == key:
                return k
    return None


def chunk_yaml(path: str, text: str, source_type: SourceType, budget: int, count: TokenCounter) -> tuple[list[Chunk], list[str]]:
    try:
        nodes = [n for n in yaml.compose_all(text, Loader=yaml.SafeLoader) if n is not None]
        constructor = yaml.SafeLoader("")
        values = [constructor.construct_document(n) for n in nodes]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SkippedFile(f"malformed YAML{where}: {problem}") from exc
    b = ChunkBuilder(path, text.splitlines(), source_type, budget, count)
    for node, value in zip(nodes, values, strict=True):
        _yaml_document(b, node, value)
    return b.chunks, b.notes


def _yaml_document(b: ChunkBuilder, node: yaml.Node, value: Any) -> None:
    if isinstance(value, dict) and isinstance(value.get("groups"), list):
        _prometheus_groups(b, _get(node, "groups"), value["groups"])
    elif isinstance(value, dict) and value.get("kind") and value.get("apiVersion"):
        _k8s_object(b, node, value)
    elif isinstance(value, dict) and "route" in value and ("receivers" in value or "global" in value):
        _alertmanager(b, node, value)
    elif isinstance(value, dict) and _is_incident(value):
        _incident(b, _lines_of(node, b.lines), value)
    elif isinstance(value, list) and value and all(isinstance(v, dict) and _is_incident(v) for v in value):
        for item_node, item in zip(node.value, value, strict=True):
            _incident(b, _lines_of(item_node, b.lines), item)
    else:
        _generic_yaml(b, node, value)


def _prometheus_groups(b: ChunkBuilder, groups_node: yaml.Node | None, groups: list[Any], extra: dict[str, Any] | None = None) -> None:
    if not isinstance(groups_node, yaml.SequenceNode):
        return
    for g_node, group in zip(groups_node.value, groups, strict=True):
        if not isinstance(group, dict):
            continue
        gname = str(group.get("name", ""))
        rules_node = _get(g_node, "rules")
        if not isinstance(rules_node, yaml.SequenceNode):
            continue
        for r_node, rule in zip(rules_node.value, group.get("rules") or [], strict=True):
            if not isinstance(rule, dict):
                continue
            start, end = _lines_of(r_node, b.lines)
            labels = rule.get("labels") or {}
            ann = rule.get("annotations") or {}
            if "alert" in rule:
                name, title = str(rule["alert"]), "Prometheus Alert Rules"
            else:
                name, title = str(rule.get("record", "rule")), "Prometheus Recording Rules"
            meta = {
                **(extra or {}),
                "group": gname,
                "rule": name,
                "expr": str(rule.get("expr", "")).strip(),
                "for": str(rule.get("for", "")) or None,
                "severity": labels.get("severity"),
                "summary": ann.get("summary") or ann.get("message"),
                "runbook_url": ann.get("runbook_url"),
            }
            if "alert" in rule:
                meta["alert"] = name
            for lbl in ("service", "team"):
                if labels.get(lbl):
                    meta[lbl] = labels[lbl]
            b.add(title, name, start, end, {k: v for k, v in meta.items() if v not in (None, "")}, key=f"rule:{gname}/{name}")


def _k8s_object(b: ChunkBuilder, node: yaml.Node, obj: dict[str, Any]) -> None:
    kind = str(obj.get("kind"))
    if kind == "List" and isinstance(obj.get("items"), list):
        items_node = _get(node, "items")
        if isinstance(items_node, yaml.SequenceNode):
            for n, item in zip(items_node.value, obj["items"], strict=True):
                if isinstance(item, dict):
                    _k8s_object(b, n, item)
        return
    md = obj.get("metadata") or {}
    name, ns = str(md.get("name", "")), md.get("namespace")
    labels = md.get("labels") or {}
    meta: dict[str, Any] = {"kind": kind, "name": name}
    if ns:
        meta["namespace"] = ns
    service = labels.get("app.kubernetes.io/name") or labels.get("app") or name
    if service:
        meta["service"] = str(service)
    if kind == "PrometheusRule" and isinstance((obj.get("spec") or {}).get("groups"), list):
        spec_node = _get(node, "spec")
        _prometheus_groups(b, _get(spec_node, "groups") if spec_node else None, obj["spec"]["groups"], {"k8s_name": name})
        return
    start, end = _lines_of(node, b.lines)
    section = f"{ns}/{name}" if ns else name
    b.add(f"Kubernetes {kind}", section, start, end, meta, key=f"k8s:{kind}/{section}")


def _alertmanager(b: ChunkBuilder, node: yaml.Node, cfg: dict[str, Any]) -> None:
    title = "Alertmanager Config"
    for k_node, v_node in node.value:
        key = k_node.value
        value = cfg.get(key)
        if key == "route" and isinstance(value, dict):
            _route(b, title, v_node, value, "route", k_node.start_mark.line + 1)
        elif key == "receivers" and isinstance(v_node, yaml.SequenceNode):
            for r_node, recv in zip(v_node.value, value or [], strict=True):
                name = str((recv or {}).get("name", "?"))
                s, e = _lines_of(r_node, b.lines)
                b.add(title, f"receiver {name}", s, e, {"receiver": name}, key=f"receiver:{name}")
        elif key == "inhibit_rules" and isinstance(v_node, yaml.SequenceNode):
            for i, r_node in enumerate(v_node.value, 1):
                s, e = _lines_of(r_node, b.lines)
                b.add(title, f"inhibit rule {i}", s, e, key=f"inhibit:{i}")
        else:
            s, e = k_node.start_mark.line + 1, _lines_of(v_node, b.lines)[1]
            b.add(title, key, s, e, key=f"top:{key}")


def _route(b: ChunkBuilder, title: str, node: yaml.Node, route: dict[str, Any], path: str, first_line: int) -> None:
    matchers = route.get("matchers") or [f"{k}={v}" for k, v in (route.get("match") or {}).items()] + [
        f"{k}=~{v}" for k, v in (route.get("match_re") or {}).items()
    ]
    desc = f"{path} receiver={route.get('receiver', '(inherited)')}"
    if matchers:
        desc += " matchers=" + ",".join(str(m) for m in matchers)
    start, end = first_line, _lines_of(node, b.lines)[1]
    children = _get(node, "routes")
    children_key = _key_node(node, "routes")
    if children_key is not None:
        end = children_key.start_mark.line  # the route's own lines, children chunked on their own
        if end < start:
            end = start
    meta = {"receiver": route.get("receiver"), "matchers": [str(m) for m in matchers]}
    b.add(title, desc, start, end, {k: v for k, v in meta.items() if v}, key=f"route:{path}")
    if isinstance(children, yaml.SequenceNode):
        for i, (c_node, child) in enumerate(zip(children.value, route.get("routes") or [], strict=True)):
            if isinstance(child, dict):
                _route(b, title, c_node, child, f"{path}.{i}", c_node.start_mark.line + 1)


def _generic_yaml(b: ChunkBuilder, node: yaml.Node, value: Any) -> None:
    title = PurePosixPath(b.path).name
    if isinstance(node, yaml.MappingNode) and node.value:
        for k_node, v_node in node.value:
            s, e = k_node.start_mark.line + 1, _lines_of(v_node, b.lines)[1]
            _block_or_children(b, title, str(k_node.value), s, e, v_node)
    else:
        s, e = _lines_of(node, b.lines)
        b.add(title, "(document)", s, e)


def _block_or_children(b: ChunkBuilder, title: str, section: str, s: int, e: int, v_node: yaml.Node) -> None:
    """A top-level key as one chunk, or, when it is too big, one chunk per child key."""
    text = "\n".join(b.lines[s - 1 : e])
    if b.count(text) <= b.budget or not isinstance(v_node, yaml.MappingNode):
        b.add(title, section, s, e, key=f"key:{section}")
        return
    first_child = v_node.value[0][0].start_mark.line + 1 if v_node.value else e + 1
    if first_child > s:
        b.add(title, section, s, first_child - 1, key=f"key:{section}")
    for k_node, child in v_node.value:
        cs, ce = k_node.start_mark.line + 1, _lines_of(child, b.lines)[1]
        b.add(title, f"{section}.{k_node.value}", cs, ce, key=f"key:{section}.{k_node.value}")


# ------------------------------------------------------------------------------ incidents ---


def _is_incident(d: dict[str, Any]) -> bool:
    has_id = any(k in d for k in ("id", "incident_id", "number"))
    return has_id and "title" in d and len(INCIDENT_KEYS & set(d)) >= 2


def _incident(b: ChunkBuilder, lines: tuple[int, int], rec: dict[str, Any]) -> None:
    iid = str(rec.get("incident_id") or rec.get("id") or rec.get("number"))
    meta: dict[str, Any] = {"incident_id": iid}
    date = str(rec.get("date") or rec.get("started_at") or rec.get("created_at") or "")
    d = ISO_DATE.search(date)
    if d:
        meta["date"] = d.group(0)
    sev = SEVERITY.search(str(rec.get("severity", "")))
    if sev:
        meta["severity"] = sev.group(1).upper().replace(" ", "")
    if rec.get("service"):
        meta["service"] = str(rec["service"])
    b.add(str(rec.get("title", iid)), "Incident record", lines[0], lines[1], meta, key=f"incident:{iid}", source_type=SourceType.INCIDENT)


def _github_issue(b: ChunkBuilder, lines: tuple[int, int], issue: dict[str, Any]) -> bool:
    labels = [str(lbl.get("name") if isinstance(lbl, dict) else lbl) for lbl in issue.get("labels") or []]
    if INCIDENT_LABEL not in labels:
        return False
    body = str(issue.get("body") or "")
    m = re.search(r"\b(INC-\d{4}-\d{2,5})\b", body + " " + str(issue.get("title", "")))
    iid = m.group(1) if m else f"{issue.get('number')}"
    meta: dict[str, Any] = {"incident_id": iid, "github_issue": issue.get("number"), "labels": labels}
    d = ISO_DATE.search(str(issue.get("created_at", "")))
    date_line = re.search(r"(?im)^\W*date\W*[:|]\W*(\d{4}-\d{2}-\d{2})", body)
    if date_line:
        meta["date"] = date_line.group(1)
    elif d:
        meta["date"] = d.group(0)
    for lbl in labels:
        if SEVERITY.fullmatch(lbl.upper().replace("-", "")):
            meta["severity"] = lbl.upper().replace("-", "")
        if lbl.startswith("service/"):
            meta["service"] = lbl.split("/", 1)[1]
    b.add(str(issue.get("title", iid)), f"GitHub issue #{issue.get('number')}", lines[0], lines[1], meta, key=f"issue:{issue.get('number')}",
          source_type=SourceType.INCIDENT)
    return True


# ---------------------------------------------------------------------------------- JSON ---


def _json_spans(text: str, container: str) -> Iterator[tuple[str | None, int, int]]:
    """(key or None, start char, end char) of each top-level element of a JSON array / object."""
    dec = json.JSONDecoder()
    i = text.index(container) + 1
    ws = re.compile(r"[\s,]*")
    while True:
        i = ws.match(text, i).end()  # type: ignore[union-attr]
        if i >= len(text) or text[i] in "]}":
            return
        key = None
        start = i
        if container == "{":
            key, i = dec.raw_decode(text, i)
            i = re.compile(r"\s*:\s*").match(text, i).end()  # type: ignore[union-attr]
        _, end = dec.raw_decode(text, i)
        yield key, start, end
        i = end


def _line_of(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def chunk_json(path: str, text: str, source_type: SourceType, budget: int, count: TokenCounter) -> tuple[list[Chunk], list[str]]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SkippedFile(f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from exc
    b = ChunkBuilder(path, text.splitlines(), source_type, budget, count)
    title = PurePosixPath(path).name
    if isinstance(value, list) and value:
        spans = list(_json_spans(text, "["))
        is_issues = all(isinstance(v, dict) and "number" in v and "labels" in v for v in value)
        ignored = 0
        for (_, s, e), item in zip(spans, value, strict=True):
            lines = (_line_of(text, s), _line_of(text, e - 1))
            if is_issues:
                ignored += 0 if _github_issue(b, lines, item) else 1
            elif isinstance(item, dict) and _is_incident(item):
                _incident(b, lines, item)
            else:
                b.add(title, f"[{len(b.chunks)}]", *lines)
        if ignored:
            b.notes.append(f"{ignored} issue(s) without the '{INCIDENT_LABEL}' label ignored")
    elif isinstance(value, dict):
        if _is_incident(value):
            _incident(b, (1, len(b.lines)), value)
        elif value.get("kind") and value.get("apiVersion"):
            meta = (value.get("metadata") or {})
            b.add(f"Kubernetes {value['kind']}", str(meta.get("name", "")), 1, len(b.lines), {"kind": value["kind"], "name": meta.get("name")})
        else:
            for key, s, e in _json_spans(text, "{"):
                b.add(title, str(key), _line_of(text, s), _line_of(text, e - 1), key=f"key:{key}")
    else:
        b.add(title, "(document)", 1, len(b.lines))
    return b.chunks, b.notes


# ---------------------------------------------------------------------------- INI / TOML ---

SECTION_HEADER = re.compile(r"^\s*\[+\s*([^\]]+?)\s*\]+\s*(?:[#;].*)?$")


def _by_headers(b: ChunkBuilder, title: str, before: str) -> None:
    starts: list[tuple[int, str]] = [(1, before)]
    for i, line in enumerate(b.lines, 1):
        m = SECTION_HEADER.match(line)
        if m:
            starts.append((i, f"[{m.group(1)}]"))
    for n, (s, name) in enumerate(starts):
        e = starts[n + 1][0] - 1 if n + 1 < len(starts) else len(b.lines)
        if e >= s:
            b.add(title, name, s, e, key=f"sec:{name}")


def chunk_ini(path: str, text: str, source_type: SourceType, budget: int, count: TokenCounter) -> tuple[list[Chunk], list[str]]:
    parser = configparser.ConfigParser(strict=False, interpolation=None, allow_no_value=True)
    shift = 0 if SECTION_HEADER.match(text.lstrip().split("\n", 1)[0]) else 1  # keys before any [section]
    try:
        parser.read_string("[__top__]\n" * shift + text)
    except configparser.Error as exc:
        errors = getattr(exc, "errors", [])
        detail = "; ".join(f"line {ln - shift}: {txt}" for ln, txt in errors[:3]) or str(exc).splitlines()[0]
        raise SkippedFile(f"malformed INI: {detail}") from exc
    b = ChunkBuilder(path, text.splitlines(), source_type, budget, count)
    _by_headers(b, PurePosixPath(path).name, "(global)")
    return b.chunks, b.notes


def chunk_toml(path: str, text: str, source_type: SourceType, budget: int, count: TokenCounter) -> tuple[list[Chunk], list[str]]:
    import tomllib

    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SkippedFile(f"malformed TOML: {exc}") from exc
    b = ChunkBuilder(path, text.splitlines(), source_type, budget, count)
    _by_headers(b, PurePosixPath(path).name, "(top level)")
    return b.chunks, b.notes


# ------------------------------------------------------------------ brace configs (nginx) ---


def chunk_braces(path: str, text: str, source_type: SourceType, budget: int, count: TokenCounter) -> tuple[list[Chunk], list[str]]:
    """nginx/envoy-style ``name args { ... }`` configs: one chunk per top-level block (split by
    its inner blocks when too big), each named by its block path (``http > server api.lark``)."""
    b = ChunkBuilder(path, text.splitlines(), source_type, budget, count)
    title = PurePosixPath(path).name
    blocks: list[tuple[int, int, int, str]] = []  # (start, end, depth, name)
    stack: list[tuple[int, str]] = []
    for i, raw in enumerate(b.lines, 1):
        line = raw.split("#", 1)[0]
        for ch_pos, ch in enumerate(line):
            if ch == "{":
                head = line[:ch_pos].strip() or "block"
                stack.append((i, " ".join(head.split()[:3])))
            elif ch == "}" and stack:
                s, name = stack.pop()
                blocks.append((s, i, len(stack), " > ".join([n for _, n in stack] + [name])))
    if stack:
        raise SkippedFile(f"unbalanced braces: block opened at line {stack[-1][0]} is never closed")
    covered: set[int] = set()
    for s, e, depth, name in sorted(blocks, key=lambda t: (t[2], t[0])):
        if any(ln in covered for ln in range(s, e + 1)):
            continue
        if depth == 0 or count("\n".join(b.lines[s - 1 : e])) <= budget:
            inner = [x for x in blocks if x[2] == depth + 1 and s < x[0] and x[1] < e]
            if depth == 0 and inner and count("\n".join(b.lines[s - 1 : e])) > budget:
                continue  # too big: its inner blocks become the chunks
            b.add(title, name, s, e, key=f"block:{name}")
            covered.update(range(s, e + 1))
    # Lines outside any chunked block (top-level directives, the parts of big blocks between
    # their inner blocks) still get indexed, named by the enclosing block.
    run: list[int] = []
    for i in range(1, len(b.lines) + 1):
        if i in covered or not b.lines[i - 1].strip():
            if run and i in covered:
                _leftover(b, title, blocks, run)
                run = []
            continue
        run.append(i)
    if run:
        _leftover(b, title, blocks, run)
    b.chunks.sort(key=lambda c: c.line_start)
    return b.chunks, b.notes


def _leftover(b: ChunkBuilder, title: str, blocks: list[tuple[int, int, int, str]], run: list[int]) -> None:
    enclosing = [x for x in blocks if x[0] <= run[0] <= x[1]]
    name = max(enclosing, key=lambda x: x[2])[3] if enclosing else "(top level)"
    if all(b.lines[i - 1].strip() in ("}", "};") for i in run):
        return
    b.add(title, name, run[0], run[-1], key=f"rest:{name}")
