"""Study benchmark: trials per hour and where a trial's time goes; memory over many trials.

    .venv/bin/python -m benchmarks.study --minutes 15        # default study, time shares
    .venv/bin/python -m benchmarks.study --memory-trials 200 # RSS over 200 tiny trials
    .venv/bin/python -m benchmarks.study --db studies/fsearch.db --study fashion-mnist-mlp

The first mode runs the default study in-process for a fixed wall-clock budget with every
RDBStorage call timed, so "storage" is measured, not inferred. The second runs 200 trials of
a tiny config to check that memory does not grow trial after trial. The third summarises an
existing study (e.g. the full 200-trial run): wall time, trials per hour, state counts, time
in build / training / validation as recorded in the trials' user attributes.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from benchmarks.common import (  # noqa: E402
    WHAT_REACHES_COUNTS,
    epochs_seconds,
    first_reaching,
    markdown_table,
    trial_seconds,
    write_section,
)
from search.outcomes import count_outcomes, finished_states  # noqa: E402

TINY = """
[study]
name = "memory"
seed = 3
[data]
validation_size = 500
train_size = 2000
[train]
steps_per_execution = 8
[space]
layers = { low = 1, high = 4 }
width = { low = 16, high = 256, log = true }
activation = "relu"
optimizer = ["sgd", "adam", "rmsprop"]
learning_rate = { low = 1e-4, high = 0.3, log = true }
momentum = { low = 0.0, high = 0.95 }
regularizer = ["none", "l1", "l2"]
reg_strength = { low = 1e-6, high = 1e-3, log = true }
dropout = { low = 0.0, high = 0.5 }
batch_size = [64, 128, 256]
epochs = 2
"""


class StorageTimer:
    """Accumulates wall time spent inside RDBStorage's public methods (outermost calls)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.calls = 0
        self._depth = 0

    @contextlib.contextmanager
    def installed(self):
        import optuna

        cls = optuna.storages.RDBStorage
        saved = {}
        for name in dir(cls):
            attr = getattr(cls, name)
            if name.startswith("_") or not callable(attr):
                continue
            saved[name] = attr
            setattr(cls, name, self._wrap(attr))
        try:
            yield self
        finally:
            for name, attr in saved.items():
                setattr(cls, name, attr)

    def _wrap(self, fn):
        timer = self

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            if timer._depth:
                return fn(*args, **kwargs)
            timer._depth += 1
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                timer.seconds += time.perf_counter() - t0
                timer.calls += 1
                timer._depth -= 1

        return wrapper


def _run(config, n_trials: int | None, timeout: float | None, workdir: Path):
    """Run a study in-process through fsearch's own entry point (search.api.run), returning
    (study, wall seconds: data loading and study creation included)."""
    from rich.console import Console

    from search import api

    result = api.run(
        config,
        trials=n_trials or 10**6,
        timeout=timeout,
        storage=f"sqlite:///{workdir}/bench.db",
        artifacts=str(workdir / "art"),
        export=False,
        console=Console(quiet=True),
    )
    return result.study, result.seconds


def shares(study, wall: float, storage_s: float | None) -> tuple[list[list], dict]:
    # Finished trials: a failed (e.g. interrupted) trial recorded no timings.
    trials = study.get_trials(deepcopy=False, states=finished_states())
    ua = [t.user_attrs for t in trials]
    build = sum(a.get("build_seconds", 0) for a in ua)
    epochs_total = sum(epochs_seconds(a) for a in ua)
    val = sum(a.get("val_seconds", 0) for a in ua)
    train = epochs_total - val
    rows = [
        ["model build + compile", build],
        ["training (incl. graph tracing)", train],
        ["validation passes", val],
    ]
    if storage_s is not None:
        rows.append(["storage (RDBStorage calls, measured)", storage_s])
    other = wall - sum(r[1] for r in rows)
    rows.append(["other (sampler, pruner, callbacks, saving models)", other])
    table = [[name, f"{s:.1f}", f"{100 * s / wall:.1f}%"] for name, s in rows]
    counts = count_outcomes(trials)
    return table, {"trials": len(trials), "per_hour": 3600 * len(trials) / wall, **counts}


def running_time(trials, max_gap: float = 120.0) -> tuple[float, float]:
    """(seconds the study was running, seconds it was paused) from its trials' start/end times.

    A gap of more than `max_gap` seconds with no trial running is a pause (the study was
    stopped and resumed later), not time of the study; shorter gaps (sampler, storage, a
    worker restart) count.
    """
    spans = sorted((t.datetime_start, t.datetime_complete) for t in trials)
    running = paused = 0.0
    start, end = spans[0]
    for s0, s1 in spans[1:]:
        gap = (s0 - end).total_seconds()
        if gap > max_gap:
            running += (end - start).total_seconds()
            paused += gap
            start = s0
        end = max(end, s1)
    running += (end - start).total_seconds()
    return running, paused


def _memory_arm(trials: int, recycle: str, tmp: Path) -> tuple[list[float], float]:
    """`fsearch run` of the tiny config in a real process (so restarts happen as for users);
    (RSS after each trial, as the process that ran it recorded it; wall seconds)."""
    import subprocess
    import sys

    import optuna

    cfg_path = tmp / "tiny.toml"
    cfg_path.write_text(TINY)
    db = tmp / f"mem-{recycle}.db"
    exe = Path(sys.executable).parent / "fsearch"
    cmd = [str(exe), "run", "--config", str(cfg_path), "--storage", f"sqlite:///{db}"]
    cmd += ["--artifacts", str(tmp / f"art-{recycle}"), "--trials", str(trials), "--no-export"]
    cmd += ["--jobs", "1"]  # RSS after each trial of one process, whatever the default
    env = {**os.environ, "FSEARCH_RECYCLE_TRIALS": recycle}
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env)
    wall = time.perf_counter() - t0
    study = optuna.load_study(study_name="memory", storage=f"sqlite:///{db}")
    return [t.user_attrs["rss_mb"] for t in study.trials if t.user_attrs.get("rss_mb")], wall


def memory(args) -> str:
    """RSS over many tiny trials with the default worker restarts and without them."""
    from search.workers import RECYCLE_TRIALS

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, recycle in ((f"every {RECYCLE_TRIALS} trials", str(RECYCLE_TRIALS)),
                               ("none", "0")):  # fmt: skip
            rss, wall = _memory_arm(args.memory_trials, recycle, Path(tmp))
            at10, last = rss[min(9, len(rss) - 1)], rss[-1]
            rows.append(
                [label, len(rss), f"{wall:.0f}", f"{at10:.0f}", f"{last:.0f}",
                 f"{last - at10:+.0f}", f"{max(rss):.0f}"]
            )  # fmt: skip
    return (
        f"Memory: `fsearch run` of {args.memory_trials} tiny trials (2,000 images, 2 epochs, 1-4 "
        "layers up to 256 wide), once with the default worker restarts and once without "
        "(FSEARCH_RECYCLE_TRIALS=0), one after the other; target: growth within 200 MB.\n\n"
        + markdown_table(
            [
                "restarts",
                "trials",
                "seconds",
                "RSS after trial 10 MB",
                "RSS at the end MB",
                "growth MB",
                "max MB",
            ],
            rows,
        )  # fmt: skip
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=0, help="run the default study this long")
    ap.add_argument("--memory-trials", type=int, default=0, help="tiny trials for the RSS check")
    ap.add_argument("--db", help="summarise an existing SQLite study database")
    ap.add_argument("--study", default="fashion-mnist-mlp")
    ap.add_argument(
        "--section", help="BENCHMARKS.md section to write (default: the mode's own: study, memory)"
    )
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()

    import optuna

    from search._tf import import_tensorflow
    from search.config import load_config

    import_tensorflow()

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    import warnings

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    sections = []

    if args.db:
        study = optuna.load_study(study_name=args.study, storage=f"sqlite:///{args.db}")
        trials = [t for t in study.trials if t.datetime_complete]
        wall, paused = running_time(trials)
        # Workers that overlapped (--jobs, or a second `fsearch run`) make the summed trial time
        # exceed the wall time; shares are then of the summed trial time.
        busy = sum(trial_seconds(t) for t in trials if t.state.name != "FAIL")
        failed_s = sum(trial_seconds(t) for t in trials if t.state.name == "FAIL")
        table, c = shares(study, max(wall - failed_s, busy), None)
        c["per_hour"] = 3600 * c["trials"] / wall
        best = study.best_trial
        n_failed = sum(t.state.name == "FAIL" for t in trials)
        full = [t for t in trials if t.user_attrs.get("end_reason") == "completed"]
        full_s = sum(trial_seconds(t) for t in full)
        first_hit = first_reaching(trials, 0.89)
        sections.append(
            (
                "study",
                "--db",
                args.db,
                f"Existing study `{args.study}` ({args.db}): {c['trials']} finished trials in "
                f"{wall / 60:.1f} min of running time"
                + (f" (a pause of {paused / 60:.0f} min left out)" if paused else "")
                + f" = **{c['per_hour']:.0f} trials/hour** "
                f"(complete {c.get('complete', 0)}, pruned {c.get('pruned', 0)}, "
                f"diverged {c.get('diverged', 0)}; failed {n_failed}, {failed_s:.0f} s, "
                "left out of the shares below); best validation "
                f"accuracy {best.value:.4f} (trial #{best.number}, "
                f"{best.user_attrs.get('architecture')}).\n\n"
                + markdown_table(["where the time went", "seconds", "share of wall"], table)
                + f"\n\nTrials that trained all their epochs: {len(full)} of {c['trials']}, "
                f"**{100 * full_s / busy:.0f}%** of the summed trial time. First trial with "
                "validation accuracy >= 0.89 ended "
                + (f"{first_hit / 60:.1f} min after the start. " if first_hit else "never. ")
                + WHAT_REACHES_COUNTS,
            )
        )

    if args.minutes:
        with tempfile.TemporaryDirectory() as tmp, StorageTimer().installed() as timer:
            cfg = load_config()
            study, wall = _run(cfg, None, args.minutes * 60, Path(tmp))
            table, c = shares(study, wall, timer.seconds)
        n = c["trials"]
        sections.append(
            (
                "study-minutes",
                "--minutes",
                f"{args.minutes:g}",
                f"Default study for {args.minutes:g} min in-process: {n} finished trials = "
                f"**{c['per_hour']:.0f} trials/hour**; storage {timer.calls} calls, "
                f"{1000 * timer.seconds / max(n, 1):.0f} ms per trial = "
                f"**{100 * timer.seconds / wall:.2f}%** of the wall time.\n\n"
                + markdown_table(["where the time went", "seconds", "share of wall"], table),
            )
        )

    if args.memory_trials:
        sections.append(("memory", "--memory-trials", args.memory_trials, memory(args)))

    # Each mode owns its section of BENCHMARKS.md, so running one does not erase another's.
    for name, flag, value, body in sections:
        print(body)
        if not args.no_write:
            section = args.section or name
            write_section(
                section,
                body,
                f"python -m benchmarks.study {flag} {value}"
                + (f" --section {section}" if args.section else ""),
            )


if __name__ == "__main__":
    main()
