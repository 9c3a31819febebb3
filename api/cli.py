"""``srekb``: the command line. Thin: every command is a call into the library.

Heavy imports (the encoder, the engine) happen inside the commands, so ``--help`` is instant.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from srekb.eval.cli import evaluate, load_settings

app = typer.Typer(
    help="sre-kb: answers on-call questions from your runbooks, incidents, configs and docs, with exact citations.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)  # citations and paths must never be wrapped mid-line

StoreOpt = Annotated[Path | None, typer.Option("--store", help="embedded store directory [env SRE_KB_STORE, default .srekb]")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print one JSON object instead of tables")]

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_SKIPPED = 0, 1, 2, 3


class _KeyValueFormatter(logging.Formatter):
    """``ts level logger message key=value ...``: structured, greppable logs on stderr."""

    _skip = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        base = f"{self.formatTime(record)} {record.levelname.lower()} {record.name} {record.getMessage()}"
        extra = " ".join(f"{k}={v}" for k, v in record.__dict__.items() if k not in self._skip)
        return f"{base} {extra}".rstrip()


def _setup_logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_KeyValueFormatter())
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, handlers=[handler], force=True)
    for noisy in ("httpx", "httpcore", "sentence_transformers", "transformers"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="log progress details to stderr")] = False) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    _setup_logging(verbose)


def _fail(message: str, code: int = EXIT_ERROR) -> None:
    console.print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(code)


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="files or directories to ingest", show_default=False)],
    store: StoreOpt = None,
    source_type: Annotated[
        str | None, typer.Option("--type", help="force the source type of every file: runbook|incident|config|doc")
    ] = None,
    exclude: Annotated[list[str], typer.Option("--exclude", help="glob of paths to leave out (repeatable), e.g. 'questions*.jsonl'")] = [],  # noqa: B006
    keep_missing: Annotated[bool, typer.Option("--keep-missing", help="do not delete files that disappeared from the tree")] = False,
    rebuild: Annotated[bool, typer.Option("--rebuild", help="delete the embedded store's index first and ingest from nothing "
                                          "(for a store reported damaged)")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Ingest runbooks, incidents, configs and docs into the store (incremental)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from srekb.ingest.pipeline import Ingestor
    from srekb.retrieval.errors import SreKbError
    from srekb.retrieval.models.embedding import make_embedder
    from srekb.retrieval.store import open_store
    from srekb.retrieval.types import SourceType

    forced = None
    if source_type is not None:
        try:
            forced = SourceType(source_type)
        except ValueError:
            _fail(f"unknown --type {source_type!r}: use one of runbook, incident, config, doc", EXIT_USAGE)
    settings = load_settings(store)
    if rebuild:
        missing = [str(p) for p in paths if not p.exists()]
        if missing:  # the index is only deleted when there is something to rebuild it from
            _fail(f"no such path {missing[0]}: --rebuild needs the sources to ingest", EXIT_USAGE)
        if settings.qdrant_url:
            _fail("--rebuild deletes an embedded store; for a Qdrant server, ingest into a new SRE_KB_COLLECTION", EXIT_USAGE)
        from srekb.retrieval.store import remove_embedded

        remove_embedded(Path(settings.store))
    try:
        embedder = make_embedder(settings)
        kb_store = open_store(settings, embedder.dim, embedder.name)
    except SreKbError as exc:
        _fail(str(exc))
    try:
        with Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=console, transient=True, disable=as_json or not console.is_terminal,
        ) as bar:
            tasks: dict[str, Any] = {}

            def progress(phase: str, done: int, total: int) -> None:
                label = {"scan": "scanning files", "embed": "embedding chunks"}[phase]
                if phase not in tasks:
                    tasks[phase] = bar.add_task(label, total=total)
                bar.update(tasks[phase], completed=done, total=total)

            report = Ingestor(kb_store, embedder, settings).run(
                paths, forced, progress, delete_missing=not keep_missing, exclude=exclude
            )
    except SreKbError as exc:
        _fail(str(exc))
    finally:
        kb_store.close()
    if as_json:
        out.print_json(json.dumps(report.to_dict()))
    else:
        table = Table(title=f"ingested into {settings.qdrant_url or settings.store}", show_header=True)
        table.add_column("files")
        table.add_column("count", justify="right")
        for name in ("added", "updated", "unchanged", "deleted", "skipped"):
            table.add_row(name, str(len(getattr(report, name))))
        table.add_row("chunks written", str(report.chunks_written))
        table.add_row("seconds", f"{report.seconds:.1f}")
        out.print(table)
        for skip in report.skipped:
            out.print(f"[yellow]skipped[/yellow] {skip.path}: {skip.reason}", highlight=False)
        for note in report.notes:
            out.print(f"[dim]note[/dim] {note}", highlight=False)
    if report.skipped:
        raise typer.Exit(EXIT_SKIPPED)


@app.command()
def sources(store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """List the files in the store with their type, hash, chunk count and ingest time."""
    from srekb.retrieval.errors import SreKbError
    from srekb.retrieval.store import open_store

    settings = load_settings(store)
    try:
        kb_store = open_store(settings, *_store_identity(settings), create=False)
    except SreKbError as exc:
        _fail(str(exc))
    try:
        records = sorted(kb_store.sources().values(), key=lambda r: r.path)
    finally:
        kb_store.close()
    if as_json:
        rows = [{**r.__dict__, "source_type": r.source_type.value} for r in records]
        out.print_json(json.dumps(rows))
        return
    table = Table(title=f"{len(records)} sources in {settings.qdrant_url or settings.store}")
    for col in ("path", "type", "chunks", "sha256", "ingested_at"):
        table.add_column(col)
    for r in records:
        table.add_row(r.path, r.source_type.value, str(r.chunks), r.sha256[:12], r.ingested_at)
    out.print(table)


def _open_kb(store: Path | None) -> Any:
    from srekb.retrieval.errors import SreKbError
    from srekb.retrieval.kb import KnowledgeBase

    try:
        return KnowledgeBase(load_settings(store))
    except SreKbError as exc:
        _fail(str(exc))


def _parse_filter_opts(source_type: list[str], service: list[str], since: str | None, until: str | None) -> dict[str, Any] | None:
    filters: dict[str, Any] = {}
    if source_type:
        filters["source_types"] = source_type
    if service:
        filters["services"] = service
    if since:
        filters["date_from"] = since
    if until:
        filters["date_to"] = until
    return filters or None


TypeFilter = Annotated[list[str], typer.Option("--source-type", help="only these source types (repeatable): runbook|incident|config|doc")]
ServiceFilter = Annotated[list[str], typer.Option("--service", help="only chunks of this service (repeatable)")]
SinceOpt = Annotated[str | None, typer.Option("--since", help="incidents on or after this date (YYYY-MM-DD)")]
UntilOpt = Annotated[str | None, typer.Option("--until", help="incidents on or before this date (YYYY-MM-DD)")]


@app.command()
def search(
    question: Annotated[str, typer.Argument(help="what to look for", show_default=False)],
    store: StoreOpt = None,
    k: Annotated[int, typer.Option("--k", help="number of results (1-100)")] = 10,
    source_type: TypeFilter = [],  # noqa: B006
    service: ServiceFilter = [],  # noqa: B006
    since: SinceOpt = None,
    until: UntilOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Retrieval only: the ranked chunks for a question, with scores (no answer)."""
    from srekb.api.schemas import SearchResponse
    from srekb.retrieval.errors import SreKbError

    kb = _open_kb(store)
    try:
        result = kb.search(question, k, _parse_filter_opts(source_type, service, since, until))
    except SreKbError as exc:
        _fail(str(exc), EXIT_USAGE)
    finally:
        kb.close()
    if as_json:
        out.print_json(json.dumps(SearchResponse.of(result).model_dump()))
        return
    out.print(f"[bold]intent:[/bold] {result.intent.value}", highlight=False)
    for n, h in enumerate(result.hits, 1):
        c = h.chunk
        out.print(f"{n:2d}. {h.score:6.3f}  {kb.formatter.label(c)}  [dim]L{c.line_start}-{c.line_end}[/dim]", highlight=False)


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="your question", show_default=False)],
    store: StoreOpt = None,
    k: Annotated[int | None, typer.Option("--k", help="number of sources retrieved (1-100)")] = None,
    source_type: TypeFilter = [],  # noqa: B006
    service: ServiceFilter = [],  # noqa: B006
    since: SinceOpt = None,
    until: UntilOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Answer a question from the knowledge base, with citations (or say it cannot)."""
    from srekb.api.schemas import AskResponse
    from srekb.retrieval.errors import SreKbError

    kb = _open_kb(store)
    try:
        answer = kb.ask(question, k, _parse_filter_opts(source_type, service, since, until))
    except SreKbError as exc:
        _fail(str(exc), EXIT_USAGE)
    finally:
        kb.close()
    if as_json:
        out.print_json(json.dumps(AskResponse.of(answer).without_session()))
        return
    # A terminal gets paragraphs wrapped at its width; a pipe one line per paragraph. Never cropped.
    out.print(_answer_markdown(answer.text, code_marks=out.color_system is None or out.no_color), soft_wrap=not out.is_terminal, crop=False)
    out.print()
    if answer.citation_block:
        out.print(answer.citation_block, highlight=False, markup=False, emoji=False)
        out.print()
    score = f" · answerability {answer.answerability.score:.2f} ({answer.outcome})" if answer.answerability else ""
    took = f"{answer.timings_ms.get('total', 0):.0f} ms"
    out.print(f"intent: {answer.intent.value} · mode: {_answer_mode(answer, kb)}{score} · {took}", style="dim", highlight=False, markup=False, emoji=False)
    for note in _answer_notes(answer):
        out.print(note, style="yellow", highlight=False, markup=False, emoji=False)


def _answer_mode(answer: Any, kb: Any) -> str:
    """The footer's mode: which model wrote the answer, or that it was quoted from the sources."""
    if answer.mode == "generative":
        return f"generative · answered by {answer.backend or (kb.llm.name if kb.llm else 'a custom answerer')}"
    if answer.mode == "extractive":
        return "extractive (quoted from the sources)"
    return f"abstained ({answer.backend} found no answer in the sources)" if answer.backend else "abstained (evidence too weak)"


def _answer_notes(answer: Any) -> list[str]:
    """Warnings under the footer: a configured model that failed, sentences removed as unsupported."""
    notes = []
    if answer.llm_error:
        if answer.backend:
            notes.append(f"a model failed before {answer.backend} answered: {answer.llm_error}")
        elif answer.mode == "extractive":
            notes.append(f"model failed: {answer.llm_error}; answered extractively")
        else:
            notes.append(f"model failed: {answer.llm_error}")
    if answer.unsupported:
        n = answer.unsupported
        notes.append(f"{n} unsupported sentence{'' if n == 1 else 's'} removed (no source supports {'it' if n == 1 else 'them'})")
    return notes


def _answer_markdown(text: str, code_marks: bool = False) -> Any:
    """The answer's Markdown as a rich renderable, readable as plain text when piped: numbered
    lists keep their numbers ("2. "), code blocks come out verbatim (not wrapped, cropped or
    padded, so they copy and paste), raw HTML and ``<placeholders>`` stay text, links show their URL.
    ``code_marks`` keeps the backticks of inline code (without colours nothing else marks where a
    command ends). rich.markdown is imported here, not at the top, so ``--help`` stays fast."""
    import re

    from markdown_it import MarkdownIt
    from rich.markdown import CodeBlock, Heading, ListItem, Markdown
    from rich.segment import Segment
    from rich.syntax import Syntax

    class Code(CodeBlock):
        def __rich_console__(self, console: Any, options: Any) -> Any:
            code = Syntax(str(self.text).rstrip("\n"), self.lexer_name, theme=self.theme, background_color="default")
            yield from console.render(code, options.update(no_wrap=True, overflow="ignore"))

    class Title(Heading):
        def __rich_console__(self, console: Any, options: Any) -> Any:
            self.text.justify = "default"  # rich boxes and centres headings; an answer's are plain bold lines
            yield self.text

    class Item(ListItem):
        def _prefixed(self, console: Any, options: Any, first: str, style_name: str) -> Any:
            # rich crops an item's lines to the width (cutting code); this only indents them.
            style = console.get_style(style_name, default="none")
            body = console.render(self.elements, options.update(width=max(options.max_width - len(first), 20)))
            for n, line in enumerate(Segment.split_lines(body)):
                if n == 0 or line:
                    yield Segment(first if n == 0 else " " * len(first), style)
                yield from line
                yield Segment.line()

        def render_bullet(self, console: Any, options: Any) -> Any:
            yield from self._prefixed(console, options, "• ", "markdown.item.bullet")

        def render_number(self, console: Any, options: Any, number: int, last_number: int) -> Any:
            width = len(str(last_number - 1)) + 1  # rich passes one past the last number
            yield from self._prefixed(console, options, f"{number}.".rjust(width) + " ", "markdown.item.number")

    class AnswerMarkdown(Markdown):
        elements = {**Markdown.elements, "fence": Code, "code_block": Code, "heading_open": Title, "list_item_open": Item}

    md = AnswerMarkdown(text, justify="default", hyperlinks=False)
    md.parsed = MarkdownIt("commonmark", {"html": False}).enable("strikethrough").enable("table").parse(text)
    if code_marks:
        for token in md.parsed:
            for child in token.children or []:
                if child.type == "code_inline":  # a fence longer than any run of backticks inside
                    fence = "`" * (max(map(len, re.findall("`+", child.content)), default=0) + 1)
                    child.content = f"{fence}{child.content}{fence}"
    return md


# The evaluation's command lives in srekb.eval (which imports nothing from srekb.api), so that
# `python -m srekb.eval` runs the same command.
app.command("eval")(evaluate)


LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@app.command()
def serve(
    store: StoreOpt = None,
    host: Annotated[str, typer.Option("--host", help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="port to listen on")] = 8000,
) -> None:
    """Serve the HTTP API (it owns the embedded store while it runs)."""
    import uvicorn
    from srekb.api.app import create_app
    from srekb.retrieval.errors import SreKbError
    from srekb.retrieval.kb import KnowledgeBase

    settings = load_settings(store)
    if "onnx_threads" not in settings.model_fields_set:
        # A server encodes many questions at once: one encoder thread each keeps both cores busy
        # (measured: /v1/search 136 -> 154 req/s); SRE_KB_ONNX_THREADS still wins when set.
        settings = settings.model_copy(update={"onnx_threads": 1})
    if host not in LOOPBACK and not settings.api_keys and not settings.allow_insecure:
        _fail(f"refusing to serve on {host} without API keys: set SRE_KB_API_KEYS='[\"...\"]' "
              "(or SRE_KB_ALLOW_INSECURE=true on a trusted network)", EXIT_USAGE)
    try:
        kb = KnowledgeBase(settings)
    except SreKbError as exc:
        _fail(str(exc))
    try:
        uvicorn.Server(server_config(create_app(settings, kb), settings, host, port)).run()
    finally:
        kb.close()


def server_config(app: Any, settings: Any, host: str, port: int) -> Any:
    """How `srekb serve` runs uvicorn. Its 5 s keep-alive default closed idle connections that
    client pools were about to reuse: a request sent as the server closed got a reset (9 in
    27,676 at 32 clients, nothing in the server log)."""
    import uvicorn

    return uvicorn.Config(
        app, host=host, port=port, log_level="info", timeout_keep_alive=settings.keep_alive_s, backlog=settings.backlog,
        timeout_graceful_shutdown=8,  # a stop finishes inside Docker's 10 s grace period, even under load
    )


def _store_identity(settings: Any) -> tuple[int, str]:
    """(dim, model) the store was built with, read from the embedded store so listing it needs
    no model; a server store is checked against the configured model."""
    if settings.qdrant_url:
        from srekb.retrieval.models.embedding import make_embedder

        embedder = make_embedder(settings)
        return embedder.dim, embedder.name
    meta_path = Path(settings.store) / "store.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    return int(meta.get("dim", 384)), str(meta.get("model", ""))


if __name__ == "__main__":
    app()
