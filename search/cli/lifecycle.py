"""A model's life: `run` (search, then export), `init` (a study TOML for your data),
`export` and `predict`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from search.cli.common import (
    ArtifactsOpt,
    ConfigOpt,
    DataDirOpt,
    DataOpt,
    DebugOpt,
    EnsembleOpt,
    FoldsOpt,
    Pruner,
    RefitOpt,
    Sampler,
    StorageOpt,
    StudyOpt,
    TargetOpt,
    app,
    err,
    out,
    user_errors,
)
from search.config import DEFAULT_REFIT


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
    first_trials: Annotated[
        bool | None,
        typer.Option(
            "--first-trials/--no-first-trials",
            help="Queue configurations known to be good for the data (the tabular MLPs' "
            "published defaults; Fashion-MNIST's best earlier one) as a new study's first "
            'trials [default: the config\'s first_trials, "auto": on for tables].',
            show_default=False,
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
    folds: FoldsOpt = None,
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
            envvar="FSEARCH_JOBS",
            help="Worker processes on this machine; they split its cores (and GPUs) and share "
            "--trials. 'auto': the number measured fastest for this machine's cores and GPUs "
            "(2 on a CPU-only machine of 2 or more cores); 1: this process only, and a seeded "
            "study repeats its trials exactly.",
        ),
        # auto, not 1: on the default study, 3 seeds alone on a 2-core Xeon, two workers were
        # ahead of one on the medians of every measure issue #23 named (minutes to 0.89 and
        # 0.90 validation accuracy, trials by 10 and 30 minutes, the 200 trials' wall time)
        # and of the best validation accuracy (BENCHMARKS.md, `jobs-200-xeon`).
    ] = "auto",
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
    folds: FoldsOpt = None,
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
            folds=folds,
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
        for note in pred.notes:
            err.print(note, markup=False)
        if out_file is not None:
            prediction.write_predictions(pred, out_file, proba=proba)
            err.print(f"{len(pred.values):,} predictions written to {out_file}", markup=False)
        else:
            from search import inspection

            cols = pred.columns(proba=proba)
            rows = [dict(zip(cols, r, strict=True)) for r in zip(*cols.values(), strict=True)]
            out.print(inspection.to_csv(rows), markup=False, highlight=False, end="")
