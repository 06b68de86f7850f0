"""Each worker's share of the CPU: how many workers `--jobs auto` starts, the cores and threads
each one gets, and the limits a worker applies to its own Keras backend.

TF's thread pools otherwise each assume they own every core and oversubscribe the CPU N-fold
under `--jobs N`. The GPUs' share is devices.py's; workers.child_env hands both to a worker.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence

from search.devices import backend, detect_gpus

ENV_THREADS = "FSEARCH_TF_THREADS"  # intra-op threads of this worker's TF (set by --jobs)
ENV_CPUS = "FSEARCH_CPUS"  # the cores of this worker (set by --jobs): "0,1"


def cores() -> int:
    """CPU cores this process may use: taskset / container CPU sets, and a container's CPU
    quota (`docker run --cpus 1`, a Kubernetes CPU limit), which the affinity mask does not
    show: --jobs auto must not start two workers on one core's worth of quota."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        n = os.cpu_count() or 1
    quota = cgroup_cpu_quota()
    return max(1, min(n, int(quota))) if quota is not None else n


def cgroup_cpu_quota(
    root: str = "/sys/fs/cgroup", self_cgroup: str = "/proc/self/cgroup"
) -> float | None:
    """The CPUs' worth of time this process's cgroup may use (quota / period), or None when
    unlimited or not readable. cgroup v2: the tightest `cpu.max` ("max 100000" or "150000
    100000") from this process's own cgroup (the "0::" line of /proc/self/cgroup: a
    systemd-run slice, a container sharing the host's namespace) up to the root; else v1's
    `cpu/cpu.cfs_quota_us` (-1 for none). Neither os.cpu_count nor os.process_cpu_count reads
    it."""
    from pathlib import Path

    here = "/"
    with contextlib.suppress(OSError):
        for line in Path(self_cgroup).read_text().splitlines():
            if line.startswith("0::"):
                here = line[3:] or "/"
    quotas, found = [], False
    node = Path(root, here.lstrip("/"))
    for folder in [node, *node.parents]:
        try:
            quota, period = Path(folder, "cpu.max").read_text().split()[:2]
            found = True
            if quota != "max":
                quotas.append(int(quota) / int(period))
        except (OSError, ValueError):
            pass
        if folder == Path(root):
            break
    if found:
        return min(quotas) if quotas else None
    try:
        quota_us = int(Path(root, "cpu", "cpu.cfs_quota_us").read_text())
        period_us = int(Path(root, "cpu", "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota_us / period_us if quota_us > 0 and period_us > 0 else None


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
