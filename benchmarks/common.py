"""Shared helpers for the benchmarks: machine facts, a matmul rate, BENCHMARKS.md sections."""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import re
import statistics
import time
from pathlib import Path

BENCHMARKS_MD = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def append_record(log: str | Path, record: dict) -> None:
    """Append one JSON line to a benchmark's committed log (benchmarks/results/*.jsonl),
    stamped with the time (UTC) and the machine (CPU, cores) it was measured on."""
    import json

    stamp = {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
    }
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as f:
        f.write(json.dumps(stamp | record) + "\n")


def machine_line() -> str:
    from search.exporting import package_versions

    v = package_versions()
    pk = ", ".join(f"{k} {v[k]}" for k in ("python", "tensorflow", "keras", "optuna", "numpy"))
    return f"{cpu_name()}, {os.cpu_count()} cores; {pk}"


def matmul_gflops(n: int = 2048, repeats: int = 10) -> float:
    """float32 n x n matmul rate through TensorFlow, best of `repeats` (the arithmetic ceiling)."""
    import tensorflow as tf

    a = tf.random.normal((n, n))
    b = tf.random.normal((n, n))
    (a @ b).numpy()  # warm up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        (a @ b).numpy()
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def write_section(name: str, body: str, command: str) -> None:
    """Replace (or append) the section between <!-- name:start --> and <!-- name:end -->."""
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    block = (
        f"<!-- {name}:start -->\n"
        f"Measured {stamp} on {machine_line()}.\n"
        f"Reproduce: `{command}`\n\n{body.rstrip()}\n"
        f"<!-- {name}:end -->"
    )
    text = BENCHMARKS_MD.read_text() if BENCHMARKS_MD.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"<!-- {name}:start -->.*?<!-- {name}:end -->", re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text)
    else:
        text = text.rstrip() + f"\n\n## {name}\n\n{block}\n"
    BENCHMARKS_MD.write_text(text if text.endswith("\n") else text + "\n")


def load_finished_study(path: Path):
    """The one study in a kept SQLite file: its trials and whether it maximizes."""
    import optuna

    storage = f"sqlite:///{path}"
    (summary,) = optuna.get_all_study_summaries(storage)
    study = optuna.load_study(study_name=summary.study_name, storage=storage)
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    return study.get_trials(deepcopy=False), maximize


def replay_main(module: str, doc: str, *, parse, default, help: str, fmt, report) -> None:
    """The command line of a replay over finished studies (benchmarks.rungs, benchmarks.caps):
    the studies' SQLite files, the values to replay under `--MODULE` (parsed by `parse`,
    written back by `fmt`), --section (default: the module's name) and --no-write.
    `report(studies, names, values)` returns the section's body; it is printed and written
    with the command that reproduces it."""
    import optuna

    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("dbs", nargs="+", type=Path, help="finished studies' SQLite files")
    ap.add_argument(f"--{module}", nargs="+", type=parse, default=list(default), help=help)
    ap.add_argument("--section", default=module)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    dbs = sorted(args.dbs)
    studies = [load_finished_study(db) for db in dbs]
    names = [f"{db.parent.name}/{db.stem}" for db in dbs]
    values = getattr(args, module)
    body = report(studies, names, values)
    print(body)
    if not args.no_write:
        write_section(
            args.section,
            body,
            f"python -m benchmarks.{module} "
            + " ".join(str(db) for db in dbs)
            + f" --{module} "
            + " ".join(fmt(v) for v in values)
            + (f" --section {args.section}" if args.section != module else ""),
        )


def markdown_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def steady(times: list[float]) -> float:
    """Median epoch time after the first (which includes graph tracing)."""
    return statistics.median(times[1:]) if len(times) > 1 else times[0]


def trial_seconds(t) -> float:
    """How long a finished trial ran, start to end."""
    return (t.datetime_complete - t.datetime_start).total_seconds()


def epochs_seconds(user_attrs: dict) -> float:
    """A trial's seconds in its epochs (training and validation passes), from the attributes
    the training loop logs: the first epoch (graph tracing included) and the steady
    sec_per_epoch for each later one."""
    first = float(user_attrs.get("first_epoch_seconds") or 0)
    per_epoch = float(user_attrs.get("sec_per_epoch") or 0)
    return first + per_epoch * max(int(user_attrs.get("epochs_run") or 1) - 1, 0)


def finished(trials) -> list:
    """The trials that ended complete or pruned (a failed one trained nothing worth counting)."""
    return [
        t
        for t in trials
        if t.datetime_complete is not None and t.state.is_finished() and t.state.name != "FAIL"
    ]


def finished_by(trials, t0: _dt.datetime, minutes) -> dict[str, int]:
    """How many trials had finished (`finished`) by each of `minutes` after `t0`: one count
    for benchmarks.jobs (from an arm's launch) and benchmarks.epochs_spent (from the first
    trial's start), so their "trials by N min" mean the same."""
    since = [(t.datetime_complete - t0).total_seconds() for t in finished(trials)]
    return {f"{m} min": sum(s <= 60 * m for s in since) for m in minutes}


def seconds_to_epoch(user_attrs: dict, epoch: int) -> float:
    """A trial's seconds from its start to the end of `epoch`: its model build, then its
    epochs up to that one (epochs_seconds)."""
    return float(user_attrs.get("build_seconds") or 0) + epochs_seconds(
        {**user_attrs, "epochs_run": epoch}
    )


WHAT_REACHES_COUNTS = (
    "A trial reaches the target when any of its epochs did on validation, a pruned trial "
    "included, although fsearch keeps only complete trials' models."
)


def first_reaching(trials, target: float) -> float | None:
    """Seconds from the first trial's start to the end of the first trial reaching target.

    A trial reaches it when any of its epochs scored target or more on validation, a pruned
    trial included, whose model fsearch does not keep (only complete trials' are kept). The
    texts built on this say so (WHAT_REACHES_COUNTS)."""
    start = min(t.datetime_start for t in trials)
    hits = [
        (t.datetime_complete - start).total_seconds()
        for t in trials
        if t.intermediate_values and max(t.intermediate_values.values()) >= target
    ]
    return min(hits) if hits else None


def epoch_timer():
    """(Keras callback, list it fills with each epoch's wall time in seconds)."""
    import keras

    times: list[float] = []

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.t0)

    return EpochTimer(), times


def fsearch_fit(hp, cfg, rows, *, seed: int, epochs: int | None = None):
    """Train `hp` the way a trial does (search.training.train with cfg's [train] settings, on
    training.Rows); returns (Keras History, seconds per epoch)."""
    from search.training import train

    cb, times = epoch_timer()
    _, history = train(
        hp,
        rows,
        task="classification",
        settings=cfg.train,
        seed=seed,
        epochs=epochs,
        callbacks=[cb],
    )
    return history, times
