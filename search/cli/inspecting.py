"""Seeing the search: `dashboard`, `studies`, `trials`, `best`, `delete` and `report`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from search.cli.common import (
    ArtifactsOpt,
    DataDirOpt,
    DebugOpt,
    Format,
    FormatOpt,
    StorageOpt,
    StudyOpt,
    app,
    err,
    out,
    user_errors,
)
from search.dashboard import DEFAULT_HOST, DEFAULT_PORT


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
