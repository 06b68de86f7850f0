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
    from search.workers import allow_restarts, exit_watchdog, follow_parent, stop_grace

    allow_restarts()  # a real process: `run` may restart itself (never under CliRunner)
    follow_parent()  # a --jobs worker ends with its parent
    try:
        app()
    finally:
        grace = stop_grace()
        if grace is not None:  # a --jobs worker
            # What remains is the interpreter's exit (threads joined, atexit, TensorFlow's
            # teardown): a worker that hangs there would hold its cores with nobody to end it.
            exit_watchdog(grace)
