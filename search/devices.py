"""The device a worker trains on: the Keras backend, the GPUs, each worker's share of them.

The only module that knows CUDA devices and each backend's memory settings. Every Keras
backend takes GPU memory its own way, and two of them take it all by default: TensorFlow maps
every GPU's memory on first use and JAX preallocates 75% of it, so a second worker on the same
GPU fails. Here the memory grows on demand instead (TensorFlow: memory growth; JAX: no
preallocation and a cap of the worker's share), and `--jobs` workers are spread over the GPUs
one by one (worker k on GPU k mod n) unless the user chose them with CUDA_VISIBLE_DEVICES.

GPUs are found with nvidia-smi, not a framework: the `--jobs` parent imports none, and asking
it costs no GPU memory.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

BACKENDS = ("tensorflow", "jax", "torch")
CUDA_VISIBLE = "CUDA_VISIBLE_DEVICES"
# Of a GPU's memory, the part the workers sharing it may take together (JAX's own default cap
# for one process is 75%; the rest is for the CUDA context of each process and other users).
GPU_MEMORY_SHARE = 0.9


@dataclass(frozen=True)
class Gpu:
    index: int  # CUDA's number of the GPU on this machine, as nvidia-smi numbers it
    name: str  # "NVIDIA H200"
    uuid: str = ""  # "GPU-...": CUDA_VISIBLE_DEVICES may name a GPU by it
    memory_mib: int = 0


def backend(environ: Mapping[str, str] | None = None) -> str:
    """The Keras backend this process will train with, read as Keras reads it (KERAS_BACKEND,
    else keras.json's "backend", else tensorflow), without importing Keras."""
    environ = os.environ if environ is None else environ
    name = environ.get("KERAS_BACKEND")
    if not name:
        home = Path(environ.get("KERAS_HOME") or Path.home() / ".keras")
        try:
            name = json.loads((home / "keras.json").read_text()).get("backend")
        except (OSError, ValueError, AttributeError):
            name = None
    return name or "tensorflow"


def parse_nvidia_smi(text: str) -> list[Gpu]:
    """GPUs from `nvidia-smi --query-gpu=index,name,uuid,memory.total
    --format=csv,noheader,nounits` output; lines that do not parse are skipped."""
    gpus = []
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 4:
            continue
        if not parts[0].isdigit():
            continue
        try:
            memory = int(float(parts[-1]))
        except ValueError:  # "[N/A]" (MIG, some drivers)
            memory = 0
        name, uuid = ",".join(parts[1:-2]), parts[-2]
        gpus.append(Gpu(index=int(parts[0]), name=name, uuid=uuid, memory_mib=memory))
    return gpus


def visible(gpus: Sequence[Gpu], environ: Mapping[str, str] | None = None) -> list[Gpu]:
    """The GPUs of `gpus` that CUDA_VISIBLE_DEVICES lets this process use, in its order (all of
    them when it is unset; none when it is empty or -1, CUDA's ways of hiding every GPU)."""
    environ = os.environ if environ is None else environ
    if CUDA_VISIBLE not in environ:
        return list(gpus)
    by_name = {str(g.index): g for g in gpus} | {g.uuid: g for g in gpus if g.uuid}
    out = []
    for entry in environ[CUDA_VISIBLE].split(","):
        entry = entry.strip()
        if entry not in by_name:
            break  # CUDA stops at the first invalid entry, too
        out.append(by_name[entry])
    return out


@functools.lru_cache(maxsize=1)
def _nvidia_smi() -> str:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return ""
    try:
        done = subprocess.run(
            [smi, "--query-gpu=index,name,uuid,memory.total", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=20,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout if done.returncode == 0 else ""


def detect_gpus(environ: Mapping[str, str] | None = None) -> list[Gpu]:
    """The NVIDIA GPUs this process may use ([] without nvidia-smi or a driver)."""
    return visible(parse_nvidia_smi(_nvidia_smi()), environ)


def worker_env(
    slot: int, jobs: int, gpus: Sequence[Gpu], environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Environment variables for the slot-th (0-based) of `jobs` workers on this machine.

    `gpus` are the visible ones (detect_gpus): worker k gets the (k mod n)-th of them alone,
    so the workers spread over the GPUs the user allows (all, or those CUDA_VISIBLE_DEVICES
    names). Each backend's memory grows on demand, capped for JAX at the worker's share of
    GPU_MEMORY_SHARE; a memory variable the user set is kept. Nothing without GPUs.
    """
    environ = os.environ if environ is None else environ
    if not gpus:
        return {}
    n = len(gpus)
    sharing = len(range(slot % n, jobs, n))  # workers on this worker's GPU
    memory = {k: v for k, v in memory_env(sharing).items() if k not in environ}
    return {
        CUDA_VISIBLE: str(gpus[slot % n].index),
        # nvidia-smi's numbers; CUDA's default order (fastest first) may differ between models
        "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
        **memory,
    }


def memory_env(sharing: int = 1) -> dict[str, str]:
    """GPU memory on demand for every backend, for one of `sharing` processes on a GPU.

    TensorFlow reads TF_FORCE_GPU_ALLOW_GROWTH (prepare_backend also sets memory growth);
    JAX reads its two variables when it starts its GPU client. PyTorch's caching allocator
    takes memory on demand already.
    """
    return {
        "TF_FORCE_GPU_ALLOW_GROWTH": "true",
        "XLA_PYTHON_CLIENT_PREALLOCATE": "false",
        "XLA_PYTHON_CLIENT_MEM_FRACTION": f"{GPU_MEMORY_SHARE / max(1, sharing):.3f}",
    }


def prepare_environment() -> None:
    """Before Keras is imported: GPU memory on demand in this process too (a variable the user
    set is kept). Cheap: reads no device."""
    for key, value in memory_env().items():
        os.environ.setdefault(key, value)


def prepare_backend() -> None:
    """After Keras is imported, before its first op: TensorFlow's memory growth on every GPU
    (TF_FORCE_GPU_ALLOW_GROWTH covers only GPUs TF sees at start; this is the documented way).
    Other backends need nothing here."""
    if backend() != "tensorflow":
        return
    import tensorflow as tf

    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:  # already initialised (an earlier import in this process)
            pass


def _physical(local: int, environ: Mapping[str, str]) -> str:
    """Machine-wide number of the process's `local`-th GPU (CUDA_VISIBLE_DEVICES renumbers)."""
    entries = [e.strip() for e in environ.get(CUDA_VISIBLE, "").split(",") if e.strip()]
    if local < len(entries) and entries[local].isdigit():
        return entries[local]
    return str(local)


def cpu_threads(environ: Mapping[str, str] | None = None) -> int:
    """Threads this process trains with on the CPU: its --jobs share, else its cores."""
    environ = os.environ if environ is None else environ
    raw = environ.get("FSEARCH_TF_THREADS", "")
    if raw.isdigit() and int(raw) > 0:
        return int(raw)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def describe_device(kind: str, name: str = "", *, local: int = 0, environ=None) -> str:
    """ "gpu:3 NVIDIA H200" or "cpu (2 threads)"."""
    environ = os.environ if environ is None else environ
    if kind == "gpu":
        return f"gpu:{_physical(local, environ)} {name}".rstrip()
    n = cpu_threads(environ)
    return f"cpu ({n} thread{'s' if n != 1 else ''})"


@functools.lru_cache(maxsize=1)
def describe() -> str:
    """The device this process trains on, in a few words: "gpu:0 NVIDIA H200" or
    "cpu (2 threads)". Asks the active backend (imported by then), once per process."""
    name = backend()
    if name == "jax":
        import jax

        device = jax.devices()[0]
        if device.platform == "gpu":
            return describe_device("gpu", device.device_kind, local=device.id)
    elif name == "torch":
        import torch

        if torch.cuda.is_available():
            local = torch.cuda.current_device()
            return describe_device("gpu", torch.cuda.get_device_name(local), local=local)
    elif name == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            details = tf.config.experimental.get_device_details(gpus[0])
            return describe_device("gpu", details.get("device_name", ""))
    return describe_device("cpu")
