"""Typer app: parse, call, print. TensorFlow is imported only inside commands that train."""

from __future__ import annotations

import contextlib
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from search.config import DEFAULT_ENSEMBLE, DEFAULT_REFIT, PRUNERS, SAMPLERS
from search.dashboard import DEFAULT_HOST, DEFAULT_PORT
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


@app.command()
def run(
    trials: Annotated[
        int | None,
        typer.Option(
            "--trials",
            "-n",
            help="Finished trials the study should hold (a total: re-running resumes to it) "
            "[default: 200; a grid study: its grid size].",
            show_default=False,
        ),
    ] = None,
    timeout: Annotated[
        float | None, typer.Option("--timeout", help="Stop starting trials after SECONDS.")
    ] = None,
    study: StudyOpt = None,
    config: ConfigOpt = None,
    storage: StorageOpt = None,
    artifacts: ArtifactsOpt = None,
    data_dir: DataDirOpt = None,
    data: DataOpt = None,
    target: TargetOpt = None,
    warm_start: Annotated[
        str | None,
        typer.Option(
            "--warm-start",
            metavar="STUDY",
            help="Start from another study's best configurations (those of their parameters "
            "that exist in this space; the sampler fills in the rest).",
        ),
    ] = None,
    sampler: Annotated[Sampler | None, typer.Option(help="Override the config's sampler.")] = None,
    pruner: Annotated[Pruner | None, typer.Option(help="Override the config's pruner.")] = None,
    seed: Annotated[int | None, typer.Option(help="Override the config's seed.")] = None,
    export_dir: Annotated[
        Path | None,
        typer.Option(
            "--export-dir", help="Where the best model goes [default: studies/STUDY/best]."
        ),
    ] = None,
    export: Annotated[
        bool, typer.Option("--export/--no-export", help="Export the best model at the end.")
    ] = True,
    refit: RefitOpt = DEFAULT_REFIT,
    ensemble: EnsembleOpt = None,
    allow_space_change: Annotated[
        bool,
        typer.Option(help="Continue an existing study although its search space changed."),
    ] = False,
    trust_storage: Annotated[
        bool,
        typer.Option(
            "--trust-storage",
            help="Use the cmaes sampler on a shared database (its state is unpickled from it: "
            "only for databases that only trusted people can write).",
        ),
    ] = False,
    jobs: Annotated[
        str,
        typer.Option(
            "--jobs",
            "-j",
            metavar="N|auto",
            help="Worker processes on this machine; they split its cores (and GPUs) and share "
            "--trials. 'auto': the number measured fastest for this machine's cores and GPUs.",
        ),
    ] = "1",
    worker: Annotated[
        str | None,
        typer.Option(
            "--worker",
            envvar="FSEARCH_WORKER",
            help="This worker's number (seeds its sampler apart from other workers'); "
            "'auto' draws one. Give each machine its own [default: 0].",
            show_default=False,
        ),
    ] = None,
    debug: DebugOpt = False,
) -> None:
    """Run (or resume) a study until it holds --trials finished trials, then export the best.

    Workers on other machines (or --jobs here) pointed at the same --storage share the study:
    together they stop at exactly --trials; a dead worker's trial is run again elsewhere.
    """
    # Long only by its signature. Its parameters are RunOptions' fields by name (checked by
    # tests/test_api.py), so each option is written here once: in the signature Typer parses.
    # First statement, so that locals() holds exactly the parameters.
    options = {name: value for name, value in locals().items() if name != "config"}
    from search import api

    with user_errors(debug):
        api.run(config, api.RunOptions.of(**options), console=out)


@app.command()
def init(
    data: Annotated[
        str,
        typer.Option(
            "--data",
            metavar="PATH",
            help="A .csv/.parquet table, an .npz archive or a folder of IDX files.",
        ),
    ],
    target: TargetOpt = None,
    study: StudyOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Print a study TOML for your data, to save and edit:
    `fsearch init --data customers.csv --target churned > studies/churn.toml`.

    The task, features and split it infers are said on stderr."""
    from search.datasets import study_toml

    with user_errors(debug):
        text, notes = study_toml(data, target or "", name=study)
        for note in notes:
            err.print(note, markup=False)
        print(text, end="")


@app.command("export")
def export_cmd(
    study: StudyOpt = None,
    out_dir: Annotated[
        Path, typer.Option("--out", "-o", help="Output directory [default: studies/STUDY/best].")
    ] = None,
    storage: StorageOpt = None,
    artifacts: ArtifactsOpt = None,
    data_dir: DataDirOpt = None,
    refit: RefitOpt = DEFAULT_REFIT,
    ensemble: EnsembleOpt = None,
    max_params: Annotated[
        int | None,
        typer.Option(
            "--max-params",
            metavar="N",
            help="The best model with at most N parameters (each member of an ensemble); "
            "with --refit any completed trial qualifies, else only kept models.",
        ),
    ] = None,
    debug: DebugOpt = False,
) -> None:
    """Export the study's model with a model card; test metrics are measured here, once.

    Without flags: the 3 best configurations trained again on train + validation and
    averaged (what `fsearch run` exports). --no-refit --ensemble 1: the best kept model as it is.
    """
    from search import api

    with user_errors(debug):
        api.export(
            study,
            out=out_dir,
            storage=storage,
            artifacts=artifacts,
            data_dir=data_dir,
            console=out,
            debug=debug,
            refit=refit,
            ensemble=ensemble,
            max_params=max_params,
        )


@app.command()
def predict(
    model: Annotated[
        Path,
        typer.Option(
            "--model", "-m", help="The folder `fsearch export` wrote (model.keras + card)."
        ),
    ],
    data: Annotated[
        Path,
        typer.Option("--data", metavar="PATH", help="Rows to predict: .csv, .parquet or .npz."),
    ],
    out_file: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help="Write the predictions here (.csv or .parquet) [default: stdout]."
        ),
    ] = None,
    proba: Annotated[
        bool, typer.Option("--proba", help="Add each class's probability (classification).")
    ] = False,
    debug: DebugOpt = False,
) -> None:
    """Predict with an exported model: one row per input row, labels under their original
    values or values in the target's units; the input columns are checked against the card."""
    from search import predict as prediction

    with user_errors(debug):
        pred = prediction.predict(model, data)
        if out_file is not None:
            prediction.write_predictions(pred, out_file, proba=proba)
            err.print(f"{len(pred.values):,} predictions written to {out_file}", markup=False)
        else:
            from search import inspection

            cols = pred.columns(proba=proba)
            rows = [dict(zip(cols, r, strict=True)) for r in zip(*cols.values(), strict=True)]
            out.print(inspection.to_csv(rows), markup=False, highlight=False, end="")


# ---------------------------------------------------------------------------- see the search


FormatOpt = Annotated[
    Format, typer.Option("--format", "-f", help="table for people, csv or json for scripts.")
]


def _print_rows(rows: list[dict], fmt: Format, *, title: str | None = None) -> None:
    from search import inspection

    if fmt == Format.json:
        out.print(inspection.to_json(rows), markup=False, highlight=False)
    elif fmt == Format.csv:
        out.print(inspection.to_csv(rows), markup=False, highlight=False, end="")
    elif rows:
        from rich.measure import Measurement

        table = inspection.to_table(rows, title=title)
        if out.is_terminal:
            out.print(table)
        else:
            # In a pipe rich would squeeze the table into 80 columns and truncate every number.
            width = Measurement.get(out, out.options.update_width(10_000), table).maximum
            Console(width=max(width, 80), highlight=False, markup=False).print(table)
    else:
        out.print("(none)")


@app.command()
def dashboard(
    host: Annotated[
        str, typer.Option(help="Address to listen on; 0.0.0.0 exposes it to the network.")
    ] = DEFAULT_HOST,
    port: Annotated[int, typer.Option(help="Port to listen on.")] = DEFAULT_PORT,
    allow_remote: Annotated[
        bool,
        typer.Option(
            "--allow-remote",
            help="Allow a --host other than loopback: anyone who reaches it can read, edit "
            "and delete studies and kept models (the dashboard has no login).",
        ),
    ] = False,
    read_only: Annotated[
        bool,
        typer.Option(
            "--read-only",
            help="Refuse every change (notes, deletions, uploads): only viewing; the safer "
            "choice with --allow-remote.",
        ),
    ] = False,
    storage: StorageOpt = None,
    artifacts: ArtifactsOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Watch studies live in optuna-dashboard, kept models included (Ctrl-C stops it)."""
    with user_errors(debug):
        from search import dashboard as dash
        from search import storage as st
        from search.artifacts import artifact_dir, open_artifact_store

        dash.check_host(host, allow_remote=allow_remote)
        if not dash.is_loopback(host):
            warning = dash.REMOTE_READ_ONLY_WARNING if read_only else dash.REMOTE_WARNING
            err.print(warning, markup=False)
        storage_obj = st.open_storage(storage, must_exist=True)
        store = open_artifact_store(artifact_dir(storage, artifacts), create=False)
        server = dash.make_dashboard_server(
            storage_obj, store, host=host, port=port, read_only_mode=read_only
        )
        out.print(
            f"optuna-dashboard for {st.mask(st.resolve_url(storage))} on "
            f"{dash.url_of(server, host)} (Ctrl-C to stop)",
            markup=False,
        )
        from search.workers import interrupts_caught

        # `kill`, `docker stop` and a closed terminal stop it as Ctrl-C does.
        with interrupts_caught():
            dash.serve(server, on_stop=lambda: out.print("dashboard stopped"))


@app.command()
def studies(storage: StorageOpt = None, fmt: FormatOpt = Format.table, debug: DebugOpt = False):
    """Every study in the storage: trials by end state, best value, running or idle."""
    with user_errors(debug):
        from search import inspection
        from search import storage as st

        rows = inspection.study_rows(st.open_storage(storage, must_exist=True))
        _print_rows(rows, fmt, title=f"studies in {st.mask(st.resolve_url(storage))}")


@app.command()
def trials(
    study: StudyOpt = None,
    top: Annotated[
        int | None, typer.Option("--top", "-t", help="Only the N best trials.", min=1)
    ] = None,
    storage: StorageOpt = None,
    fmt: FormatOpt = Format.table,
    debug: DebugOpt = False,
) -> None:
    """A study's trials, best first: value, state, architecture, hyperparameters, timing."""
    with user_errors(debug):
        from search import api, inspection

        s = api.load_study(study, storage=storage)
        rows = inspection.trial_rows(s, top=top)
        if fmt == Format.table:
            rows = [inspection.display_row(r) for r in rows]
        _print_rows(rows, fmt, title=f"{s.study_name}: {len(rows)} of {len(s.trials)} trials")


@app.command()
def best(
    study: StudyOpt = None,
    storage: StorageOpt = None,
    fmt: FormatOpt = Format.table,
    debug: DebugOpt = False,
) -> None:
    """The best trial of a study: value, every hyperparameter, learning curve, kept model."""
    with user_errors(debug):
        from search import api, inspection

        info = api.best(study, storage=storage)
        if fmt == Format.json:
            out.print(inspection.to_json(info), markup=False, highlight=False)
        else:
            # trial.params repeats the hyperparameters that were searched: shown once here.
            shown = {k: v for k, v in info.items() if k != "params"}
            _print_rows(
                inspection.key_value_rows(shown), fmt, title=f"best trial of {info['study']}"
            )


@app.command()
def delete(
    study: Annotated[str, typer.Option("--study", "-s", help="The study to delete.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    storage: StorageOpt = None,
    artifacts: ArtifactsOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Delete a study, its trials and its kept models (asks first unless --yes)."""
    with user_errors(debug):
        from search import inspection, studies
        from search import storage as st
        from search.artifacts import artifact_dir, open_artifact_store
        from search.config import validate_study_name

        name = validate_study_name(study, where="--study")
        storage_obj = st.open_storage(storage, must_exist=True)
        n = len(studies.load_study(storage_obj, name).trials)  # StudyError names the studies
        masked = st.mask(st.resolve_url(storage))
        if not yes and not typer.confirm(
            f"Delete study {name!r} ({n} trials) and its kept models from {masked}?"
        ):
            err.print("not deleted", markup=False)
            raise typer.Exit(1)
        store = open_artifact_store(artifact_dir(storage, artifacts), create=False)
        removed = inspection.delete_study(storage_obj, name, store)
        out.print(f"deleted study {name} ({n} trials, {removed} kept model files)", markup=False)


@app.command()
def report(
    study: Annotated[
        list[str] | None,
        typer.Option(
            "--study",
            "-s",
            help="Study to report; repeat to combine several [default: fashion-mnist-mlp].",
            show_default=False,
        ),
    ] = None,
    lab: Annotated[
        bool,
        typer.Option(
            "--lab", help="Combine the seed-lab-* studies and add the lab report's Tables 1-8."
        ),
    ] = False,
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Output directory [default: studies/STUDY/report]."),
    ] = None,
    storage: StorageOpt = None,
    reseed: Annotated[
        int,
        typer.Option(
            "--reseed",
            metavar="K",
            help="Train the K best configurations again with another seed and show both "
            "scores: how much of the ranking is noise (minutes per trial; kept for later "
            "reports).",
        ),
    ] = 0,
    data_dir: DataDirOpt = None,
    debug: DebugOpt = False,
) -> None:
    """An offline HTML report with PNG plots and tables in the lab report's format."""
    with user_errors(debug):
        from search import api

        rep = api.report(
            study,
            lab=lab,
            out=out_dir,
            storage=storage,
            reseed=reseed,
            data_dir=data_dir,
            console=out,
        )
        best_line = (
            f"best {rep.best.value:.4f} ({rep.best.study} #{rep.best.trial}, "
            f"{rep.best.architecture})"
            if rep.best
            else "no completed trial"
        )
        counts = ", ".join(f"{v} {k}" for k, v in rep.counts.items() if v)
        out.print(f"report of {', '.join(rep.studies)} ({counts}); {best_line}", markup=False)
        out.print(
            f"wrote {rep.out / 'index.html'} and {len(rep.files) - 1} more files", markup=False
        )


@app.command()
def proxy(
    storage: StorageOpt = None,
    host: Annotated[
        str, typer.Option(help="Address to listen on; 0.0.0.0 for workers on other machines.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 13000,
    debug: DebugOpt = False,
) -> None:
    """Serve the study database to many workers over gRPC (Optuna's storage proxy): workers
    then take `--storage grpc://HOST:PORT`. No login or TLS: keep it on a private network."""
    with user_errors(debug):
        from search import proxy as px
        from search import storage as st
        from search.workers import interrupts_caught

        # Ctrl-C, `kill` or `docker stop`: in-flight calls finish, then it stops.
        with contextlib.suppress(KeyboardInterrupt), interrupts_caught() as stop:
            px.serve(
                storage,
                host=host,
                port=port,
                stop_requested=stop.is_set,
                on_start=lambda where: out.print(
                    f"storage proxy for {st.mask(st.resolve_url(storage))} on {where} "
                    "(Ctrl-C to stop)",
                    markup=False,
                ),
            )
        out.print("storage proxy stopped", markup=False)


def main() -> None:
    from search.workers import allow_restarts, follow_parent

    allow_restarts()  # a real process: `run` may restart itself (never under CliRunner)
    follow_parent()  # a --jobs worker ends with its parent
    app()


if __name__ == "__main__":
    main()
