"""Find files under the given roots, refuse bad ones with a one-line reason, detect the source
type from path and content, and dispatch to the right chunker."""

from __future__ import annotations

import fnmatch
import hashlib
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from srekb.ingest.markdown import chunk_html, chunk_markdown, chunk_plain
from srekb.ingest.structured import chunk_braces, chunk_ini, chunk_json, chunk_toml, chunk_yaml
from srekb.ingest.text import TokenCounter
from srekb.retrieval.errors import IngestError, SkippedFile
from srekb.retrieval.types import Chunk, SourceType

MARKDOWN = {".md", ".markdown", ".mdx"}
HTML = {".html", ".htm"}
TEXT = {".txt", ".rst", ".adoc", ".log"}
YAML = {".yml", ".yaml"}
JSON = {".json"}
INI = {".ini", ".cfg", ".conf.ini", ".properties"}
TOML = {".toml"}
BRACES = {".conf", ".nginx"}
KNOWN = MARKDOWN | HTML | TEXT | YAML | JSON | INI | TOML | BRACES
# Files that are never documents: repository metadata, licences, lock files.
IGNORED_NAMES = {"LICENSE", "LICENSE.txt", "LICENSE.md", "NOTICE", "SOURCES.md", ".gitignore", ".gitattributes"}
IGNORED_DIRS = {".git", ".hg", ".svn", "node_modules", "__pycache__", ".venv", "LICENSES"}

# A folder named for runbooks, alone or as a word of its name (runbooks/, sre_playbooks/,
# prometheus-operator-runbooks/).
RUNBOOK_HINT = re.compile(r"(^|/)([\w.-]*[_.-])?(runbooks?|playbooks?)([_.-][\w.-]*)?/", re.I)
INCIDENT_HINT = re.compile(r"(^|/)(incidents?|post-?mortems?|outages?|retros?)(/|$)", re.I)
RUNBOOK_SECTIONS = re.compile(r"^#{1,3}\s+(symptoms?|diagnosis|mitigation|remediation|escalation|meaning)\b", re.I | re.M)
INCIDENT_SECTIONS = re.compile(r"^#{1,3}\s+(root cause|timeline|impact|action items|lessons learned)\b", re.I | re.M)


@dataclass
class SourceFile:
    """A file accepted for ingestion: its text, hash and detected type."""

    path: str  # relative to the root, POSIX style: what citations show
    root: Path
    text: str
    sha256: str
    size: int
    source_type: SourceType


@dataclass
class Skip:
    path: str
    reason: str


@dataclass
class Discovery:
    files: list[tuple[str, Path, Path]] = field(default_factory=list)  # (rel path, abs path, root)
    skipped: list[Skip] = field(default_factory=list)
    excluded: list[str] = field(default_factory=list)
    scopes: list[str] = field(default_factory=list)  # the absolute paths ingested: what a missing file is deleted from


def discover(
    roots: list[Path], allowed_roots: list[Path] | None = None, exclude: list[str] | None = None, known_roots: Iterable[str] = ()
) -> Discovery:
    """Every candidate file under the roots (a root may be a file), symlink loops refused;
    ``exclude`` globs match the path relative to its root (or just the file name).

    A root inside an already ingested root (``known_roots``) keeps that root's paths: ingesting
    ``kb/runbooks`` after ``kb`` keys a file ``runbooks/disk.md`` again, not ``disk.md``, so
    the same file is never indexed twice under two names."""
    found = Discovery()
    known = sorted((Path(k) for k in known_roots), key=lambda k: len(k.parts))  # outermost first
    for root in roots:
        root_abs = Path(os.path.abspath(root))
        if not root_abs.exists():
            raise IngestError(f"no such file or directory: {root}: check the path")
        if allowed_roots and not any(_within(root_abs.resolve(), a.resolve()) for a in allowed_roots):
            raise IngestError(f"{root} is outside the allowed roots ({', '.join(map(str, allowed_roots))}): set SRE_KB_ALLOWED_ROOTS")
        base = next((k for k in known if k != root_abs and _within(root_abs, k)), root_abs.parent if root_abs.is_file() else root_abs)
        prefix = "" if base == root_abs else root_abs.relative_to(base).as_posix() + "/"
        found.scopes.append(str(root_abs))
        if root_abs.is_file():
            found.files.append((root_abs.relative_to(base).as_posix(), root_abs, base))
            continue
        real_root = root_abs.resolve()
        for dirpath, dirnames, filenames in os.walk(root_abs, followlinks=False):
            dirnames[:] = sorted(d for d in dirnames if d not in IGNORED_DIRS and not d.startswith("."))
            for d in list(dirnames):
                full = Path(dirpath) / d
                if full.is_symlink():
                    dirnames.remove(d)
                    rel = prefix + full.relative_to(root_abs).as_posix()
                    target = full.resolve()
                    if _within(target, real_root):
                        found.skipped.append(Skip(rel, "symlink loop: the directory links back into the tree"))
                    else:
                        found.skipped.append(Skip(rel, "symlinked directory not followed: pass its target as its own PATH"))
            for name in sorted(filenames):
                if name in IGNORED_NAMES or name.startswith("."):
                    continue
                full = Path(dirpath) / name
                local = full.relative_to(root_abs).as_posix()
                rel = prefix + local
                if exclude and any(fnmatch.fnmatch(local, g) or fnmatch.fnmatch(name, g) for g in exclude):
                    found.excluded.append(rel)
                    continue
                if full.is_symlink():
                    try:
                        target = full.resolve(strict=True)
                    except (OSError, RuntimeError):
                        found.skipped.append(Skip(rel, "broken or looping symlink"))
                        continue
                    if not _within(target, real_root):
                        found.skipped.append(Skip(rel, "symlink points outside the ingested tree"))
                        continue
                found.files.append((rel, full, base))
    return found


def _within(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
        return True
    except ValueError:
        return False


def read_source(rel: str, full: Path, root: Path, max_bytes: int, forced: SourceType | None = None) -> SourceFile:
    """Read and validate one file; raises :class:`SkippedFile` with the reason."""
    suffix = _suffix(rel)
    if suffix not in KNOWN and forced is None:
        raise SkippedFile(f"unknown file type {suffix or '(no extension)'!r}: pass --type runbook|incident|config|doc to force it")
    try:
        size = full.stat().st_size
        if size > max_bytes:
            raise SkippedFile(f"file is {size:,} bytes, over the {max_bytes:,}-byte limit (raise SRE_KB_MAX_FILE_BYTES)")
        if size == 0:
            raise SkippedFile("empty file")
        with open(full, "rb") as fh:
            data = fh.read(max_bytes + 1)
    except PermissionError as exc:
        raise SkippedFile(f"unreadable: permission denied ({exc.strerror})") from exc
    except IsADirectoryError as exc:
        raise SkippedFile("not a regular file") from exc
    except OSError as exc:
        raise SkippedFile(f"unreadable: {exc.strerror or exc}") from exc
    if b"\x00" in data[:8192]:
        raise SkippedFile("binary file (contains NUL bytes): only text documents are ingested")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise SkippedFile(f"not UTF-8 (byte 0x{data[exc.start]:02x} on line {line}): convert it, e.g. iconv -f latin1 -t utf-8") from exc
    if not text.strip():
        raise SkippedFile("empty file (only whitespace)")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    source_type = forced or detect_type(rel, text)
    return SourceFile(rel, root, text, hashlib.sha256(data).hexdigest(), size, source_type)


def _suffix(path: str) -> str:
    name = PurePosixPath(path).name.lower()
    if name.endswith(".conf.ini"):
        return ".conf.ini"
    if name.endswith((".md.erb", ".markdown.erb")):  # Middleman/Rails pages: Markdown with an ERB helper line or two
        return ".md"
    return PurePosixPath(name).suffix


def detect_type(path: str, text: str) -> SourceType:
    """Runbook / incident / config / doc from the path first, then the content."""
    suffix = _suffix(path)
    if INCIDENT_HINT.search(path):
        return SourceType.INCIDENT
    if RUNBOOK_HINT.search(path) and suffix in MARKDOWN | HTML | TEXT:
        return SourceType.RUNBOOK
    if suffix in YAML | JSON:
        head = text[:20000]
        if re.search(r'"labels"\s*:', head) and re.search(r'"sre-incident"', text):
            return SourceType.INCIDENT
        if re.search(r"(?m)^\s*\"?(root_cause|incident_id)\"?\s*:", head) and not re.search(r"(?m)^\s*(groups|apiVersion)\s*:", head):
            return SourceType.INCIDENT
        return SourceType.CONFIG
    if suffix in INI | TOML | BRACES:
        return SourceType.CONFIG
    if suffix in MARKDOWN | HTML | TEXT:
        if len(INCIDENT_SECTIONS.findall(text)) >= 2:
            return SourceType.INCIDENT
        if len(RUNBOOK_SECTIONS.findall(text)) >= 2:
            return SourceType.RUNBOOK
    return SourceType.DOC


def chunk_source(src: SourceFile, budget: int, count: TokenCounter) -> tuple[list[Chunk], list[str]]:
    """The chunks of one accepted file and any notes (e.g. ignored records); raises SkippedFile."""
    suffix = _suffix(src.path)
    args = (src.path, src.text, src.source_type, budget, count)
    if suffix in YAML:
        chunks, notes = chunk_yaml(*args)
    elif suffix in JSON:
        chunks, notes = chunk_json(*args)
    elif suffix in INI:
        chunks, notes = chunk_ini(*args)
    elif suffix in TOML:
        chunks, notes = chunk_toml(*args)
    elif suffix in BRACES:
        chunks, notes = chunk_braces(*args)
    elif suffix in HTML:
        chunks, notes = chunk_html(*args), []
    elif suffix in MARKDOWN:
        chunks, notes = chunk_markdown(*args), []
    else:
        chunks, notes = chunk_plain(*args), []
    if not chunks:
        raise SkippedFile("no indexable content (nothing but headings, comments or empty records)")
    return chunks, notes


def iter_sources(found: Discovery, max_bytes: int, forced: SourceType | None) -> Iterator[SourceFile | Skip]:
    for rel, full, root in found.files:
        try:
            yield read_source(rel, full, root, max_bytes, forced)
        except SkippedFile as exc:
            yield Skip(rel, exc.reason)
