"""Import TensorFlow once, quietly.

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


def import_tensorflow(*, quiet: bool = True) -> None:
    """Import tensorflow and keras, hiding start-up noise unless quiet is False."""
    if "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with _stderr_silenced() if quiet else contextlib.nullcontext():
        import keras  # noqa: F401
        import tensorflow as tf

        # Device discovery logs "failed call to cuInit" on machines without a GPU: do it here.
        tf.config.list_physical_devices()
    # TF's retracing notice fires by design: every trial is a new model with a new graph.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
