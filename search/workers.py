"""Worker processes: `--jobs N` children, each worker's identity, interrupts and self-restarts.

A worker is an ordinary `fsearch run` process; any number of them, on any machines, share a
study through one storage (the budget and dead-worker handling live in storage.py and
runner.py). `--jobs N` starts N of them here as child processes rather than threads: each has
its own TensorFlow runtime and Python interpreter, so they do not contend for the GIL, and a
crash in one does not take the others down. The machine's cores are split between them (TF's
thread pools otherwise each assume they own every core and oversubscribe the CPU N-fold).
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from search.devices import Gpu, detect_gpus, worker_env
from search.errors import ConfigError

ENV_WORKER = "FSEARCH_WORKER"
ENV_THREADS = "FSEARCH_TF_THREADS"  # intra-op threads of this worker's TF (set by --jobs)
ENV_CPUS = "FSEARCH_CPUS"  # the cores of this worker (set by --jobs): "0,1"
ENV_NO_BAR = "FSEARCH_NO_BAR"  # set by --jobs: the parent shows the one progress bar
ENV_PARENT = "FSEARCH_PARENT_PID"  # set by --jobs: the worker ends when this process does
# Ctrl-C, `kill` / `docker stop`, and a closed terminal all stop a run the same way: the running
# trial is closed as FAIL (not left RUNNING for the grace period) and the study can resume.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


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


# --jobs auto. CPU only: one worker per core up to CPU_WORKERS_MAX. On 2 cores, 2 workers of
# one TF thread each finished 1.63x the trials per hour of one worker of two threads (1.31x
# counting TF start-up and data loading; BENCHMARKS.md, `workers`); more workers than that have
# not been measured, so a bigger machine gets 2 until benchmarks/workers.py says otherwise.
CPU_WORKERS_MAX = 2
# With NVIDIA GPUs: this many workers share each GPU, at most one per core. A trial of these
# small MLPs keeps a GPU busy a few percent of the time (dispatch, compilation and copies
# dominate: issue 12's anchor, 8 JAX workers on one H200 and 16 cores, GPU 3% busy), so
# several trials run on each; benchmarks/gpu.py --jobs N measures other numbers.
WORKERS_PER_GPU = 8


def auto_jobs(n_cores: int | None = None, n_gpus: int | None = None) -> int:
    """The number of workers `--jobs auto` starts on this machine (its cores and GPUs)."""
    n_cores = n_cores or cores()
    if n_gpus is None:
        n_gpus = len(detect_gpus())
    if n_gpus > 0:
        return max(1, min(n_gpus * WORKERS_PER_GPU, n_cores))
    return max(1, min(n_cores, CPU_WORKERS_MAX))


def parse_jobs(value: int | str) -> int:
    """--jobs: a whole number >= 1, or 'auto' (auto_jobs), resolved once."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        return auto_jobs()
    try:
        jobs = int(value)
    except (TypeError, ValueError):
        jobs = 0
    if isinstance(value, float) and value != jobs or isinstance(value, bool) or jobs < 1:
        raise ConfigError(f"--jobs must be a whole number >= 1 or 'auto', got {value!r}")
    return jobs


def threads_per_worker(jobs: int, n_cores: int | None = None) -> int:
    """Cores each of `jobs` workers gets for TF's intra-op pool (at least one)."""
    return max(1, (n_cores or cores()) // jobs)


def cpu_share(slot: int, threads: int, all_cores: Sequence[int] | None = None) -> list[int]:
    """The cores of the slot-th (0-based) worker that has `threads` of them: consecutive
    cores, wrapping around when there are more workers than cores."""
    if all_cores is None:
        try:
            all_cores = os.sched_getaffinity(0)
        except AttributeError:  # not Linux (pin_cpus does nothing there either)
            all_cores = range(os.cpu_count() or 1)
    ids = sorted(all_cores)
    start = slot * threads
    return sorted({ids[(start + j) % len(ids)] for j in range(min(threads, len(ids)))})


def pin_cpus() -> list[int] | None:
    """Keep this process on its --jobs share of the cores (FSEARCH_CPUS), if set.

    For JAX: XLA's CPU client sizes its thread pool from the cores the process may run on and
    has no thread setting of its own (XLA_FLAGS' --xla_cpu_multi_thread_eigen=false and
    intra_op_parallelism_threads=1 did not keep jax 0.10 to one core when we tried them by
    hand; the affinity mask does). Run before JAX starts its client (import_backend).
    """
    raw = os.environ.get(ENV_CPUS)
    if not raw or not hasattr(os, "sched_setaffinity"):
        return None
    cpus = [int(c) for c in raw.split(",") if c.strip().isdigit()]
    with contextlib.suppress(OSError, ValueError):  # cores gone (a changed container CPU set)
        os.sched_setaffinity(0, cpus)
        return cpus
    return None


def apply_thread_limits() -> int | None:
    """Limit this process's Keras backend to FSEARCH_TF_THREADS threads, if set.

    TensorFlow: its intra-op pool (must run after TF is imported and before its first op: TF
    fixes its thread pools then; api.run calls it right after import_tensorflow). PyTorch:
    torch.set_num_threads. JAX: this process's cores (pin_cpus). No backend's module is
    imported for another backend.
    """
    from search.devices import backend

    raw = os.environ.get(ENV_THREADS)
    if not raw:
        return None
    n = int(raw)
    name = backend()
    if name == "tensorflow":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(n)
        # Keras fits one small graph at a time: independent ops are few, one inter-op thread
        # is enough and keeps the worker inside its share.
        tf.config.threading.set_inter_op_parallelism_threads(1)
    elif name == "torch":
        import torch

        torch.set_num_threads(n)
        with contextlib.suppress(RuntimeError):  # allowed once, before any inter-op work
            torch.set_num_interop_threads(1)
    else:
        pin_cpus()
    return n


class StopRequest:
    """Set by a stop signal; read by the search loop. A plain attribute, not a threading.Event:
    a signal handler runs between any two bytecodes of the main thread, even inside another
    run of itself, and Event.set takes a non-reentrant lock. A second signal landing while the
    first handler held it blocked the worker forever (seen under SIGTERM redelivery)."""

    def __init__(self) -> None:
        self.requested = False
        self.armed = True  # the next signal raises KeyboardInterrupt
        self.signum = signal.SIGINT
        self.redelivered = 0

    def is_set(self) -> bool:
        return self.requested


@contextlib.contextmanager
def interrupts_caught() -> Iterator[StopRequest]:
    """Within the block, STOP_SIGNALS raise KeyboardInterrupt (the running trial is closed as
    FAIL, not left RUNNING) and mark the yielded StopRequest; the previous handlers (a
    notebook's, say) are back after it.

    One KeyboardInterrupt at a time: further signals only mark the request, so a second one
    cannot interrupt Optuna while it closes the trial the first one stopped. Python drops an
    exception raised while a weakref callback or __del__ runs (SQLAlchemy and TensorFlow run
    some when objects die), printing "Exception ignored in ... KeyboardInterrupt": the
    interrupt would vanish mid-trial. So such a dropped interrupt is not printed but delivered
    again 50 ms later, when the main thread is elsewhere; and the search loop stops after the
    trial should every attempt land badly (StopRequest.is_set).
    """
    stop = StopRequest()

    def handler(signum: int, frame: object) -> None:
        stop.requested, stop.signum = True, signum
        if stop.armed:
            stop.armed = False
            raise KeyboardInterrupt

    default_hook = sys.unraisablehook

    def unraisable(info) -> None:
        if issubclass(info.exc_type, KeyboardInterrupt) and stop.requested:
            if stop.redelivered < 20:  # the interrupt was lost: raise it again, once
                stop.redelivered += 1
                stop.armed = True
                threading.Timer(0.05, os.kill, (os.getpid(), stop.signum)).start()
            return
        default_hook(info)

    previous = {}
    for sig in STOP_SIGNALS:
        try:
            previous[sig] = signal.signal(sig, handler)
        except ValueError:  # not in the main thread (tests): Python delivers no signal there
            break
    if previous:
        sys.unraisablehook = unraisable
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
        if previous:
            sys.unraisablehook = default_hook


def child_env(
    worker: int,
    threads: int,
    extra: dict[str, str] | None = None,
    *,
    slot: int = 0,
    jobs: int = 1,
    gpus: Sequence[Gpu] = (),
) -> dict[str, str]:
    """The environment of the slot-th (0-based) of `jobs` workers, number `worker`: its share
    of the cores, and of the GPUs when there are any (devices.worker_env)."""
    env = {**os.environ, **(extra or {})}
    env[ENV_PARENT] = str(os.getpid())
    env[ENV_WORKER] = str(worker)
    env[ENV_THREADS] = str(threads)
    env[ENV_CPUS] = ",".join(map(str, cpu_share(slot, threads)))
    env |= worker_env(slot, jobs, gpus, env)
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
    SIGTERM (docker stop) and SIGHUP (a closed terminal) are forwarded the same way, and a
    worker whose parent dies, even by SIGKILL, gets SIGTERM (follow_parent).
    """
    # Long because start, output pumping, signal forwarding and reaping belong together.
    threads = threads_per_worker(jobs)
    gpus = detect_gpus()
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
                env=child_env(worker, threads, env, slot=i, jobs=jobs, gpus=gpus),
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
    # drop (see interrupts_caught).
    previous: dict[int, object] = {}
    for sig in STOP_SIGNALS:
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


def follow_parent() -> None:
    """In a --jobs worker: get SIGTERM when the parent dies, however it dies (Linux's
    PR_SET_PDEATHSIG; kept across our own restarts), so no worker outlives its `fsearch run`
    and its trial is closed, not left RUNNING. A parent already gone ends the worker now."""
    parent = os.environ.get(ENV_PARENT)
    if not parent or not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
    if os.getppid() != int(parent):
        raise SystemExit(f"fsearch worker: its parent process {parent} has ended; stopping")


# ---------------------------------------------------------------------------- self-restarts

# TensorFlow keeps memory from every model a process builds, clear_session() or not: RSS grows
# trial after trial in one process (BENCHMARKS.md, `memory`: with and without restarts, side
# by side). So a worker restarts itself (exec, same PID, same arguments) every RECYCLE_TRIALS
# trials; the study lives in the storage, so the new process simply resumes it. It costs one TF
# import and data load per restart. FSEARCH_RECYCLE_TRIALS=0 turns it off. Only a real
# `fsearch` process restarts itself (cli.main calls allow_restarts), never a notebook or a test.
RECYCLE_TRIALS = 20
ENV_RECYCLE = "FSEARCH_RECYCLE_TRIALS"
ENV_DEADLINE = "FSEARCH_RUN_DEADLINE"  # --timeout as an absolute time, kept across restarts
ENV_STARTED = "FSEARCH_RUN_STARTED"  # "time,finished" at the first start: progress across restarts
# The study TOML's text as the run first read it: a restarted worker and every --jobs worker
# use it, so editing the file while a study runs cannot change the study mid-way.
ENV_CONFIG = "FSEARCH_RUN_CONFIG"
_restartable = False


def allow_restarts() -> None:
    """This process is the `fsearch` command itself: it may replace itself (restart_process)."""
    global _restartable
    _restartable = True


def restart_every() -> int | None:
    """Trials between self-restarts; None when this process does not restart itself."""
    if not _restartable:
        return None
    raw = os.environ.get(ENV_RECYCLE, str(RECYCLE_TRIALS))
    try:
        n = int(raw)
    except ValueError:
        raise ConfigError(f"{ENV_RECYCLE} must be a whole number, got {raw!r}") from None
    return n if n > 0 else None


def deadline_timeout(timeout: float | None) -> float | None:
    """--timeout counts from the first start, not from a restart of this worker."""
    if os.environ.get(ENV_DEADLINE):
        # 0 once the deadline has passed: the search loop then starts no trial at all (a tiny
        # positive timeout would still start one, and a restart after it another, forever).
        return max(float(os.environ[ENV_DEADLINE]) - time.time(), 0.0)
    if timeout is not None and _restartable:
        os.environ[ENV_DEADLINE] = str(time.time() + timeout)
    return timeout


def run_started(already: int) -> tuple[float, int]:
    """(time, finished trials) when this run first started, kept across worker restarts."""
    with contextlib.suppress(KeyError, ValueError):
        t, n = os.environ[ENV_STARTED].split(",")
        return float(t), int(n)
    started = (time.time(), already)
    if _restartable:
        os.environ[ENV_STARTED] = f"{started[0]},{started[1]}"
    return started


def pin_config_text(text: str) -> None:
    """A restart of this process reads the config it started with (a config made here)."""
    if _restartable:
        os.environ[ENV_CONFIG] = text


def pinned_config(path: str | Path | None):
    """(config, its TOML text) of the run: the text of its first start (ENV_CONFIG), else the
    file's text now."""
    from search.config import load_config, read_config_text

    text = os.environ.get(ENV_CONFIG)
    if text is None:
        path, text = read_config_text(path)
        if _restartable:
            os.environ[ENV_CONFIG] = text
    return load_config(path, text=text), text


def restart_process() -> None:
    """Replace this process with a fresh run of the same command (it resumes the study)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, *sys.argv])
