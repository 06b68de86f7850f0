"""The Python API: run a study, read it back, export, report. The CLI, notebooks and the
benchmarks all run studies through `run` here.

    import search

    result = search.run("studies/fashion-mnist-mlp.toml", trials=50)  # or a search.Config
    result.best_trial.params, result.counts  # {'complete': 31, 'pruned': 17, ...}
    search.run("studies/fashion-mnist-mlp.toml", trials=80)  # resumes the study to 80
    search.best("fashion-mnist-mlp")  # value, every hyperparameter, learning curve
    search.export("fashion-mnist-mlp")  # model.keras + model card; test set read once
    search.report("fashion-mnist-mlp")  # HTML page with plots and tables

Options are the `fsearch run` flags with underscores (`data_dir=`, `allow_space_change=`), or
one RunOptions object. Errors are the classes of search.errors, which the CLI prints as one
line. An interrupt (Ctrl-C, a notebook's stop button, SIGTERM) closes the running trial as
FAIL, exactly as in the CLI, and reaches the caller as StudyInterrupted, a KeyboardInterrupt
that says how far the study got; running the same call again resumes it.

`run` is three steps, each in its own module: search.planning checks the inputs and makes the
Plan, search.local (one process) or search.pool (--jobs workers) runs it, and the best model
is exported here.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from search import outcomes, planning, workers
from search import storage as st
from search.config import DEFAULT_CONFIG_NAME, DEFAULT_REFIT, Config, validate_study_name
from search.errors import ConfigError, StudyError
from search.events import Events, Listener, printer
from search.local import WARM_START_TRIALS, run_here
from search.planning import DEFAULT_TRIALS, Plan, RunOptions
from search.pool import run_workers
from search.studies import best_trial

if TYPE_CHECKING:
    import optuna

__all__ = [
    "DEFAULT_TRIALS",
    "WARM_START_TRIALS",
    "RunOptions",
    "RunResult",
    "best",
    "default_export_dir",
    "export",
    "load_study",
    "quiet_libraries",
    "report",
    "run",
    "study_name",
    "trials",
]


@dataclass(frozen=True)
class RunResult:
    """What a run left: the study and its trials by outcome, the best trial, the export."""

    study: optuna.Study
    trials: int  # the target number of finished trials
    counts: dict[str, int]  # trials by outcome (search.outcomes.OUTCOMES)
    seconds: float  # wall time of this call
    created: bool  # the study was new
    export_dir: Path | None = None
    card: dict[str, Any] | None = None  # the model card of the export

    @property
    def finished(self) -> int:
        return outcomes.finished(self.counts)

    @property
    def best_trial(self) -> optuna.trial.FrozenTrial | None:
        return best_trial(self.study)

    @property
    def best_value(self) -> float | None:
        best = self.best_trial
        return None if best is None else best.value


def run(
    config: str | Path | Config | None = None,
    options: RunOptions | None = None,
    /,
    *,
    console: Console | None = None,
    on_event: Listener | None = None,
    **option_values: Any,
) -> RunResult:
    """Run (or resume) a study until it holds `trials` finished trials, then export the best.

    config: a study TOML path or a Config [the default Fashion-MNIST study]. Options as keyword
    arguments (`trials=50, storage=..., jobs=2`) or a RunOptions. The progress bar and every
    event's line (search/events.py: one per trial, the study, the export...) go to `console`
    (a rich Console; the default one renders in notebooks too); `on_event(event)` gets each
    event as an object too.
    """
    opts = RunOptions.of(options, **option_values)
    opts.check()
    # markup=False: stored names and error messages are printed as they are (see cli.out).
    console = console or Console(highlight=False, soft_wrap=True, markup=False)
    quiet_libraries(opts.debug)
    plan = planning.plan(config, opts, console, Events(printer(console), on_event))
    if opts.jobs > 1:
        study, created, counts = run_workers(plan)
    else:
        study, created, counts = run_here(plan)
    return _finish(plan, study, created, counts)


def _finish(plan: Plan, study: optuna.Study, created: bool, counts: dict[str, int]) -> RunResult:
    """The result, with the best model exported when asked."""
    opts = plan.options
    result = RunResult(study, plan.trials, counts, time.perf_counter() - plan.started, created)
    if not opts.export or result.best_trial is None:
        return result
    dest = Path(opts.export_dir) if opts.export_dir else default_export_dir(study.study_name)
    card = _export(
        study,
        plan.store,
        dest,
        opts.data_dir,
        plan.masked,
        opts.debug,
        plan.events,
        refit=opts.refit,
        ensemble=opts.ensemble,
        folds=opts.folds,
        split=plan.split,  # the data this run loaded (None for --jobs): not loaded again
    )
    return dataclasses.replace(result, export_dir=dest, card=card)


# ---------------------------------------------------------------------------- read back


def quiet_libraries(debug: bool = False) -> None:
    """Optuna's log off (our per-trial lines replace it; it prints tracebacks of interrupted
    trials) unless debug; the experimental Optuna features we rely on, without warnings."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.INFO if debug else optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def study_name(name: str | None) -> str:
    """The study name given, else the default study's; checked like a config's name."""
    return validate_study_name(name or DEFAULT_CONFIG_NAME.removesuffix(".toml"), where="--study")


def default_export_dir(name: str) -> Path:
    return Path("studies") / name / "best"


def load_study(study: str | None = None, *, storage: str | None = None) -> optuna.Study:
    """An existing study as an optuna.Study [default: the Fashion-MNIST study]."""
    from search import studies

    return studies.load_study(st.open_storage(storage, must_exist=True), study_name(study))


def best(study: str | None = None, *, storage: str | None = None) -> dict[str, Any]:
    """The best trial: value, every hyperparameter, learning curve, kept model."""
    from search import inspection

    return inspection.best_trial(load_study(study, storage=storage))


def trials(
    study: str | None = None, *, storage: str | None = None, top: int | None = None
) -> list[dict[str, Any]]:
    """One row per trial, best first (what `fsearch trials` prints)."""
    from search import inspection

    return inspection.trial_rows(load_study(study, storage=storage), top=top)


def export(
    study: str | None = None,
    *,
    out: str | Path | None = None,
    storage: str | None = None,
    artifacts: str | None = None,
    data_dir: str | Path | None = None,
    console: Console | None = None,
    debug: bool = False,
    refit: bool = DEFAULT_REFIT,
    ensemble: int | None = None,
    max_params: int | None = None,
    folds: int | None = None,
) -> dict[str, Any]:
    """Export the study's best kept model to `out` [studies/STUDY/best]: model.keras and a model
    card whose test metrics are measured here, once. Returns the card.

    refit: train each exported configuration again on train + validation (seeded, for the
    epochs it was selected at). ensemble=K: the mean of the K best models' outputs [3, or 1
    under a parameter budget]. The defaults are what `fsearch run` exports.
    max_params: the best within this many parameters (per member).
    folds=K: the `ensemble` best configurations cross-validated on K folds of train +
    validation, the best out-of-fold one exported as its K fold models averaged."""
    from search.artifacts import artifact_dir, open_artifact_store

    quiet_libraries(debug)
    name = study_name(study)
    store_path = artifact_dir(storage, artifacts)
    s = load_study(name, storage=storage)
    dest = Path(out) if out is not None else default_export_dir(name)
    store = open_artifact_store(store_path, create=False)
    masked = st.mask(st.resolve_url(storage))
    return _export(
        s,
        store,
        dest,
        data_dir,
        masked,
        debug,
        Events(printer(console) if console is not None else None),
        refit=refit,
        ensemble=ensemble,
        max_params=max_params,
        folds=folds,
    )


def _export(
    study, store, dest: Path, data_dir, masked: str, debug: bool, events: Events, **how: Any
) -> dict:
    from search._tf import import_tensorflow
    from search.exporting import export_best

    import_tensorflow(quiet=not debug)
    progress = events.line("export_step")
    # SIGTERM as Ctrl-C: the export's scratch folder is removed and the previous export
    # stays whole (export_best's finally) instead of the process dying mid-way.
    with workers.interrupts_caught():
        card = export_best(
            study, store, dest, data_dir=data_dir, storage_masked=masked, progress=progress, **how
        )
    test = ", ".join(f"{k} {card[k]:.4f}" for k in card["test_metrics"])
    info = card["export"]
    what = (
        f"trial #{card['trial']} ({card['architecture']})"
        if len(info["members"]) == 1
        else f"trials {', '.join(f'#{n}' for n in info['members'])}"
    )
    val = info.get("ensemble_validation_value", card["validation_value"])
    if "folds" in info:
        what += f" as {info['folds']['k']} fold models"
        val = info["folds"]["cv_value"]
    events.emit(
        "exported",
        f"exported {what}, {info['mode']}, to {dest}/: "
        + ("out-of-fold " if "folds" in info else "")
        + f"{card['metric']} {val:.4f}"
        + (" (at selection)" if "refit" in info else "")
        + f", {test}; {card['export_seconds']:.0f} s",
        directory=str(dest),
        test_metrics={k: card[k] for k in card["test_metrics"]},
        members=list(info["members"]),
        mode=info["mode"],
    )
    return card


def report(
    study: str | list[str] | None = None,
    *,
    lab: bool = False,
    out: str | Path | None = None,
    storage: str | None = None,
    reseed: int = 0,
    data_dir: str | Path | None = None,
    console: Console | None = None,
):
    """Write an offline HTML report (PNG plots, tables in the lab report's format) of one or
    several studies, or with lab=True of the seed-lab studies. Returns a report.Report."""
    from search import studies
    from search.reporting import LAB_STUDIES, write_report

    quiet_libraries()
    if lab and study:
        raise ConfigError("--lab reports the seed-lab studies; give either --lab or --study")
    storage_obj = st.open_storage(storage, must_exist=True)
    if lab:
        names = [n for n in LAB_STUDIES if n in studies.study_names(storage_obj)]
        if not names:
            raise StudyError(
                "no seed-lab study in this storage; run scripts/seed-lab.sh (or "
                "fsearch run --config studies/seed-lab-architecture.toml) first"
            )
    else:
        given = [study] if isinstance(study, str) or study is None else study
        names = [study_name(s) for s in given or [None]]
    chosen = [studies.load_study(storage_obj, n) for n in dict.fromkeys(names)]
    default = Path("studies") / ("seed-lab" if lab else names[0]) / "report"
    dest = Path(out) if out is not None else default
    if reseed < 0:
        raise ConfigError(f"--reseed must be >= 0, got {reseed}")
    return write_report(
        chosen,
        dest,
        lab=lab,
        storage_masked=st.mask(st.resolve_url(storage)),
        reseed=reseed,
        data_dir=data_dir,
        log=Events(printer(console) if console is not None else None).line("report_step"),
    )
