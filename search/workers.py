"""Worker processes: `--jobs N` children, each worker's identity, and the calls a run makes to
restart itself.

A worker is an ordinary `fsearch run` process; any number of them, on any machines, share a
study through one storage (the budget and dead-worker handling live in storage and runner.py).
`--jobs N` starts N of them here as child processes rather than threads: each has its own
TensorFlow runtime and Python interpreter, so they do not contend for the GIL, and a crash in
one does not take the others down. Each gets its share of the cores (cpus.py) and GPUs
(devices.py); stop signals are signals.py's, what a restart carries is restarts.py's.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

# Re-exported: callers and tests use these through workers.
from search.cpus import (  # noqa: F401
    CPU_WORKERS_MAX,
    ENV_CPUS,
    ENV_THREADS,
    WORKERS_PER_GPU,
    apply_thread_limits,
    auto_jobs,
    cores,
    cpu_share,
    pin_cpus,
    threads_per_worker,
)
from search.devices import Gpu, detect_gpus, worker_env
from search.errors import ConfigError
from search.restarts import (  # noqa: F401
    ENV_CONFIG,
    ENV_DEADLINE,
    ENV_RECYCLE,
    ENV_STARTED,
    RECYCLE_TRIALS,
    RestartState,
    restart_process,
)
from search.signals import (  # noqa: F401
    STOP_SIGNALS,
    StopRequest,
    exit_watchdog,
    interrupts_caught,
)

ENV_WORKER = "FSEARCH_WORKER"
ENV_NO_BAR = "FSEARCH_NO_BAR"  # set by --jobs: the parent shows the one progress bar
ENV_PARENT = "FSEARCH_PARENT_PID"  # set by --jobs: the worker ends when this process does
# A --jobs worker told to stop, or done, ends within this many seconds whatever it is doing
# (signals.exit_watchdog), or twice the storage's retry time (FSEARCH_DB_RETRY_S, 60 s:
# search/storage/_retry.py) if that is longer: time to close its trial and exit.
EXIT_GRACE_S = 120.0
TRIAL_LINE = re.compile(r"#\d+\s")  # a trial's line as runner.trial_line prints it


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


def shown_once(echo: Callable[[str], None]) -> Callable[[int, str], None]:
    """show(i, text): echo worker i's line as `wI | text`. Until a worker's first trial line
    (`#N ...`), a line another worker already showed is left out: the data notes and the
    study line every worker prints as it starts. After it, every line shows (a restart
    line each time, tracebacks whole). Thread-safe (one pump thread per worker)."""
    lock = threading.Lock()
    shown: set[str] = set()
    trained: set[int] = set()

    def show(i: int, text: str) -> None:
        with lock:
            if i not in trained and TRIAL_LINE.match(text):
                trained.add(i)
            if i not in trained and text.strip():
                if text in shown:
                    return
                shown.add(text)
            echo(f"w{i} | {text}")

    return show


def run_local_workers(
    args: Sequence[str],
    *,
    jobs: int,
    base_worker: int,
    echo: Callable[[str], None],
    env: dict[str, str] | None = None,
) -> list[int]:
    """Run `fsearch run ARGS --worker K` in `jobs` child processes; return their exit codes.

    Output lines are prefixed with the worker (`w1 | ...`); the start-up lines every worker
    prints alike show once (shown_once). Children run in their own process
    group, so Ctrl-C in a terminal reaches only this parent, which forwards exactly one
    SIGINT to each child (a second one could interrupt the child while it closes its trial).
    SIGTERM (docker stop) and SIGHUP (a closed terminal) are forwarded the same way, and a
    worker whose parent dies, even by SIGKILL, gets SIGTERM (follow_parent).
    """
    # Long because start, output pumping, signal forwarding and reaping belong together.
    threads = threads_per_worker(jobs)
    gpus = detect_gpus()
    procs: list[subprocess.Popen] = []
    show = shown_once(echo)

    def pump(i: int, proc: subprocess.Popen) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            show(i, line.rstrip())

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


def is_worker() -> bool:
    """This process is a worker that `fsearch run --jobs N` started."""
    return bool(os.environ.get(ENV_PARENT))


def stop_grace() -> float | None:
    """interrupts_caught's exit_within for this process: in a --jobs worker EXIT_GRACE_S, or
    twice a longer storage retry time; None elsewhere."""
    if not is_worker():
        return None
    from search.storage._retry import RETRY_DEADLINE_S, env_seconds

    return max(EXIT_GRACE_S, 2 * env_seconds("FSEARCH_DB_RETRY_S", RETRY_DEADLINE_S))


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

_restartable = False  # this process is the `fsearch` command (allow_restarts)


def allow_restarts() -> None:
    """This process is the `fsearch` command itself: it may replace itself (restart_process)."""
    global _restartable
    _restartable = True


def restart_state() -> RestartState:
    """This run's RestartState, as its environment and this process say."""
    return RestartState.from_env(restartable=_restartable)


def _keep(state: RestartState) -> None:
    """What a restart of this process (or a --jobs worker of it) reads back."""
    os.environ.update(state.to_env())


def restart_every() -> int | None:
    """Trials between self-restarts; None when this process does not restart itself."""
    return restart_state().restart_every()


def deadline_timeout(timeout: float | None) -> float | None:
    """--timeout counts from the first start, not from a restart of this worker."""
    state = restart_state()
    left, kept = state.timeout(timeout, time.time())
    if kept is not state:
        _keep(kept)
    return left


def run_started(already: int) -> tuple[float, int]:
    """(time, finished trials) when this run first started, kept across worker restarts."""
    state = restart_state()
    started, kept = state.run_started(already, time.time())
    if kept is not state:
        _keep(kept)
    return started


def pin_config_text(text: str) -> None:
    """A restart of this process reads the config it started with (a config made here)."""
    state = restart_state()
    kept = state.with_config(text)
    if kept is not state:
        _keep(kept)


def pinned_config(path: str | Path | None):
    """(config, its text) of the run: what its first start read (ENV_CONFIG: a TOML's text,
    or a Config made for --data as JSON), else the file's text now."""
    import json

    from search.config import Config, load_config, read_config_text

    text = restart_state().config_text
    if text is None:
        path, text = read_config_text(path)
        pin_config_text(text)
    elif text.lstrip().startswith("{"):  # JSON: TOML text never starts with "{"
        return Config.from_json(json.loads(text), source="<the run's config>"), text
    return load_config(path, text=text), text
