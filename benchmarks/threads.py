"""Two workers of one thread against one worker of all the cores, epoch by epoch (issue #23).

    .venv/bin/python -m benchmarks.threads [--epochs 3] [--no-write]

`--jobs auto` runs one worker per core, each with one TensorFlow thread; `--jobs 1` runs one
worker with a thread per core. Which trains more epochs per minute depends on the net: a
small net's step is mostly per-step overhead that one thread pays as fast as two (two workers
then do twice the work), a wide net's step is a large matmul that two threads share well (two
workers then only split the same arithmetic, and contend for caches and memory bandwidth).
This measures it on the default study's data (50,000 training images, validation on 10,000)
with the trainer a trial uses (search.training.train through benchmarks.common.fsearch_fit),
for nets across the default space's widths:

- one worker: one process with FSEARCH_TF_THREADS = the cores, pinned to all of them;
- N workers: N processes at once, each pinned to its own core with one thread
  (search.workers.child_env, as `fsearch run --jobs N` starts them).

Each process trains the same net for --epochs epochs; its epoch time is the median of epochs
2.. (the first includes graph tracing). Throughput = epochs per minute of the machine: one
worker's 60 / s_epoch against N workers' N x 60 / s_epoch. A ratio above 1 means the workers
train more of the study per minute on such nets.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from benchmarks.common import markdown_table, write_section

# Nets of the default space (784 inputs, 10 classes): narrow to its widest, both batches.
NETS = (
    ((64, 64), 256),
    ((256, 256), 256),
    ((512, 512), 256),
    ((1024, 1024), 256),
    ((1024, 1024), 512),
    ((1024, 1024, 1024), 256),
)

CHILD = """
import json, os, sys, statistics
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
from search import cpus
cpus.pin_cpus()
from search._tf import import_tensorflow
import_tensorflow()
cpus.apply_thread_limits()
from benchmarks.common import fsearch_fit
from search.config import load_config
from search.data import load_split
from search.space import Hyperparams
from search.training import Rows
widths, batch, epochs = json.loads(sys.argv[1])
cfg = load_config()
rows = Rows.search(load_split(cfg.data)).as_tensors()
hp = Hyperparams(widths=tuple(widths), optimizer="adam", learning_rate=1e-3, batch_size=batch,
                 epochs=epochs, lr_schedule="cosine")
_, times = fsearch_fit(hp, cfg, rows, seed=0, epochs=epochs)
print(json.dumps(times))
"""


def _steady(times: list[float]) -> float:
    return statistics.median(times[1:]) if len(times) > 1 else times[0]


def run_arm(widths, batch: int, epochs: int, workers: int, cores: int) -> list[float]:
    """Steady epoch seconds of each of `workers` processes started at once."""
    from search.workers import child_env

    threads = cores if workers == 1 else max(1, cores // workers)
    arg = json.dumps([list(widths), batch, epochs])
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, arg],
            env=child_env(i, threads, slot=i, jobs=workers),
            cwd=Path(__file__).resolve().parent.parent,
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(workers)
    ]
    out = []
    for p in procs:
        stdout, _ = p.communicate()
        if p.returncode != 0:
            raise SystemExit(f"a worker exited {p.returncode}")
        out.append(_steady(json.loads(stdout.strip().splitlines()[-1])))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=3, help="epochs per process (>= 2)")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    from search.cpus import cores as count_cores

    cores = count_cores()
    if cores < 2:
        raise SystemExit("benchmarks.threads compares workers across cores: it needs 2 or more")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    rows = []
    for widths, batch in NETS:
        arch = "x".join(map(str, (784, *widths, 10)))
        one = run_arm(widths, batch, args.epochs, 1, cores)[0]
        many = run_arm(widths, batch, args.epochs, cores, cores)
        per = statistics.mean(many)
        ratio = (cores / per) / (1 / one)
        rows.append([arch, batch, f"{one:.2f}", f"{per:.2f}", f"**{ratio:.2f}x**"])
        print(rows[-1], flush=True)
    body = (
        f"Load average at the start: {load}. {cores} cores. Adam, cosine schedule, "
        f"{args.epochs} epochs per process, s/epoch the median of epochs 2..{args.epochs}.\n\n"
        + markdown_table(
            [
                "net",
                "batch",
                f"1 worker, {cores} threads: s/epoch",
                f"{cores} workers, 1 thread each: s/epoch (mean)",
                f"{cores} workers' epochs per minute / 1 worker's",
            ],
            rows,
        )
    )
    print(body)
    if not args.no_write:
        cmd = "python -m benchmarks.threads" + (
            f" --epochs {args.epochs}" if args.epochs != 3 else ""
        )
        write_section("threads", body, cmd)


if __name__ == "__main__":
    main()
