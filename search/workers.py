"""Local worker processes (`fsearch run --jobs N`) and each worker's identity.

A worker is an ordinary `fsearch run` process; any number of them, on any machines, share a
study through one storage (the budget and dead-worker handling live in storage.py and
runner.py). `--jobs N` starts N of them here as child processes rather than threads: each has
its own TensorFlow runtime and Python interpreter, so they do not contend for the GIL, and a
crash in one does not take the others down. The machine's cores are split between them (TF's
thread pools otherwise each assume they own every core and oversubscribe the CPU N-fold).
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence

from search.errors import ConfigError

ENV_WORKER = "FSEARCH_WORKER"
ENV_THREADS = "FSEARCH_TF_THREADS"  # intra-op threads of this worker's TF (set by --jobs)
ENV_NO_BAR = "FSEARCH_NO_BAR"  # set by --jobs: the parent shows the one progress bar


def parse_worker(value: str | None) -> int:
    """The worker number: an integer >= 0, or 'auto' (a number drawn from host and process).

    It only seeds the sampler (runner.process_seed): workers started at the same moment on a
    fresh study would otherwise draw the same random start-up points.
    """
    if value is None or value == "":
        return 0
    if value == "auto":
        rng = random.Random(f"{socket.gethostname()}:{os.getpid()}")
        return rng.randrange(1, 2**31)
    try:
        number = int(value)
    except ValueError:
        number = -1
    if number < 0:
        raise ConfigError(f"--worker must be a number >= 0 or 'auto', got {value!r}")
    return number


def cores() -> int:
    """CPU cores this process may use (respects taskset / container CPU sets)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def threads_per_worker(jobs: int, n_cores: int | None = None) -> int:
    """Cores each of `jobs` workers gets for TF's intra-op pool (at least one)."""
    return max(1, (n_cores or cores()) // jobs)


def apply_thread_limits() -> int | None:
    """Limit this process's TensorFlow to FSEARCH_TF_THREADS threads, if set.

    Must run after TF is imported and before its first op (TF fixes its thread pools then);
    cli._run calls it right after import_tensorflow.
    """
    raw = os.environ.get(ENV_THREADS)
    if not raw:
        return None
    import tensorflow as tf

    n = int(raw)
    tf.config.threading.set_intra_op_parallelism_threads(n)
    # Keras fits one small graph at a time: independent ops are few, one inter-op thread
    # is enough and keeps the worker inside its share.
    tf.config.threading.set_inter_op_parallelism_threads(1)
    return n


def catch_interrupts() -> threading.Event:
    """SIGINT and SIGTERM raise KeyboardInterrupt (the running trial is closed as FAIL, not
    left RUNNING) and also set the returned event.

    Python drops an exception raised while a weakref callback or __del__ runs (SQLAlchemy and
    TensorFlow run some when objects die), printing "Exception ignored in ...
    KeyboardInterrupt": the interrupt would vanish mid-trial. So such a dropped interrupt is
    not printed but delivered again 50 ms later, when the main thread is elsewhere; and the
    event lets the runner stop after the trial should every attempt land badly.
    """
    requested = threading.Event()
    last = [signal.SIGINT]
    redelivered = [0]

    def handler(signum: int, frame: object) -> None:
        requested.set()
        last[0] = signum
        raise KeyboardInterrupt

    default_hook = sys.unraisablehook

    def unraisable(info) -> None:
        if issubclass(info.exc_type, KeyboardInterrupt) and requested.is_set():
            if redelivered[0] < 20:
                redelivered[0] += 1
                threading.Timer(0.05, os.kill, (os.getpid(), last[0])).start()
            return
        default_hook(info)

    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            signal.signal(sig, handler)
        except ValueError:  # not in the main thread (tests)
            return requested
    sys.unraisablehook = unraisable
    return requested


def child_env(worker: int, threads: int, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {**os.environ, **(extra or {})}
    env[ENV_WORKER] = str(worker)
    env[ENV_THREADS] = str(threads)
    # Read by TF's runtime and by the BLAS/OpenMP libraries it may load, before any Python
    # code of ours runs: belt and braces with apply_thread_limits.
    env["TF_NUM_INTRAOP_THREADS"] = str(threads)
    env["TF_NUM_INTEROP_THREADS"] = "1"
    env["OMP_NUM_THREADS"] = str(threads)
    return env


def run_local_workers(
    args: Sequence[str],
    *,
    jobs: int,
    base_worker: int,
    echo: Callable[[str], None],
    env: dict[str, str] | None = None,
) -> list[int]:
    """Run `fsearch run ARGS --worker K` in `jobs` child processes; return their exit codes.

    Output lines are prefixed with the worker (`w1 | ...`). Children run in their own process
    group, so Ctrl-C in a terminal reaches only this parent, which forwards exactly one
    SIGINT to each child (a second one could interrupt the child while it closes its trial).
    SIGTERM (docker stop) is forwarded the same way.
    """
    threads = threads_per_worker(jobs)
    procs: list[subprocess.Popen] = []
    lock = threading.Lock()

    def pump(i: int, proc: subprocess.Popen) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            with lock:
                echo(f"w{i} | {line.rstrip()}")

    for i in range(jobs):
        worker = base_worker * jobs + i
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "search.cli", *args, "--worker", str(worker)],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                env=child_env(worker, threads, env),
                start_new_session=True,
            )
        )
    pumps = [threading.Thread(target=pump, args=(i, p), daemon=True) for i, p in enumerate(procs)]
    for t in pumps:
        t.start()

    def forward(signum: int) -> None:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signum)

    # Forward from the handler itself rather than via KeyboardInterrupt, which Python may
    # drop (see catch_interrupts).
    previous: dict[int, object] = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[sig] = signal.signal(sig, lambda signum, frame: forward(signum))
        except ValueError:  # not in the main thread (tests)
            pass
    try:
        while True:
            try:
                codes = [p.wait() for p in procs]
                break
            except KeyboardInterrupt:  # no handler installed (not the main thread)
                forward(signal.SIGINT)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    for t in pumps:
        t.join(timeout=5)
    return codes
