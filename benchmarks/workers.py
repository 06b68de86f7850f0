"""Workers benchmark: one worker vs `--jobs 2` on PostgreSQL, and storage time per trial.

1. Throughput. The same study config and the same budget (--trials finished trials, random
   sampler, no pruning, so every trial trains all its epochs and both runs do comparable
   work) run twice on a fresh PostgreSQL database: `fsearch run` (one worker, all cores) and
   `fsearch run --jobs 2` (two workers, cores split). Finished trials per hour are taken from
   the trials' own timestamps (first start to last end: start-up excluded) and from the wall
   clock of the whole command (start-up included).
2. Storage overhead. In one process, a few trials run on SQLite and on PostgreSQL while every
   storage call of the worker's main thread is timed (heartbeats run in their own thread and
   are not on the trial's path). Reported as ms per trial and as a share of trial time; the
   target is <= 2 %.

    nice -n 10 .venv/bin/python -m benchmarks.workers     # takes minutes; writes BENCHMARKS.md

The PostgreSQL server is $FSEARCH_TEST_PG (as for the tests), else 127.0.0.1:5432 as
postgres; a scratch database is created and dropped.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from benchmarks.common import markdown_table, trial_seconds, write_section  # noqa: E402

COMMAND = "nice -n 10 .venv/bin/python -m benchmarks.workers"
SERVER_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"

# Small enough for minutes, big enough that a trial is seconds of real training (as in a
# study), not milliseconds dominated by start-up.
BENCH_TOML = """
[study]
name = "bench"
seed = 3
sampler = "random"
pruner = "none"
keep_models = 2

[data]
validation_size = 2000
train_size = 12000
test_size = 1000

[space]
layers = { low = 1, high = 3 }
width = { low = 32, high = 256, log = true }
activation = "relu"
optimizer = ["sgd", "adam"]
learning_rate = { low = 1e-3, high = 0.05, log = true }
momentum = { low = 0.0, high = 0.9 }
regularizer = "none"
reg_strength = 0.0
dropout = { low = 0.0, high = 0.3 }
batch_size = [64, 128]
epochs = 3
"""


def _pg(url: str):
    import psycopg

    return psycopg.connect(url.replace("+psycopg", ""), autocommit=True, connect_timeout=5)


def throughput(cfg: Path, url: str, *, jobs: int, trials: int, data_dir: str | None) -> dict:
    """Run `fsearch run [--jobs N]` to `trials` finished trials; rates from the database."""
    import optuna

    from search import storage as st

    name = f"bench-{jobs}w-{uuid.uuid4().hex[:6]}"
    cmd = [str(Path(sys.executable).parent / "fsearch"), "run", "--config", str(cfg)]
    cmd += ["--study", name, "--trials", str(trials), "--no-export", "--jobs", str(jobs)]
    if data_dir:
        cmd += ["--data-dir", data_dir]
    t0 = time.perf_counter()
    proc = subprocess.run(
        cmd, capture_output=True, text=True, env={**os.environ, "FSEARCH_STORAGE": url}
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"fsearch run --jobs {jobs} failed:\n{proc.stdout}\n{proc.stderr}")
    study = optuna.load_study(study_name=name, storage=st.open_storage(url))
    done = [t for t in study.trials if t.state.is_finished() and t.state.name != "FAIL"]
    span = (
        max(t.datetime_complete for t in done) - min(t.datetime_start for t in done)
    ).total_seconds()
    return {
        "jobs": jobs,
        "finished": len(done),
        "span_s": span,
        "wall_s": wall,
        "per_hour": len(done) / span * 3600,
        "per_hour_wall": len(done) / wall * 3600,
        "trial_s": sum(trial_seconds(t) for t in done) / len(done),
    }


def storage_share(cfg_path: Path, url: str, *, trials: int, data_dir: str | None) -> dict:
    """Trials in this process (search.api.run) with every main-thread storage call timed."""
    from rich.console import Console

    from search import api
    from search import storage as st

    spent = [0.0]
    calls = [0]
    main = threading.main_thread()
    real = st.ResilientStorage._with_retry

    def timed(self, fn, *args, **kwargs):
        if threading.current_thread() is not main:
            return real(self, fn, *args, **kwargs)
        t0 = time.perf_counter()
        try:
            return real(self, fn, *args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - t0
            calls[0] += 1

    with tempfile.TemporaryDirectory(prefix="fsearch-bench-") as tmp:
        st.ResilientStorage._with_retry = timed
        try:
            result = api.run(
                cfg_path,
                trials=trials,
                study=f"share-{uuid.uuid4().hex[:6]}",
                storage=url,
                artifacts=tmp,
                data_dir=data_dir,
                export=False,
                console=Console(quiet=True),
            )
        finally:
            st.ResilientStorage._with_retry = real
    # Trial time: the trials' own durations (the run's wall time also holds data loading).
    total = sum(trial_seconds(t) for t in result.study.trials)
    n = result.finished
    return {
        "backend": url.split(":", 1)[0].split("+", 1)[0],
        "trials": n,
        "trial_s": total / n,
        "storage_ms": spent[0] / n * 1000,
        "calls": calls[0] / n,
        "share": spent[0] / total,
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=12, help="budget of each throughput run")
    ap.add_argument("--storage-trials", type=int, default=6, help="trials per storage backend")
    ap.add_argument("--data-dir", default=os.environ.get("FSEARCH_DATA_DIR"))
    ap.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md")
    args = ap.parse_args(argv)

    from search.config import load_config
    from search.storage import mask

    default_epochs = load_config().max_epochs  # the default study's, for the closing note
    server = os.environ.get("FSEARCH_TEST_PG", SERVER_DEFAULT)
    db = f"fsearch_bench_{uuid.uuid4().hex[:8]}"
    with _pg(server) as admin:
        admin.execute(f'CREATE DATABASE "{db}"')
    url = f"{server.rsplit('/', 1)[0]}/{db}"
    load = os.getloadavg()[0]
    try:
        with tempfile.TemporaryDirectory(prefix="fsearch-bench-") as tmp:
            cfg = Path(tmp) / "bench.toml"
            cfg.write_text(BENCH_TOML)
            runs = []
            for jobs in (1, 2):
                print(f"throughput: {args.trials} trials with --jobs {jobs} ...", flush=True)
                runs.append(
                    throughput(cfg, url, jobs=jobs, trials=args.trials, data_dir=args.data_dir)
                )
            shares = []
            for backend in (f"sqlite:///{tmp}/bench.db", url):
                print(f"storage: {args.storage_trials} trials on {mask(backend)} ...", flush=True)
                shares.append(
                    storage_share(cfg, backend, trials=args.storage_trials, data_dir=args.data_dir)
                )
    finally:
        with _pg(server) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')

    one = runs[0]["per_hour"]
    t1 = markdown_table(
        ["workers", "finished", "trials/hour", "vs 1 worker", "trials/hour (wall)", "s/trial"],
        [
            [
                "1" if r["jobs"] == 1 else f"--jobs {r['jobs']}",
                r["finished"],
                f"{r['per_hour']:.0f}",
                f"{r['per_hour'] / one:.2f}x",
                f"{r['per_hour_wall']:.0f}",
                f"{r['trial_s']:.1f}",
            ]
            for r in runs
        ],
    )
    t2 = markdown_table(
        ["storage", "trials", "s/trial", "storage ms/trial", "calls/trial", "share of trial"],
        [
            [
                s["backend"],
                s["trials"],
                f"{s['trial_s']:.2f}",
                f"{s['storage_ms']:.1f}",
                f"{s['calls']:.0f}",
                f"{s['share']:.2%}",
            ]
            for s in shares
        ],
    )
    cores = len(os.sched_getaffinity(0))
    body = (
        f"Throughput on PostgreSQL: same config (12,000 training images, 3 epochs, random "
        f"sampler, no pruning), same budget ({args.trials} finished trials each), {cores} "
        f"cores, load average {load:.1f} when the run started (other work on the machine "
        "lowers both rows).\n\n"
        f"{t1}\n\n"
        "trials/hour: from the first trial's start to the last trial's end; (wall): the whole "
        "command, TF start-up and data loading included. s/trial: mean trial duration (two "
        "workers on split cores each take longer per trial, but run two at once).\n\n"
        f"Storage time per trial (every storage call of the trial's path, heartbeats excluded), "
        f"{args.storage_trials} trials in one process per backend; target <= 2 % of trial "
        "time.\n\n"
        f"{t2}\n\n"
        "A storage call is a few round trips to the database (pre-ping, statements, commit). "
        "When the load average exceeds the core count, each round trip also waits for a CPU "
        "(the PostgreSQL server process competes with the trainers), so ms/trial then "
        "measure the run queue as much as the database. A default-study trial (50,000 "
        f"images, up to {default_epochs} epochs, most pruned early) lasts several times "
        "longer than these with about the same number of calls (one more per epoch).\n"
    )
    print()
    print(body)
    if not args.no_write:
        write_section("workers", body, COMMAND)
        print("wrote the workers section of BENCHMARKS.md")


if __name__ == "__main__":
    main()
