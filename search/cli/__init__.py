"""Typer app: parse, call, print. TensorFlow is imported only inside commands that train.

The commands live in this package's modules, grouped by what they are for, and register on
the one `app` of common.py; importing them here, in this order, is the order of `--help`.
`fsearch` is `main` (pyproject's console script); `python -m search.cli` runs it too.
"""

from __future__ import annotations

from search.cli.common import app, err, out, user_errors

# Each import registers its commands on `app`: this order is `--help`'s, so not sorted.
# isort: off
from search.cli.lifecycle import export_cmd, init, predict, run
from search.cli.inspecting import best, dashboard, delete, report, studies, trials
from search.cli.serving import proxy

# isort: on

__all__ = [
    "app",
    "best",
    "dashboard",
    "delete",
    "err",
    "export_cmd",
    "init",
    "main",
    "out",
    "predict",
    "proxy",
    "report",
    "run",
    "studies",
    "trials",
    "user_errors",
]


def main() -> None:
    from search.workers import allow_restarts, follow_parent

    allow_restarts()  # a real process: `run` may restart itself (never under CliRunner)
    follow_parent()  # a --jobs worker ends with its parent
    app()
