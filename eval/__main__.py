"""``python -m srekb.eval``: the same as ``srekb eval``, without the rest of the CLI."""

import logging
import os

import typer
from srekb.eval.cli import evaluate

if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # as `srekb` does: the packaged model needs no hub
    logging.basicConfig(level=logging.WARNING)
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command()(evaluate)
    app()
