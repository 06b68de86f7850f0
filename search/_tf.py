"""Import Keras and its backend once, quietly, with this process's device settings.

The backend is Keras' own choice (KERAS_BACKEND, else keras.json): TensorFlow is imported
only when it is the backend, so KERAS_BACKEND=jax or torch trains where TensorFlow is not
installed. GPU memory settings (search.devices) and a --jobs worker's cores must be in place
before the backend starts, hence here.

TensorFlow >= 2.16 writes INFO lines (oneDNN notice, "Could not find cuda drivers") to stderr
from C++ before absl logging is initialised, so TF_CPP_MIN_LOG_LEVEL cannot hide them. We point
file descriptor 2 at /dev/null for the import only; errors raised by the import still surface
as Python exceptions. `fsearch --debug` skips this.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys

_imported: str | None = None  # the backend, once import_backend has run in this process


@contextlib.contextmanager
def _stderr_silenced():
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # captured stderr (pytest, CliRunner)
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), fd)
        yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)


def import_backend(*, quiet: bool = True) -> str:
    """Import keras and its backend, hiding start-up noise unless quiet is False; return the
    backend's name. Only the first call in a process does anything."""
    global _imported
    from search import devices, workers

    if _imported is not None:
        return _imported
    name = devices.backend()
    devices.prepare_environment()
    if name not in ("tensorflow", "torch"):
        workers.pin_cpus()  # before JAX sizes its CPU thread pool from the allowed cores
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with _stderr_silenced() if quiet else contextlib.nullcontext():
        import keras  # noqa: F401

        if name != "tensorflow":
            _keras_without_tensorflow()
        else:
            import tensorflow as tf

            # Device discovery logs "failed call to cuInit" on machines without a GPU: here.
            tf.config.list_physical_devices()
    devices.prepare_backend()
    # TF's retracing notice fires by design: every trial is a new model with a new graph.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    _imported = name
    return name


def _keras_without_tensorflow() -> None:
    """Keras imports TensorFlow whenever it is installed, whatever the backend, to seed it
    (keras.utils.set_random_seed, every trial) and to check types when saving: under JAX on a
    2-core CPU that was 13 s of a 2-trial tiny study's 41 (tests/test_backends.py's study),
    and memory, for nothing. So Keras is told TensorFlow is absent unless something imported
    it already. A private attribute of Keras 3 (keras/src/utils/module_utils.py); should it
    go, only that time is lost."""
    if "tensorflow" in sys.modules:
        return
    import importlib

    from search._optuna import KERAS_TF_AVAILABLE

    module, obj, attr = KERAS_TF_AVAILABLE
    with contextlib.suppress(ImportError, AttributeError):
        lazy = getattr(importlib.import_module(module), obj)
        if getattr(lazy, attr) is None:
            setattr(lazy, attr, False)


# The name api.py and older callers use; it imports TensorFlow only when it is the backend.
import_tensorflow = import_backend
