"""``python -m eval``: the same as ``srekb eval``."""

import sys

from srekb.api.cli import app

if __name__ == "__main__":
    sys.argv.insert(1, "eval")
    app()
