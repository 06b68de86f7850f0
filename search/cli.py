"""Typer app: parse, call, print. TensorFlow is imported only inside commands that train."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
import warnings
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from search.errors import ConfigError, FsearchError

app = typer.Typer(
    name="fsearch",
    help="Hyperparameter search for Keras MLPs on Fashion-MNIST (Optuna + TensorFlow).",
    no_args_is_help=True,
    add_completion=False,
    # Locals may hold a storage password: never show them.
    pretty_exceptions_show_locals=False,
    # Markdown, not rich markup: help texts say "[default: ...]" and "s3://BUCKET[/PREFIX]",
    # which rich markup would swallow as tags (or crash on: `run --help` did).
    rich_markup_mode="markdown",
)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


class Sampler(str, Enum):
    tpe = "tpe"
    random = "random"
    cmaes = "cmaes"
    gp = "gp"
    grid = "grid"


class Pruner(str, Enum):
    hyperband = "hyperband"
    median = "median"
    successive_halving = "successive-halving"
    none = "none"


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
ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="Study TOML [default: studies/fashion-mnist-mlp.toml]."),
]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show tracebacks of errors.")]
DEFAULT_TRIALS = 200  # `run --trials` when not given, except for grid studies (their grid size)


@contextlib.contextmanager
def user_errors(debug: bool):
    """Turn our errors into one line on stderr and a non-zero exit (a traceback with --debug)."""
    try:
        yield
    except FsearchError as e:
        if debug:
            raise
        err.print(f"error: {e}", markup=False, soft_wrap=True)
        raise typer.Exit(e.exit_code) from None


def _quiet_libraries(debug: bool = False) -> None:
    import optuna

    # Our per-trial lines replace Optuna's log (which prints tracebacks of interrupted trials).
    optuna.logging.set_verbosity(optuna.logging.INFO if debug else optuna.logging.ERROR)
    # We rely on a few experimental Optuna arguments (heartbeats, TPE group) on purpose.
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def _sigterm_as_interrupt() -> None:
    """`kill` / `docker stop` behave like Ctrl-C: the running trial is closed, not left RUNNING."""

    def handler(signum, frame):
        raise KeyboardInterrupt

    with contextlib.suppress(ValueError):  # not in the main thread (tests)
        signal.signal(signal.SIGTERM, handler)


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
    allow_space_change: Annotated[
        bool,
        typer.Option(help="Continue an existing study although its search space changed."),
    ] = False,
    jobs: Annotated[
        int,
        typer.Option(
            "--jobs",
            "-j",
            help="Worker processes on this machine; they split its cores and share --trials.",
        ),
    ] = 1,
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
    from search.errors import ConfigError
    from search.workers import parse_worker

    with user_errors(debug):
        if trials is not None and trials < 1:
            raise ConfigError(f"--trials must be at least 1, got {trials}")
        if timeout is not None and timeout <= 0:
            raise ConfigError(f"--timeout must be a positive number of seconds, got {timeout}")
        if jobs < 1:
            raise ConfigError(f"--jobs must be at least 1, got {jobs}")
        worker_id = parse_worker(worker)
        _quiet_libraries(debug)
        # What each --jobs child runs: these options, with --trials resolved, --worker K and
        # --no-export added (the parent exports once, after all of them). The storage URL
        # goes by environment (FSEARCH_STORAGE), not argv, which `ps` shows to every user.
        child_args = ["run", "--no-export"]
        for flag, value in (
            ("--timeout", timeout),
            ("--study", study),
            ("--config", config),
            ("--artifacts", artifacts),
            ("--data-dir", data_dir),
            ("--sampler", sampler.value if sampler else None),
            ("--pruner", pruner.value if pruner else None),
            ("--seed", seed),
        ):
            if value is not None:
                child_args += [flag, str(value)]
        if allow_space_change:
            child_args.append("--allow-space-change")
        if debug:
            child_args.append("--debug")
        _run(
            trials=trials,
            timeout=timeout,
            study_name=study,
            config_path=config,
            storage=storage,
            artifacts=artifacts,
            data_dir=data_dir,
            sampler=sampler.value if sampler else None,
            pruner=pruner.value if pruner else None,
            seed=seed,
            export_dir=export_dir,
            export=export,
            allow_space_change=allow_space_change,
            debug=debug,
            jobs=jobs,
            worker_id=worker_id,
            child_args=child_args,
        )


def _run(
    *,
    trials,
    timeout,
    study_name,
    config_path,
    storage,
    artifacts,
    data_dir,
    sampler,
    pruner,
    seed,
    export_dir,
    export,
    allow_space_change,
    debug,
    jobs=1,
    worker_id=0,
    child_args=(),
) -> None:
    from search import runner, workers
    from search import storage as st
    from search._tf import import_tensorflow
    from search.config import load_config
    from search.data import load_split
    from search.objective import Objective
    from search.progress import RunProgress
    from search.space import grid_search_space, grid_size

    # Everything that can be checked without a database is checked first, so a bad input
    # leaves nothing behind: config, sampler/pruner availability, data.
    cfg = load_config(config_path).replace_study(
        name=study_name, sampler=sampler, pruner=pruner, seed=seed
    )
    grid = grid_search_space(cfg) if cfg.study.sampler == "grid" else None
    timeout = _deadline_timeout(timeout)
    recycle_every = _recycle_every()
    if trials is None:
        trials = grid_size(cfg) if grid is not None else DEFAULT_TRIALS
    runner.make_sampler(cfg.study, seed=0, grid=grid)
    runner.make_pruner(cfg.study, max_epochs=cfg.max_epochs)
    split = load_split(cfg.data, data_dir)

    store_path = st.artifact_dir(storage, str(artifacts) if artifacts else None)
    storage_obj = st.open_storage(storage, heartbeat=True)
    masked = st.mask(st.resolve_url(storage))
    store = st.open_artifact_store(store_path)
    if jobs > 1:
        # Create (or check) the study once here, so the workers only join it.
        study, created = st.create_or_load_study(
            storage_obj, cfg, allow_space_change=allow_space_change
        )
        st.fail_stale_trials(study)
        threads = workers.threads_per_worker(jobs)
        already = runner.count_finished(study)
        out.print(
            f"study {cfg.study.name} ({'new' if created else 'resumed'}) on {masked}: "
            f"{already}/{trials} finished; {jobs} workers, "
            f"{threads} TF thread{'s' if threads > 1 else ''} each",
            markup=False,
        )
        del split  # the workers load their own copy; do not hold one here meanwhile
        # One bar for all workers, fed from the storage; the workers print only trial lines.
        with (
            RunProgress(out, target=trials, already=already, best=None) as bar,
            bar.following(study),
        ):
            codes = workers.run_local_workers(
                [*child_args, "--trials", str(trials)],
                jobs=jobs,
                base_worker=worker_id,
                env={"FSEARCH_STORAGE": st.resolve_url(storage), workers.ENV_NO_BAR: "1"},
                echo=lambda line: out.print(line, markup=False, highlight=False),
            )
        _after_workers(study, trials, codes, export, export_dir, store, data_dir, masked, debug)
        return
    n_existing = 0
    if cfg.study.name in st.study_names(storage_obj):
        n_existing = len(st.load_study(storage_obj, cfg.study.name).trials)
    study, created = st.create_or_load_study(
        storage_obj,
        cfg,
        sampler=runner.make_sampler(
            cfg.study,
            seed=runner.process_seed(cfg.study, n_existing=n_existing, worker=worker_id),
            grid=grid,
        ),
        pruner=runner.make_pruner(cfg.study, max_epochs=cfg.max_epochs),
        allow_space_change=allow_space_change,
    )
    # Trials of workers that died (here or elsewhere) are failed and re-queued before we count.
    st.fail_stale_trials(study)
    already = runner.count_finished(study)
    out.print(
        f"study [bold]{cfg.study.name}[/] ({'new' if created else 'resumed'}) on {masked}: "
        f"{already}/{trials} finished; sampler {cfg.study.sampler}, pruner {cfg.study.pruner}; "
        f"{len(split.y_train):,} train / {len(split.y_val):,} validation images",
        markup=True,
    )
    best = None
    with contextlib.suppress(ValueError):
        best = study.best_value
    import_tensorflow(quiet=not debug)
    workers.apply_thread_limits()
    objective = Objective(cfg, split, artifact_store=store)
    interrupted = workers.catch_interrupts()  # SIGINT/SIGTERM: close the trial, stop
    waiting = False

    def on_wait(finished: int, running: int) -> None:
        nonlocal waiting
        if not waiting:
            out.print(f"waiting for {running} running trial(s) of other workers ({finished} done)")
        waiting = True

    try:
        with RunProgress(
            out,
            target=trials,
            already=already,
            best=best,
            started=_run_started(already),
            show=not os.environ.get(workers.ENV_NO_BAR),
        ) as bar:
            result = runner.run_study(
                study,
                objective,
                cfg,
                n_trials=trials,
                timeout=timeout,
                on_trial=bar.on_trial,
                on_wait=on_wait,
                stop_requested=interrupted.is_set,
                max_trials_here=recycle_every,
            )
    except KeyboardInterrupt:
        done = runner.count_finished(study)
        err.print(
            f"interrupted: {done}/{trials} trials finished; the running trial was closed as FAIL "
            "and does not count. Run the same command again to resume.",
            markup=False,
        )
        raise typer.Exit(130) from None
    if result.recycle:
        _recycle(result.ran)
    counts = _state_counts(study)
    out.print(
        f"done: {result.finished}/{trials} finished ({counts}) in {result.seconds:.0f} s this run; "
        + (
            f"best val_accuracy {result.best_value:.4f} (trial #{result.best_trial})"
            if result.best_value is not None
            else "no completed trial yet"
        )
    )
    if result.finished < trials:
        out.print(f"stopped early (timeout); run the same command again to reach {trials}")
    if export and result.best_value is not None:
        from search.export import export_best

        dest = export_dir or Path("studies") / cfg.study.name / "best"
        card = export_best(study, store, dest, data_dir=data_dir, storage_masked=masked)
        _print_card(card, dest)


# TensorFlow keeps memory from every model a process builds, clear_session() or not: measured
# +1.3 GB of RSS over 200 small trials in one process (BENCHMARKS.md, study section). So a
# worker restarts itself (exec, same PID, same arguments) every RECYCLE_TRIALS trials; the
# study lives in the storage, so the new process simply resumes it. Costs one TF import and
# data load (~5 s) per restart. FSEARCH_RECYCLE_TRIALS=0 turns it off.
RECYCLE_TRIALS = 20
ENV_RECYCLE = "FSEARCH_RECYCLE_TRIALS"
ENV_DEADLINE = "FSEARCH_RUN_DEADLINE"  # --timeout as an absolute time, kept across restarts
ENV_STARTED = "FSEARCH_RUN_STARTED"  # "time,finished" at the first start: progress across restarts
_CAN_REEXEC = False  # set by main(): only a real process may replace itself


def _recycle_every() -> int | None:
    if not _CAN_REEXEC:
        return None
    raw = os.environ.get(ENV_RECYCLE, str(RECYCLE_TRIALS))
    try:
        n = int(raw)
    except ValueError:
        raise ConfigError(f"{ENV_RECYCLE} must be a whole number, got {raw!r}") from None
    return n if n > 0 else None


def _deadline_timeout(timeout: float | None) -> float | None:
    """--timeout counts from the first start, not from a restart of this worker."""
    if os.environ.get(ENV_DEADLINE):
        return max(float(os.environ[ENV_DEADLINE]) - time.time(), 0.001)
    if timeout is not None and _CAN_REEXEC:
        os.environ[ENV_DEADLINE] = str(time.time() + timeout)
    return timeout


def _run_started(already: int) -> tuple[float, int]:
    """(time, finished trials) when this run first started, kept across worker restarts."""
    with contextlib.suppress(KeyError, ValueError):
        t, n = os.environ[ENV_STARTED].split(",")
        return float(t), int(n)
    started = (time.time(), already)
    if _CAN_REEXEC:
        os.environ[ENV_STARTED] = f"{started[0]},{started[1]}"
    return started


def _recycle(ran: int) -> None:
    out.print(f"restarting this worker after {ran} trials to release TensorFlow's memory")
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, *sys.argv])


def _after_workers(study, trials, codes, export, export_dir, store, data_dir, masked, debug):
    """Summary and export after --jobs workers ended; their worst exit code is ours."""
    from search import runner
    from search._tf import import_tensorflow

    finished = runner.count_finished(study)
    counts = _state_counts(study)
    out.print(f"done: {finished}/{trials} finished ({counts}); workers exited {codes}")
    if 130 in codes:
        err.print(
            f"interrupted: {finished}/{trials} trials finished. Run the same command again to "
            "resume.",
            markup=False,
        )
        raise typer.Exit(130)
    if any(codes):
        err.print(f"error: a worker failed (exit codes {codes}); see its lines above", markup=False)
        raise typer.Exit(max(codes))
    if export and finished:
        from search.export import export_best

        import_tensorflow(quiet=not debug)
        dest = export_dir or Path("studies") / study.study_name / "best"
        card = export_best(study, store, dest, data_dir=data_dir, storage_masked=masked)
        _print_card(card, dest)


def _state_counts(study) -> str:
    from collections import Counter

    c = Counter(t.state.name.lower() for t in study.get_trials(deepcopy=False))
    diverged = sum(
        1 for t in study.get_trials(deepcopy=False) if t.user_attrs.get("end_reason") == "diverged"
    )
    parts = [f"{c.get(k, 0)} {k}" for k in ("complete", "pruned", "fail")]
    if diverged:
        parts.append(f"{diverged} of the pruned diverged")
    if c.get("running"):
        parts.append(f"{c['running']} running")
    return ", ".join(parts)


def _print_card(card: dict, dest: Path) -> None:
    out.print(
        f"exported trial #{card['trial']} ({card['architecture']}) to {dest}/: "
        f"val_accuracy {card['validation_accuracy']:.4f}, "
        f"test_accuracy {card['test_accuracy']:.4f}, test_loss {card['test_loss']:.4f}"
    )


@app.command("export")
def export_cmd(
    study: StudyOpt = None,
    out_dir: Annotated[
        Path, typer.Option("--out", "-o", help="Output directory [default: studies/STUDY/best].")
    ] = None,
    storage: StorageOpt = None,
    artifacts: ArtifactsOpt = None,
    data_dir: DataDirOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Export the best kept model with a model card; test metrics are measured here, once."""
    with user_errors(debug):
        _quiet_libraries(debug)
        from search import storage as st
        from search._tf import import_tensorflow
        from search.config import DEFAULT_CONFIG_NAME, validate_study_name
        from search.export import export_best

        name = validate_study_name(
            study or DEFAULT_CONFIG_NAME.removesuffix(".toml"), where="--study"
        )
        store_path = st.artifact_dir(storage, str(artifacts) if artifacts else None)
        storage_obj = st.open_storage(storage, must_exist=True)
        s = st.load_study(storage_obj, name)
        import_tensorflow(quiet=not debug)
        dest = out_dir or Path("studies") / name / "best"
        card = export_best(
            s,
            st.open_artifact_store(store_path, create=False),
            dest,
            data_dir=data_dir,
            storage_masked=st.mask(st.resolve_url(storage)),
        )
        _print_card(card, dest)


# ---------------------------------------------------------------------------- see the search


class Format(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"


FormatOpt = Annotated[
    Format, typer.Option("--format", "-f", help="table for people, csv or json for scripts.")
]


def _default_study(study: str | None) -> str:
    from search.config import DEFAULT_CONFIG_NAME, validate_study_name

    return validate_study_name(study or DEFAULT_CONFIG_NAME.removesuffix(".toml"), where="--study")


def _print_rows(rows: list[dict], fmt: Format, *, title: str | None = None) -> None:
    from search import inspection

    if fmt is Format.json:
        out.print(inspection.to_json(rows), markup=False, highlight=False)
    elif fmt is Format.csv:
        out.print(inspection.to_csv(rows), markup=False, highlight=False, end="")
    elif rows:
        from rich.measure import Measurement

        table = inspection.to_table(rows, title=title)
        if out.is_terminal:
            out.print(table)
        else:
            # In a pipe rich would squeeze the table into 80 columns and truncate every number.
            width = Measurement.get(out, out.options.update_width(10_000), table).maximum
            Console(width=max(width, 80), highlight=False).print(table)
    else:
        out.print("(none)")


@app.command()
def dashboard(
    host: Annotated[
        str, typer.Option(help="Address to listen on; 0.0.0.0 exposes it to the network.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    storage: StorageOpt = None,
    artifacts: ArtifactsOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Watch studies live in optuna-dashboard, kept models included (Ctrl-C stops it)."""
    with user_errors(debug):
        _quiet_libraries(debug)
        from search import dashboard as dash
        from search import storage as st

        storage_obj = st.open_storage(storage, must_exist=True)
        store = st.open_artifact_store(
            st.artifact_dir(storage, str(artifacts) if artifacts else None), create=False
        )
        server = dash.make_dashboard_server(storage_obj, store, host=host, port=port)
        out.print(
            f"optuna-dashboard for {st.mask(st.resolve_url(storage))} on "
            f"{dash.url_of(server, host)} (Ctrl-C to stop)",
            markup=False,
        )
        _sigterm_as_interrupt()
        dash.serve(server, on_stop=lambda: out.print("dashboard stopped"))


@app.command()
def studies(storage: StorageOpt = None, fmt: FormatOpt = Format.table, debug: DebugOpt = False):
    """Every study in the storage: trials by end state, best value, running or idle."""
    with user_errors(debug):
        _quiet_libraries(debug)
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
        _quiet_libraries(debug)
        from search import inspection
        from search import storage as st

        name = _default_study(study)
        s = st.load_study(st.open_storage(storage, must_exist=True), name)
        rows = inspection.trial_rows(s, top=top)
        if fmt is Format.table:
            rows = [inspection.display_row(r) for r in rows]
        _print_rows(rows, fmt, title=f"{name}: {len(rows)} of {len(s.trials)} trials")


@app.command()
def best(
    study: StudyOpt = None,
    storage: StorageOpt = None,
    fmt: FormatOpt = Format.table,
    debug: DebugOpt = False,
) -> None:
    """The best trial of a study: value, every hyperparameter, learning curve, kept model."""
    with user_errors(debug):
        _quiet_libraries(debug)
        from search import inspection
        from search import storage as st

        s = st.load_study(st.open_storage(storage, must_exist=True), _default_study(study))
        info = inspection.best_trial(s)
        if fmt is Format.json:
            out.print(inspection.to_json(info), markup=False, highlight=False)
        else:
            # trial.params repeats the hyperparameters that were searched: shown once here.
            shown = {k: v for k, v in info.items() if k != "params"}
            _print_rows(
                inspection.key_value_rows(shown), fmt, title=f"best trial of {s.study_name}"
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
        _quiet_libraries(debug)
        from search import inspection
        from search import storage as st
        from search.config import validate_study_name

        name = validate_study_name(study, where="--study")
        storage_obj = st.open_storage(storage, must_exist=True)
        n = len(st.load_study(storage_obj, name).trials)  # StudyError names the studies
        masked = st.mask(st.resolve_url(storage))
        if not yes and not typer.confirm(
            f"Delete study {name!r} ({n} trials) and its kept models from {masked}?"
        ):
            err.print("not deleted", markup=False)
            raise typer.Exit(1)
        store = st.open_artifact_store(
            st.artifact_dir(storage, str(artifacts) if artifacts else None), create=False
        )
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
    debug: DebugOpt = False,
) -> None:
    """An offline HTML report with PNG plots and tables in the lab report's format."""
    with user_errors(debug):
        _quiet_libraries(debug)
        from search import storage as st
        from search.errors import ConfigError, StudyError
        from search.report import LAB_STUDIES, write_report

        if lab and study:
            raise ConfigError("--lab reports the seed-lab studies; give either --lab or --study")
        storage_obj = st.open_storage(storage, must_exist=True)
        if lab:
            names = [n for n in LAB_STUDIES if n in st.study_names(storage_obj)]
            if not names:
                raise StudyError(
                    "no seed-lab study in this storage; run scripts/seed-lab.sh (or "
                    "fsearch run --config studies/seed-lab-architecture.toml) first"
                )
        else:
            names = [_default_study(s) for s in (study or [None])]
        chosen = [st.load_study(storage_obj, n) for n in dict.fromkeys(names)]
        dest = out_dir or Path("studies") / ("seed-lab" if lab else names[0]) / "report"
        rep = write_report(chosen, dest, lab=lab, storage_masked=st.mask(st.resolve_url(storage)))
        best_line = (
            f"best {rep.best.value:.4f} ({rep.best.study} #{rep.best.trial}, "
            f"{rep.best.architecture})"
            if rep.best
            else "no completed trial"
        )
        counts = ", ".join(f"{v} {k}" for k, v in rep.counts.items() if v)
        out.print(f"report of {', '.join(names)} ({counts}); {best_line}", markup=False)
        out.print(f"wrote {dest / 'index.html'} and {len(rep.files) - 1} more files", markup=False)


def main() -> None:
    global _CAN_REEXEC
    _CAN_REEXEC = True  # a real process: `run` may restart itself (never under CliRunner)
    app()


if __name__ == "__main__":
    main()
