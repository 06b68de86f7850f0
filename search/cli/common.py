"""What every command shares: the Typer app they register on, the two consoles, the option
types, and user_errors (our errors as one line on stderr). TensorFlow is imported only inside
commands that train."""

from __future__ import annotations

import contextlib
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from search.config import DEFAULT_ENSEMBLE, FOLDS_MAX_ROWS, PRUNERS, SAMPLERS, TABLE_FOLDS
from search.errors import FsearchError, StudyInterrupted
from search.inspection import FORMATS

app = typer.Typer(
    name="fsearch",
    help="Hyperparameter search for Keras MLPs (Optuna + Keras): Fashion-MNIST by default, "
    "or your own table or arrays (--data).",
    no_args_is_help=True,
    add_completion=False,
    # Locals may hold a storage password: never show them.
    pretty_exceptions_show_locals=False,
    # Markdown, not rich markup: help texts say "[default: ...]" and "s3://BUCKET[/PREFIX]",
    # which rich markup would swallow as tags (or crash on: `run --help` did).
    rich_markup_mode="markdown",
)
# markup=False: names and messages read from a shared database are printed as they are; rich
# markup in them (a study named "a[/b]") would be parsed, or crash the print.
out = Console(highlight=False, soft_wrap=True, markup=False)
err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)


# Choices come from the config's lists: one definition of what exists.
Sampler = Enum("Sampler", {name: name for name in SAMPLERS}, type=str)
Pruner = Enum("Pruner", {name: name for name in PRUNERS}, type=str)
Format = Enum("Format", {name: name for name in FORMATS}, type=str)


StudyOpt = Annotated[
    str | None, typer.Option("--study", "-s", help="Study name [default: the config's name].")
]
StorageOpt = Annotated[
    str | None,
    typer.Option(
        "--storage",
        envvar="FSEARCH_STORAGE",
        help="SQLAlchemy URL [default: sqlite:///studies/fsearch.db].",
        show_default=False,
    ),
]
ArtifactsOpt = Annotated[
    str | None,
    typer.Option(
        "--artifacts",
        envvar="FSEARCH_ARTIFACTS",
        help="Kept models: a directory (a shared volume for many machines) or "
        "s3://BUCKET[/PREFIX] [default: artifacts/ beside the SQLite file].",
    ),
]
DataDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        envvar="FSEARCH_DATA_DIR",
        help="Directory with the four Fashion-MNIST .gz files [default: system copy or download].",
    ),
]
RefitOpt = Annotated[
    bool,
    typer.Option(
        "--refit/--no-refit",
        help="Train each exported configuration again on all training data (train + "
        "validation), seeded, for the epochs it was selected at; --no-refit exports the "
        "models kept during the search as they are.",
    ),
]
EnsembleOpt = Annotated[
    int | None,
    typer.Option(
        "--ensemble",
        metavar="K",
        help="Export the mean of the K best models' outputs, as one plain Keras model (1: the "
        "best alone); without --refit its validation score is measured before the test set "
        f"is read. [default: {DEFAULT_ENSEMBLE}; 1 under a parameter budget]",
        show_default=False,
    ),
]
FoldsOpt = Annotated[
    int | None,
    typer.Option(
        "--folds",
        metavar="K",
        help="For small tables, where one validation split is noisy: cross-validate the "
        "--ensemble best configurations on K folds of train + validation and export the best "
        "one's K fold models averaged (K trainings per configuration); 0: off. [default: the "
        f"study's [study] folds: {TABLE_FOLDS} for a table of at most {FOLDS_MAX_ROWS:,} "
        "training rows made by --data or `fsearch init`, else off]",
        show_default=False,
    ),
]
DataOpt = Annotated[
    str | None,
    typer.Option(
        "--data",
        metavar="PATH",
        help="Your own data: a .csv or .parquet table (with --target), an .npz archive "
        "(x_train, y_train[, x_test, y_test]) or a folder of MNIST-format IDX files. Without "
        "--config, a study is made for it (see `fsearch init`).",
    ),
]
TargetOpt = Annotated[
    str | None,
    typer.Option("--target", metavar="COLUMN", help="The column to predict (a table's label)."),
]
ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="Study TOML [default: studies/fashion-mnist-mlp.toml]."),
]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show tracebacks of errors.")]
FormatOpt = Annotated[
    Format, typer.Option("--format", "-f", help="table for people, csv or json for scripts.")
]


@contextlib.contextmanager
def user_errors(debug: bool):
    """Quiet the libraries' logs, and turn our errors into one line on stderr and a non-zero
    exit (a traceback with --debug)."""
    try:
        from search.api import quiet_libraries

        quiet_libraries(debug)
        yield
    except FsearchError as e:
        if debug:
            raise
        err.print(f"error: {e}", markup=False, soft_wrap=True)
        raise typer.Exit(e.exit_code) from None
    except StudyInterrupted as e:
        err.print(str(e), markup=False, soft_wrap=True)
        raise typer.Exit(e.exit_code) from None
