"""A run planned before anything starts: the options of `fsearch run` (RunOptions) and the
Plan made from them and a config, with every input checked before a database is touched.

api.run makes the Plan here, then runs it in this process (search.local) or in --jobs
worker processes (search.pool).
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import time
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from rich.console import Console

from search import runner, workers
from search import storage as st
from search.config import (
    DEFAULT_ENSEMBLE,
    DEFAULT_REFIT,
    Config,
    export_folds,
    load_config,
    validate_study_name,
)
from search.errors import ConfigError
from search.events import Events, printer

DEFAULT_TRIALS = 200  # `trials` when not given, except for grid studies (their grid size)


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
    # Queue configurations known to be good for the data first [config's first_trials].
    first_trials: bool | None = _forwarded()
    sampler: str | None = _forwarded()
    pruner: str | None = _forwarded()
    seed: int | None = _forwarded()
    export: bool = _forwarded(True, to_workers=False)  # export the best model at the end
    export_dir: str | None = _forwarded(to_workers=False)  # [studies/STUDY/best]
    # What the end-of-run export makes (`fsearch export` has the same flags): the selected
    # configuration trained again on train + validation, and/or the mean of the K best.
    refit: bool = _forwarded(DEFAULT_REFIT, to_workers=False)
    ensemble: int | None = _forwarded(None, to_workers=False)  # [3; 1 under max_params]
    # Cross-validate the `ensemble` best on K folds of train + validation; export the best
    # one's K fold models averaged (exporting.bag_best). For small tables.
    folds: int | None = _forwarded(None, to_workers=False)
    allow_space_change: bool = _forwarded(False)  # continue a study whose space changed
    # cmaes on a shared database: its sampler unpickles what others wrote there (see check_trusted).
    trust_storage: bool = _forwarded(False)
    # Worker processes on this machine: a number, or "auto" (cpus.auto_jobs: a number for
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
        if self.first_trials is not None and not isinstance(self.first_trials, bool):
            # "auto" is the config's default, not a run option: None leaves it to the config.
            raise ConfigError(
                "first_trials must be True, False or None (the config's), "
                f"got {self.first_trials!r}"
            )

    def worker_args(self, *, config: Path | None, trials: int) -> list[str]:
        """The `fsearch run` arguments of each --jobs worker (it adds its own --worker K):
        these options with --trials resolved, --no-export (the parent exports once) and
        --jobs 1 (a worker starts no workers of its own, whatever the default or FSEARCH_JOBS)."""
        args = ["run", "--no-export", "--jobs", "1", "--trials", str(trials)]
        if config is not None:
            args += ["--config", str(config)]
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            flag = "--" + f.name.replace("_", "-")
            if not f.metadata["to_workers"] or value is None:
                continue
            if value is False:
                if f.default is None:  # a --x/--no-x flag whose default is the config's
                    args.append("--no-" + flag[2:])
                continue
            args += [flag] if value is True else [flag, str(value)]
        return args


@dataclass
class Plan:
    """A run checked and resolved before any worker starts."""

    config: Config
    config_path: Path | None
    config_text: str | None  # the config the run started with: TOML text or Config JSON
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
    # When no more trials start (time.time(); None without a timeout): the bar's ETA is
    # never later.
    deadline: float | None
    console: Console  # where the progress bar is drawn
    events: Events  # what the run says (search/events.py); its listeners show it
    started: float = field(default_factory=time.perf_counter)


def plan(
    config: str | Path | Config | None,
    opts: RunOptions,
    console: Console,
    events: Events | None = None,
) -> Plan:
    """Everything that can be checked without a database is checked first, so a bad input
    leaves nothing behind: config, options, sampler and pruner, data."""
    from search import datasets
    from search.artifacts import artifact_dir, open_artifact_store
    from search.space import grid_search_space, grid_size

    events = events if events is not None else Events(printer(console))

    if isinstance(config, Config):
        path, cfg, text = None, config, None
        if opts.jobs > 1:
            path = config_file(cfg)
            text = path.read_text(encoding="utf-8")
    elif config is None and opts.data and os.environ.get(workers.ENV_CONFIG) is None:
        # --data without a config: the study `fsearch init` would write, as a Config; workers
        # and restarts get it as JSON (Config.from_json), never re-made from a changed file.
        from search.data.init_toml import data_time_budget, study_config

        path = None
        cfg, decided, rows = study_config(opts.data, opts.target or "")
        text = json.dumps(cfg.to_json())
        workers.pin_config_text(text)
        if opts.trials is None and opts.timeout is None:
            # A default that ends in minutes (init_toml.data_time_budget); workers and
            # restarts get it through --timeout like any other.
            opts = dataclasses.replace(opts, timeout=data_time_budget(rows))
            events.emit(
                "note",
                f"--data without --trials or --timeout: searching for "
                f"{opts.timeout / 60:.0f} min (sized to {rows:,} training rows) or "
                f"{DEFAULT_TRIALS} trials, whichever ends first; --timeout SECONDS or "
                "--trials N to change it",
                timeout=opts.timeout,
                rows=rows,
            )
        for note in decided:
            events.emit("note", note)
    else:
        path = config
        cfg, text = workers.pinned_config(config)
    cfg = with_data_options(cfg, opts)
    cfg = cfg.replace_study(
        name=opts.study,
        sampler=opts.sampler,
        pruner=opts.pruner,
        seed=opts.seed,
        first_trials=opts.first_trials,
    )
    if opts.export:  # an export option the run would only refuse at its end
        folds = export_folds(
            opts.folds,
            cfg.study.folds,
            refit=opts.refit,
            max_params=cfg.study.max_params or None,
            ensemble=opts.ensemble,
        )
        if folds and opts.folds is None:
            n = opts.ensemble or DEFAULT_ENSEMBLE
            events.emit(
                "note",
                f"the export cross-validates the {n} best configurations on {folds} folds of "
                f"train + validation and exports the best one's {folds} fold models averaged "
                f"([study] folds = {folds}, set for small tables); --folds 0 refits the {n} "
                "best instead",
                folds=folds,
            )
    grid = grid_search_space(cfg) if cfg.study.sampler == "grid" else None
    trials = opts.trials or (grid_size(cfg) if grid is not None else DEFAULT_TRIALS)
    runner.check_sampler(cfg.study)
    # Resolved once: it may read FSEARCH_STORAGE_FILE, and every use below needs the same URL.
    url = st.resolve_url(opts.storage)
    check_trusted(cfg, opts, url)
    pruner = runner.make_pruner(cfg.study, max_epochs=cfg.max_epochs)
    worker = workers.parse_worker(opts.worker)
    timeout, restart_every = workers.deadline_timeout(opts.timeout), workers.restart_every()
    # The target is checked here, before any worker starts; --jobs workers load their own
    # copy of the data and print its notes (this process does not hold one meanwhile).
    datasets.target_of(cfg.data, read_whole=opts.jobs == 1)
    split = None if opts.jobs > 1 else datasets.load_split(cfg.data, opts.data_dir)
    if split is not None:
        for note in split.notes:
            events.emit("note", note)
    if opts.warm_start:
        validate_study_name(opts.warm_start, where="--warm-start study")
    store_path = artifact_dir(url, opts.artifacts)
    storage = st.open_storage(url, heartbeat=True, connections=st.WORKER_CONNECTIONS)
    return Plan(
        config=cfg,
        config_path=Path(path) if path is not None else None,
        config_text=text,
        options=opts,
        trials=trials,
        grid=grid,
        pruner=pruner,
        worker=worker,
        timeout=timeout,
        deadline=None if timeout is None else time.time() + timeout,
        restart_every=restart_every,
        split=split,
        storage=storage,
        store=open_artifact_store(store_path),
        url=url,
        masked=st.mask(url),
        console=console,
        events=events,
    )


def with_data_options(cfg: Config, opts: RunOptions) -> Config:
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


def check_trusted(cfg: Config, opts: RunOptions, url: str) -> None:
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


def config_file(cfg: Config) -> Path:
    """The TOML a Config came from, for --jobs workers (separate processes that read it)."""
    source = Path(cfg.source)
    if source.is_file() and load_config(source) == cfg:
        return source
    raise ConfigError(
        "jobs > 1 starts `fsearch run` worker processes, which read the study config from its "
        "TOML file: pass the file's path (and name changes as options) instead of a Config"
    )
