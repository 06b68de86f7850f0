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
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import os
import time
import warnings
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape

from search import outcomes, runner, workers
from search import storage as st
from search.config import (
    DEFAULT_CONFIG_NAME,
    DEFAULT_REFIT,
    Config,
    load_config,
    validate_study_name,
)
from search.errors import ConfigError, StudyError, StudyInterrupted, WorkerFailed
from search.metrics import of_study

if TYPE_CHECKING:
    import optuna

DEFAULT_TRIALS = 200  # `trials` when not given, except for grid studies (their grid size)
WARM_START_TRIALS = 10  # --warm-start queues this many of the other study's best trials


def _forwarded(default: Any = None, *, to_workers: bool = True) -> Any:
    return field(default=default, metadata={"to_workers": to_workers})


@dataclass(frozen=True)
class RunOptions:
    """Every option of `fsearch run`, written once: the CLI flag of each is its name with
    dashes (`data_dir` is `--data-dir`), and `--jobs` workers get the ones marked to_workers.
    None means the config's value or the default."""

    # Finished trials the study should hold: a total, so running again resumes to it.
    trials: int | None = _forwarded(to_workers=False)
    timeout: float | None = _forwarded()  # stop starting trials after this many seconds
    study: str | None = _forwarded()  # study name [config's]
    # SQLAlchemy URL [$FSEARCH_STORAGE, else sqlite:///studies/fsearch.db]; workers get it
    # by environment, never argv, which `ps` shows to every user.
    storage: str | None = _forwarded(to_workers=False)
    artifacts: str | None = _forwarded()  # kept models: a directory or s3://BUCKET[/PREFIX]
    data_dir: str | None = _forwarded()  # the four Fashion-MNIST .gz files
    # Your own data: a .csv/.parquet (with `target`), .npz or IDX folder; without a config,
    # the study is made for it (what `fsearch init` prints).
    data: str | None = _forwarded()
    target: str | None = _forwarded()  # the label column of a table
    # Enqueue another study's best configurations (the parameters valid in this space) first.
    warm_start: str | None = _forwarded(to_workers=False)
    sampler: str | None = _forwarded()
    pruner: str | None = _forwarded()
    seed: int | None = _forwarded()
    export: bool = _forwarded(True, to_workers=False)  # export the best model at the end
    export_dir: str | None = _forwarded(to_workers=False)  # [studies/STUDY/best]
    # What the end-of-run export makes (`fsearch export` has the same flags): the selected
    # configuration trained again on train + validation, and/or the mean of the K best.
    refit: bool = _forwarded(DEFAULT_REFIT, to_workers=False)
    ensemble: int | None = _forwarded(None, to_workers=False)  # [3; 1 under max_params]
    allow_space_change: bool = _forwarded(False)  # continue a study whose space changed
    # cmaes on a shared database: its sampler unpickles what others wrote there (see _plan).
    trust_storage: bool = _forwarded(False)
    # Worker processes on this machine: a number, or "auto" (workers.auto_jobs: a number for
    # the machine's cores and GPUs), which becomes that number when the options are made.
    jobs: int | str = _forwarded(1, to_workers=False)
    worker: int | str | None = _forwarded(to_workers=False)  # seeds this worker's sampler
    debug: bool = _forwarded(False)  # library logs (TensorFlow start-up, Optuna) and tracebacks

    def __post_init__(self) -> None:
        # The CLI hands over its parsed types: choices as Enums, paths as Paths.
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Enum):
                object.__setattr__(self, f.name, value.value)
            elif isinstance(value, Path):
                object.__setattr__(self, f.name, str(value))
        # Resolved once, here: everything after compares numbers (a bad value: ConfigError).
        object.__setattr__(self, "jobs", workers.parse_jobs(self.jobs))

    @classmethod
    def of(cls, options: RunOptions | None = None, **changes: Any) -> RunOptions:
        """options (or the defaults) with changes; an unknown name is a ConfigError."""
        names = [f.name for f in dataclasses.fields(cls)]
        for key in changes:
            if key not in names:
                close = difflib.get_close_matches(key, names, n=1)
                hint = f"did you mean {close[0]!r}?" if close else f"options: {', '.join(names)}"
                raise ConfigError(f"unknown run option {key!r}; {hint}")
        return dataclasses.replace(options or cls(), **changes)

    def check(self) -> None:
        if self.trials is not None and self.trials < 1:
            raise ConfigError(f"--trials must be at least 1, got {self.trials}")
        if self.timeout is not None and self.timeout <= 0:
            raise ConfigError(f"--timeout must be a positive number of seconds, got {self.timeout}")
        if self.ensemble is not None and self.ensemble < 1:
            raise ConfigError(f"--ensemble must be at least 1, got {self.ensemble}")

    def worker_args(self, *, config: Path | None, trials: int) -> list[str]:
        """The `fsearch run` arguments of each --jobs worker (it adds its own --worker K):
        these options with --trials resolved and --no-export (the parent exports once)."""
        args = ["run", "--no-export", "--trials", str(trials)]
        if config is not None:
            args += ["--config", str(config)]
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            flag = "--" + f.name.replace("_", "-")
            if not f.metadata["to_workers"] or value is None or value is False:
                continue
            args += [flag] if value is True else [flag, str(value)]
        return args


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
        return _best_trial(self.study)

    @property
    def best_value(self) -> float | None:
        best = self.best_trial
        return None if best is None else best.value


@dataclass
class _Plan:
    """A run checked and resolved before any worker starts."""

    config: Config
    config_path: Path | None
    config_text: str | None  # the TOML the run started with (None: a Config object)
    options: RunOptions
    trials: int
    grid: dict[str, list] | None
    pruner: Any
    worker: int
    timeout: float | None
    restart_every: int | None
    split: Any  # data.Split for a run in this process; None for --jobs (workers load theirs)
    storage: Any
    store: Any
    url: str  # the storage URL, resolved (--storage, $FSEARCH_STORAGE, its file, the default)
    masked: str
    console: Console
    started: float = field(default_factory=time.perf_counter)


def run(
    config: str | Path | Config | None = None,
    options: RunOptions | None = None,
    /,
    *,
    console: Console | None = None,
    **option_values: Any,
) -> RunResult:
    """Run (or resume) a study until it holds `trials` finished trials, then export the best.

    config: a study TOML path or a Config [the default Fashion-MNIST study]. Options as keyword
    arguments (`trials=50, storage=..., jobs=2`) or a RunOptions. Progress and one line per
    trial go to `console` (a rich Console; the default one renders in notebooks too).
    """
    opts = RunOptions.of(options, **option_values)
    opts.check()
    # markup=False: stored names and error messages are printed as they are (see cli.out).
    console = console or Console(highlight=False, soft_wrap=True, markup=False)
    quiet_libraries(opts.debug)
    plan = _plan(config, opts, console)
    if opts.jobs > 1:
        return _run_workers(plan)
    return _run_here(plan)


def _plan(config: str | Path | Config | None, opts: RunOptions, console: Console) -> _Plan:
    """Everything that can be checked without a database is checked first, so a bad input
    leaves nothing behind: config, options, sampler and pruner, data."""
    from search import datasets
    from search.artifacts import artifact_dir, open_artifact_store
    from search.space import grid_search_space, grid_size

    if isinstance(config, Config):
        path, cfg, text = None, config, None
        if opts.jobs > 1:
            path = _config_file(cfg)
            text = path.read_text(encoding="utf-8")
    elif config is None and opts.data and os.environ.get(workers.ENV_CONFIG) is None:
        # --data without a config: the study `fsearch init` would write (workers get its text).
        from search.datasets import study_toml

        path = None
        text, _ = study_toml(opts.data, opts.target or "")
        cfg = load_config(f"<made for --data {opts.data}>", text=text)
        workers.pin_config_text(text)
    else:
        path = config
        cfg, text = workers.pinned_config(config)
    cfg = _with_data_options(cfg, opts)
    cfg = cfg.replace_study(
        name=opts.study, sampler=opts.sampler, pruner=opts.pruner, seed=opts.seed
    )
    grid = grid_search_space(cfg) if cfg.study.sampler == "grid" else None
    trials = opts.trials or (grid_size(cfg) if grid is not None else DEFAULT_TRIALS)
    runner.check_sampler(cfg.study)
    # Resolved once: it may read FSEARCH_STORAGE_FILE, and every use below needs the same URL.
    url = st.resolve_url(opts.storage)
    _check_trusted(cfg, opts, url)
    pruner = runner.make_pruner(cfg.study, max_epochs=cfg.max_epochs)
    worker = workers.parse_worker(opts.worker)
    timeout, restart_every = workers.deadline_timeout(opts.timeout), workers.restart_every()
    # --jobs workers load their own copy; this process does not hold one meanwhile.
    target = datasets.target_of(cfg.data, read_whole=opts.jobs == 1)
    split = None if opts.jobs > 1 else datasets.load_split(cfg.data, opts.data_dir)
    if split is not None:
        for note in split.notes:
            console.print(note, markup=False)
    elif target.note:
        console.print(target.note, markup=False)
    if opts.warm_start:
        validate_study_name(opts.warm_start, where="--warm-start study")
    store_path = artifact_dir(url, opts.artifacts)
    storage = st.open_storage(url, heartbeat=True)
    return _Plan(
        config=cfg,
        config_path=Path(path) if path is not None else None,
        config_text=text,
        options=opts,
        trials=trials,
        grid=grid,
        pruner=pruner,
        worker=worker,
        timeout=timeout,
        restart_every=restart_every,
        split=split,
        storage=storage,
        store=open_artifact_store(store_path),
        url=url,
        masked=st.mask(url),
        console=console,
    )


def _with_data_options(cfg: Config, opts: RunOptions) -> Config:
    """--data / --target on top of the config's [data]; naming two different data sets is
    an error, not a silent choice."""
    if not opts.data:
        if opts.target and not cfg.data.source:
            raise ConfigError("--target names a column of your data: give the file with --data")
        return cfg.replace_data(target=opts.target)
    if opts.data_dir:
        raise ConfigError(
            "--data-dir is where Fashion-MNIST's files are; with --data (your own data) leave "
            "it out"
        )
    if cfg.data.source and Path(cfg.data.source).resolve() != Path(opts.data).resolve():
        raise ConfigError(
            f"--data {opts.data} and the config's [data] source {cfg.data.source!r} name two "
            "data sets; give one of them"
        )
    return cfg.replace_data(source=opts.data, target=opts.target)


def _check_trusted(cfg: Config, opts: RunOptions, url: str) -> None:
    """Optuna's CmaEsSampler unpickles its state from trial system attributes: whoever can
    write a shared database could run code in every cmaes worker. Only a local SQLite file,
    or a database the user vouches for, is used with it."""
    if cfg.study.sampler != "cmaes" or opts.trust_storage:
        return
    if st.parse_url(url).sqlite_path is None:
        raise ConfigError(
            "the cmaes sampler loads its state with pickle from the study database, so anyone "
            "who can write this shared database could run code on every worker; use another "
            "sampler, or add --trust-storage if only trusted people can write to it"
        )


def _config_file(cfg: Config) -> Path:
    """The TOML a Config came from, for --jobs workers (separate processes that read it)."""
    source = Path(cfg.source)
    if source.is_file() and load_config(source) == cfg:
        return source
    raise ConfigError(
        "jobs > 1 starts `fsearch run` worker processes, which read the study config from its "
        "TOML file: pass the file's path (and name changes as options) instead of a Config"
    )


def _run_here(plan: _Plan) -> RunResult:
    """The search in this process; the study may be shared with workers elsewhere."""
    from search._tf import import_tensorflow
    from search.objective import Objective
    from search.progress import RunProgress

    cfg, opts, out = plan.config, plan.options, plan.console
    study, created = _open_study(plan)
    already = outcomes.count_finished(study)
    _print_header(plan, created, already)
    best = None
    with contextlib.suppress(ValueError):
        best = study.best_value
    import_tensorflow(quiet=not opts.debug)
    workers.apply_thread_limits()
    objective = Objective(cfg, plan.split, artifact_store=plan.store)
    _warm_start(plan, study)
    waiting = []

    def on_wait(finished: int, running: int) -> None:
        if not waiting:
            out.print(
                f"waiting for {running} running trial(s) of other workers ({finished} done)",
                markup=False,
            )
        waiting.append(running)

    started = workers.run_started(already)  # the first start's, across worker restarts
    progress = RunProgress(
        out,
        target=plan.trials,
        already=already,
        best=best,
        started=started,
        show=not os.environ.get(workers.ENV_NO_BAR),
        metric=of_study(study),
    )
    with workers.interrupts_caught() as interrupted:
        try:
            with progress as bar:
                loop = runner.run_study(
                    study,
                    objective,
                    cfg,
                    n_trials=plan.trials,
                    timeout=plan.timeout,
                    on_trial=bar.on_trial,
                    on_wait=on_wait,
                    stop_requested=interrupted.is_set,
                    max_trials_here=plan.restart_every,
                )
        except KeyboardInterrupt:
            raise StudyInterrupted(outcomes.count_finished(study), plan.trials) from None
    if loop.recycle:
        out.print(
            f"restarting this worker after {loop.ran} trials to release TensorFlow's memory",
            markup=False,
        )
        workers.restart_process()
    counts = outcomes.count_outcomes(study.get_trials(deepcopy=False))
    _print_done(out, study, counts, loop, plan.trials, time.time() - started[0])
    return _finish(plan, study, created, counts)


def _print_header(plan: _Plan, created: bool, already: int) -> None:
    cfg, split = plan.config, plan.split
    plan.console.print(
        f"study [bold]{cfg.study.name}[/] ({'new' if created else 'resumed'}) on "
        f"{escape(plan.masked)}: "
        f"{already}/{plan.trials} finished; sampler {cfg.study.sampler}, pruner "
        f"{cfg.study.pruner}; {len(split.y_train):,} train / {len(split.y_val):,} validation "
        + ("images" if split.kind == "fashion-mnist" else "rows"),
        markup=True,
    )


def _print_done(
    out: Console, study, counts: dict[str, int], loop, target: int, seconds: float
) -> None:
    """seconds: since this run first started (a worker restart every N trials included; the
    loop's own seconds are only those since the last restart)."""
    best_trial = _best_trial(study)
    metric = of_study(study)
    out.print(
        f"done: {loop.finished}/{target} finished ({outcomes.summary(counts)}) in "
        f"{seconds:.0f} s this run; "
        + (
            f"best {metric.name} {metric.format(best_trial.value)} (trial #{best_trial.number})"
            if best_trial is not None
            else "no completed trial yet"
        ),
        markup=False,
    )
    if loop.finished < target:
        out.print(
            f"stopped early (timeout); run the same command again to reach {target}", markup=False
        )


def _best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    try:
        return study.best_trial
    except ValueError:  # no complete trial yet
        return None


def _open_study(plan: _Plan) -> tuple[optuna.Study, bool]:
    """The study with this process's sampler, dead workers' trials failed and re-queued."""
    from search import studies

    cfg = plan.config
    n_existing = 0
    if cfg.study.name in studies.study_names(plan.storage):
        n_existing = len(studies.load_study(plan.storage, cfg.study.name).trials)
    seed = runner.process_seed(cfg.study, n_existing=n_existing, worker=plan.worker)
    study, created = studies.create_or_load_study(
        plan.storage,
        cfg,
        sampler=runner.make_sampler(cfg.study, seed=seed, grid=plan.grid),
        pruner=plan.pruner,
        allow_space_change=plan.options.allow_space_change,
    )
    studies.check_split(study, plan.split)
    # Trials of workers that died (here or elsewhere) are failed and re-queued before counting.
    st.fail_stale_trials(study)
    return study, created


def _warm_start(plan: _Plan, study: optuna.Study) -> None:
    """--warm-start STUDY: its best configurations go first (once per study and source)."""
    from search import studies

    source = plan.options.warm_start
    if not source:
        return
    n, dropped = studies.warm_start(
        study, studies.load_study(plan.storage, source), plan.config, n=WARM_START_TRIALS
    )
    plan.console.print(
        f"warm start: {n} configuration(s) of study {source!r} queued"
        + (f" (not in this space, left to the sampler: {', '.join(dropped)})" if dropped else "")
        if n
        else f"warm start: study {source!r} already queued here, or has no completed trial",
        markup=False,
    )


def _run_workers(plan: _Plan) -> RunResult:
    """--jobs N: N `fsearch run` worker processes here share the study; one bar for all."""
    from search import devices, studies
    from search.progress import RunProgress

    cfg, opts, out = plan.config, plan.options, plan.console
    # Create (or check) the study once here, so the workers only join it.
    study, created = studies.create_or_load_study(
        plan.storage, cfg, allow_space_change=opts.allow_space_change
    )
    st.fail_stale_trials(study)
    _warm_start(plan, study)
    threads = workers.threads_per_worker(opts.jobs)
    already = outcomes.count_finished(study)
    out.print(
        f"study {cfg.study.name} ({'new' if created else 'resumed'}) on {plan.masked}: "
        f"{already}/{plan.trials} finished; {opts.jobs} workers, "
        f"{threads} {devices.backend()} thread{'s' if threads > 1 else ''} each",
        markup=False,
    )
    # The workers print only trial lines; this bar is fed from the storage.
    with (
        RunProgress(
            out, target=plan.trials, already=already, best=None, metric=of_study(study)
        ) as bar,
        bar.following(study),
    ):
        codes = workers.run_local_workers(
            opts.worker_args(config=plan.config_path, trials=plan.trials),
            jobs=opts.jobs,
            base_worker=plan.worker,
            env={
                st.ENV_STORAGE: plan.url,
                workers.ENV_NO_BAR: "1",
                # The config as this process read it, whatever happens to the file meanwhile.
                workers.ENV_CONFIG: plan.config_text,
            },
            echo=lambda line: out.print(line, markup=False, highlight=False),
        )
    counts = outcomes.count_outcomes(study.get_trials(deepcopy=False))
    finished = outcomes.finished(counts)
    out.print(
        f"done: {finished}/{plan.trials} finished ({outcomes.summary(counts)}); "
        f"workers exited {codes}",
        markup=False,
    )
    if 130 in codes:
        raise StudyInterrupted(finished, plan.trials)
    if any(codes):
        raise WorkerFailed(codes)
    return _finish(plan, study, created, counts)


def _finish(plan: _Plan, study: optuna.Study, created: bool, counts: dict[str, int]) -> RunResult:
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
        plan.console,
        refit=opts.refit,
        ensemble=opts.ensemble,
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
) -> dict[str, Any]:
    """Export the study's best kept model to `out` [studies/STUDY/best]: model.keras and a model
    card whose test metrics are measured here, once. Returns the card.

    refit: train each exported configuration again on train + validation (seeded, for the
    epochs it was selected at). ensemble=K: the mean of the K best models' outputs [3, or 1
    under a parameter budget]. The defaults are what `fsearch run` exports.
    max_params: the best within this many parameters (per member)."""
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
        console,
        refit=refit,
        ensemble=ensemble,
        max_params=max_params,
    )


def _export(
    study, store, dest: Path, data_dir, masked: str, debug: bool, console, **how: Any
) -> dict:
    from search._tf import import_tensorflow
    from search.exporting import export_best

    import_tensorflow(quiet=not debug)
    progress = None if console is None else (lambda line: console.print(line, markup=False))
    # SIGTERM as Ctrl-C: the export's scratch folder is removed and the previous export
    # stays whole (export_best's finally) instead of the process dying mid-way.
    with workers.interrupts_caught():
        card = export_best(
            study, store, dest, data_dir=data_dir, storage_masked=masked, progress=progress, **how
        )
    if console is not None:
        test = ", ".join(f"{k} {card[k]:.4f}" for k in card["test_metrics"])
        info = card["export"]
        what = (
            f"trial #{card['trial']} ({card['architecture']})"
            if len(info["members"]) == 1
            else f"trials {', '.join(f'#{n}' for n in info['members'])}"
        )
        val = info.get("ensemble_validation_value", card["validation_value"])
        console.print(
            f"exported {what}, {info['mode']}, to {dest}/: {card['metric']} {val:.4f}"
            + (" (at selection)" if "refit" in info else "")
            + f", {test}; {card['export_seconds']:.0f} s",
            markup=False,
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
        log=None if console is None else lambda line: console.print(line, markup=False),
    )
