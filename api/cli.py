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


def _settings(store: Path | None) -> Any:
    from pydantic import ValidationError
    from pydantic_settings import SettingsError
    from srekb.retrieval.settings import Settings

    overrides: dict[str, Any] = {}
    if store is not None:
        overrides["store"] = store
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(f"SRE_KB_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors())
        _fail(f"invalid settings: {problems}", EXIT_USAGE)
    except SettingsError as exc:
        _fail(f"invalid settings: {exc}", EXIT_USAGE)


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
    settings = _settings(store)
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

    settings = _settings(store)
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
        return KnowledgeBase(_settings(store))
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
    from srekb.retrieval.errors import SreKbError
    from srekb.retrieval.kb import hit_to_dict

    kb = _open_kb(store)
    try:
        result = kb.search(question, k, _parse_filter_opts(source_type, service, since, until))
    except SreKbError as exc:
        _fail(str(exc), EXIT_USAGE)
    finally:
        kb.close()
    if as_json:
        payload = {"question": result.question, "intent": result.intent.value, "hits": [hit_to_dict(h) for h in result.hits],
                   "timings_ms": {k_: round(v, 2) for k_, v in result.timings_ms.items()}}
        out.print_json(json.dumps(payload))
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
    from srekb.retrieval.errors import SreKbError

    kb = _open_kb(store)
    try:
        answer = kb.ask(question, k, _parse_filter_opts(source_type, service, since, until))
    except SreKbError as exc:
        _fail(str(exc), EXIT_USAGE)
    finally:
        kb.close()
    if as_json:
        out.print_json(json.dumps(answer.to_dict()))
        return
    out.print(answer.text, highlight=False)
    out.print()
    if answer.citation_block:
        out.print(answer.citation_block, highlight=False)
        out.print()
    mode = {"extractive": "extractive (no LLM configured: sentences quoted from the sources)",
            "generative": f"generative ({kb.settings.gemini_model})", "abstained": "abstained (evidence too weak)"}[answer.mode]
    score = f" · answerability {answer.answerability.score:.2f} ({answer.outcome})" if answer.answerability else ""
    out.print(f"[dim]intent: {answer.intent.value} · mode: {mode}{score} · {answer.timings_ms.get('total', 0):.0f} ms[/dim]", highlight=False)


@app.command("eval")
def evaluate(
    dataset: Annotated[Path, typer.Option("--dataset", help="labelled questions (JSONL)")] = Path("corpora/eval/questions.jsonl"),
    corpus: Annotated[list[Path], typer.Option("--corpus", help="corpus to ingest first (repeatable; incremental)")] = [],  # noqa: B006
    store: StoreOpt = None,
    out_dir: Annotated[
        Path, typer.Option("--out", help="where report.md / report.json / strategies.png / runs.json / qrels.json (or the tuning files) go")
    ] = Path("eval-out"),
    exclude: Annotated[list[str], typer.Option("--exclude", help="globs left out of the corpus")] = ["questions*.jsonl"],  # noqa: B006
    baseline: Annotated[
        Path | None, typer.Option("--baseline", help="an earlier report.json: deltas per metric in the report, regressions marked")
    ] = None,
    fail_on_regression: Annotated[
        bool,
        typer.Option("--fail-on-regression", help="exit 1 when a quality metric of the service's strategy, answers or ragas figures is worse "
                     "than --baseline by more than 0.005 (latency and the baseline strategies are only reported)"),
    ] = False,
    gate: Annotated[Path | None, typer.Option("--gate", help="thresholds to meet (e.g. eval/gate.json): exit 1 when one is missed")] = None,
    weights: Annotated[Path | None, typer.Option("--weights", help="evaluate (or start tuning) with the reranker weights of a tuned.json")] = None,
    judge: Annotated[
        bool, typer.Option("--judge/--no-judge", help="ragas faithfulness / answer relevancy with Gemini as judge when GOOGLE_API_KEY is set")
    ] = True,
    judge_limit: Annotated[int, typer.Option("--judge-limit", help="answered questions the LLM judge scores at most", min=0)] = 40,
    tune: Annotated[bool, typer.Option("--tune", help="tune the reranker weights instead: writes tuned.json, tune.md, tune.json, tune-state.json")] = False,
    tune_priors: Annotated[bool, typer.Option("--tune-priors", help="with --tune: tune the per-intent source priors too (over-fits)")] = False,
    resume: Annotated[
        bool | None,
        typer.Option("--resume/--restart", help="with --tune: resume from <out>/tune-state.json (default: resume when it exists and matches) or start afresh"),
    ] = None,
    max_iter: Annotated[int, typer.Option("--max-iter", help="with --tune: passes of the coordinate search at most", min=1)] = 8,
    holdout: Annotated[
        float, typer.Option("--holdout", help="with --tune: fraction of the questions held out (reported, never tuned on)", min=0.0, max=0.9)
    ] = 0.3,
    cross_corpus: Annotated[
        bool, typer.Option("--cross-corpus", help="leave one corpus out over eval/corpora.json: fit on the others, report on each held-out "
                           "corpus, the worst and the mean, beside the naive hybrid (one store per corpus under --store, default .srekb-eval)")
    ] = False,
    refit: Annotated[
        bool, typer.Option("--refit/--no-refit", help="with --cross-corpus: fit the model per fold (default), or measure the shipped model as it is")
    ] = True,
    write_model: Annotated[
        bool, typer.Option("--write-model", help="with --cross-corpus: fit on every corpus and write the shipped model (retrieval/data/model.json)")
    ] = False,
) -> None:
    """Evaluate retrieval strategies and answers on labelled questions (report.md, report.json,
    strategies.png), or tune the reranker weights with --tune (tuned.json)."""
    from srekb.eval.compare import compare
    from srekb.eval.report import gate_failures, load, run, to_markdown, write
    from srekb.eval.tune import load_weights, run_tuning
    from srekb.ingest.pipeline import Ingestor
    from srekb.retrieval.errors import SreKbError
    from srekb.retrieval.kb import KnowledgeBase
    from srekb.retrieval.models.embedding import make_embedder
    from srekb.retrieval.search.rerank import FeatureReranker
    from srekb.retrieval.store import open_store

    if not tune and (tune_priors or resume is not None):
        _fail("--tune-priors, --resume and --restart only apply with --tune", EXIT_USAGE)
    if tune and (baseline or gate or fail_on_regression):
        _fail("--baseline, --gate and --fail-on-regression apply to an evaluation, not to --tune", EXIT_USAGE)
    if fail_on_regression and baseline is None:
        _fail("--fail-on-regression needs --baseline OLD/report.json", EXIT_USAGE)

    def read_json(path: Path, what: str) -> Any:
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            _fail(f"cannot read the {what} {path}: {exc.strerror or exc}", EXIT_USAGE)
        except ValueError as exc:
            _fail(f"the {what} {path} is not valid JSON ({exc})", EXIT_USAGE)

    old_report = read_json(baseline, "baseline report") if baseline else None
    if old_report is not None and not (isinstance(old_report, dict) and isinstance(old_report.get("strategies"), dict)):
        _fail(f"{baseline} is not a report.json written by `srekb eval` (no strategies)", EXIT_USAGE)
    thresholds = read_json(gate, "gate file") if gate else None
    if cross_corpus:
        _cross_corpus(store, out_dir, thresholds, refit=refit, write_model=write_model)
        return
    if write_model:
        _fail("--write-model applies with --cross-corpus", EXIT_USAGE)
    settings = _settings(store)
    try:
        tuned = load_weights(weights) if weights else None
        questions = load(dataset)
        if corpus:
            embedder = make_embedder(settings)
            st = open_store(settings, embedder.dim, embedder.name)
            try:
                rep = Ingestor(st, embedder, settings).run(corpus, exclude=exclude)
            finally:
                st.close()
            console.print(f"corpus: {len(rep.added)} added, {len(rep.updated)} updated, {len(rep.unchanged)} unchanged, "
                          f"{len(rep.skipped)} skipped", highlight=False)
        kb = KnowledgeBase(settings, query_cache_size=0)  # every strategy's latency pays for its own query embedding
    except SreKbError as exc:
        _fail(str(exc))
    if tuned is not None:
        if isinstance(kb.reranker, FeatureReranker):
            kb.reranker.weights = tuned
        else:
            kb.close()
            _fail("--weights applies to the feature reranker only", EXIT_USAGE)
    title = f"sre-kb evaluation: {dataset}"
    if tune:
        try:
            result = run_tuning(
                kb, questions, out_dir, holdout=holdout, max_iter=max_iter, tune_priors=tune_priors, resume=resume,
                progress=lambda i, tr, ho: console.print(f"[dim]pass {i}: train {tr:.4f} holdout {ho:.4f}[/dim]", highlight=False),
            )
        except SreKbError as exc:
            _fail(str(exc))
        finally:
            kb.close()
        out.print((out_dir / "tune.md").read_text(), highlight=False)
        if result.get("warning"):
            console.print(f"[yellow]warning:[/yellow] {result['warning']}", highlight=False)
        console.print(f"tuned weights written to {out_dir}/tuned.json (state {out_dir}/tune-state.json)", highlight=False)
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from srekb.eval.runner import STRATEGY_NAMES

    total = len(STRATEGY_NAMES) * sum(q.answerable for q in questions) + len(questions)
    try:
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=console, transient=True, disable=not console.is_terminal) as bar:
            task = bar.add_task("evaluating", total=total)
            report = run(
                kb, questions,
                progress=lambda name: bar.update(task, description=f"evaluating {name}"),
                judge=None if judge else False, judge_limit=judge_limit,
                tick=lambda: bar.advance(task),
            )
    finally:
        kb.close()
    if tuned is not None:
        report["rerank_weights_from"] = str(weights)
    if old_report is not None:
        report["baseline"] = compare(report, old_report, str(baseline))
    failures = gate_failures(report, thresholds) if thresholds else []
    if thresholds:
        report["gate"] = {"path": str(gate), "failures": failures}
    write(report, out_dir, title, questions)
    out.print(to_markdown(report, title), highlight=False)
    console.print(f"report written to {out_dir}/report.md, report.json and strategies.png", highlight=False)
    code = EXIT_OK
    if failures:
        console.print("[red]gate failed:[/red] " + "; ".join(failures), highlight=False)
        code = EXIT_ERROR
    if fail_on_regression and report["baseline"]["gating_regressions"]:
        console.print("[red]regressions against the baseline:[/red] " + "; ".join(report["baseline"]["gating_regressions"]), highlight=False)
        code = EXIT_ERROR
    if code != EXIT_OK:
        raise typer.Exit(code)


def _cross_corpus(store: Path | None, out_dir: Path, thresholds: Any, *, refit: bool, write_model: bool) -> None:
    """``srekb eval --cross-corpus``: the held-out table (and the shipped model with --write-model)."""
    from srekb.eval.cross import gate_failures, run_cross_corpus, to_markdown
    from srekb.retrieval.errors import SreKbError

    settings = _settings(None)
    root = store or Path(".srekb-eval")
    try:
        with console.status("cross-corpus evaluation") as status:
            report = run_cross_corpus(settings, root, fit=refit, write_model=write_model,
                                      progress=lambda what: status.update(f"cross-corpus evaluation: {what}"))
    except SreKbError as exc:
        _fail(str(exc))
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "cross-corpus.json").write_text(json.dumps(report, indent=1, default=str))
    md = to_markdown(report)
    (out_dir / "cross-corpus.md").write_text(md)
    out.print(md, highlight=False)
    console.print(f"report written to {out_dir}/cross-corpus.md and cross-corpus.json", highlight=False)
    if report.get("model_written"):
        console.print(f"model written to {report['model_written']}", highlight=False)
    failures = gate_failures(report, thresholds.get("cross_corpus", {})) if isinstance(thresholds, dict) else []
    if failures:
        console.print("[red]gate failed:[/red] " + "; ".join(failures), highlight=False)
        raise typer.Exit(EXIT_ERROR)


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

    settings = _settings(store)
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
