"""``srekb eval`` (and ``python -m srekb.eval``): parse the options, call
:func:`srekb.eval.report.run_evaluation`, print what it returns.

The command lives with the evaluation so that eval imports nothing from the API package; the
``srekb`` CLI registers it as its ``eval`` command. Heavy imports happen inside the command, so
``--help`` is instant."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console

console = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)  # citations and paths must never be wrapped mid-line

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2


def _fail(message: str, code: int = EXIT_ERROR) -> NoReturn:
    console.print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(code)


def load_settings(store: Path | None) -> Any:
    """The settings, the store overridden; invalid ones end the command (any `srekb` command) with exit 2 and what to fix."""
    from pydantic import ValidationError
    from pydantic_settings import SettingsError
    from srekb.retrieval import Settings

    overrides: dict[str, Any] = {"store": store} if store is not None else {}
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        _fail("invalid settings: " + "; ".join(f"SRE_KB_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors()), EXIT_USAGE)
    except SettingsError as exc:
        _fail(f"invalid settings: {exc}", EXIT_USAGE)


def evaluate(
    dataset: Annotated[Path, typer.Option("--dataset", help="labelled questions (JSONL)")] = Path("corpora/eval/questions.jsonl"),
    corpus: Annotated[list[Path], typer.Option("--corpus", help="corpus to ingest first (repeatable; incremental)")] = [],  # noqa: B006
    store: Annotated[Path | None, typer.Option("--store", help="embedded store directory [env SRE_KB_STORE, default .srekb]")] = None,
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
        bool, typer.Option("--judge/--no-judge", help="ragas faithfulness / answer relevancy judged by the SRE_KB_LLM_JUDGE model(s)")
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
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from srekb.eval.report import EvalHooks, EvalUsageError, run_evaluation
    from srekb.retrieval import SreKbError

    # With --cross-corpus, --store is the root of the per-corpus stores, not the settings' store.
    settings = load_settings(None if cross_corpus else store)
    if cross_corpus:
        live: Any = console.status("cross-corpus evaluation")
        hooks = EvalHooks(stage=lambda what: live.update(f"cross-corpus evaluation: {what}"))
    else:
        live = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=console, transient=True, disable=not console.is_terminal)
        task: list[Any] = []
        hooks = EvalHooks(
            note=lambda line: console.print(line, highlight=False),
            tune_pass=lambda i, tr, ho: console.print(f"[dim]pass {i}: train {tr:.4f} holdout {ho:.4f}[/dim]", highlight=False),
            start=lambda total: task.append(live.add_task("evaluating", total=total)),
            stage=lambda name: live.update(task[0], description=f"evaluating {name}"),
            tick=lambda: live.advance(task[0]),
        )
    try:
        with live:
            result = run_evaluation(
                settings, dataset, out_dir, corpus=corpus, exclude=exclude, baseline=baseline, fail_on_regression=fail_on_regression,
                gate=gate, weights=weights, judge=judge, judge_limit=judge_limit, tune=tune, tune_priors=tune_priors, resume=resume,
                max_iter=max_iter, holdout=holdout, cross_corpus=cross_corpus, cross_root=store or Path(".srekb-eval"), refit=refit,
                write_model=write_model, hooks=hooks,
            )
    except EvalUsageError as exc:
        _fail(str(exc), EXIT_USAGE)
    except SreKbError as exc:
        _fail(str(exc))
    out.print(result.markdown, highlight=False)
    if result.warning:
        console.print(f"[yellow]warning:[/yellow] {result.warning}", highlight=False)
    for note in result.notes:
        console.print(note, highlight=False)
    if result.gate_failures:
        console.print("[red]gate failed:[/red] " + "; ".join(result.gate_failures), highlight=False)
    if result.regressions:
        console.print("[red]regressions against the baseline:[/red] " + "; ".join(result.regressions), highlight=False)
    if not result.passed:
        raise typer.Exit(EXIT_ERROR)
