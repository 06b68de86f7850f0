"""Keras' other backends: one real tiny study under KERAS_BACKEND=jax on CPU, end to end.

The study runs in a real `fsearch run` process in which TensorFlow cannot be imported (as on
a GPU machine that has JAX but no TensorFlow): the run path, export included, must need none.
The exported model.keras then loads and predicts in fresh processes under TensorFlow and JAX,
with the same predictions.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import FSEARCH, TINY_TOML

# Without JAX: skipped here, failed under CI (conftest.py, the `needs` marker).
pytestmark = [pytest.mark.slow, pytest.mark.needs("jax", install="pip install 'fsearch[jax]'")]

# Imported by every Python process started with this folder on PYTHONPATH, --jobs workers and
# self-restarts too: `import tensorflow` then fails as if it were not installed.
NO_TENSORFLOW = """
import sys


class _NoTensorFlow:
    def find_spec(self, name, path=None, target=None):
        if name == "tensorflow" or name.startswith("tensorflow."):
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)", name=name)
        return None


sys.meta_path.insert(0, _NoTensorFlow())
"""

# Whole batches only (1,024 = 8 x 128 = 16 x 64; validation 500 in one batch): each distinct
# batch shape is one more XLA compilation, and compiling is most of a tiny trial under JAX.
JAX_TOML = TINY_TOML.replace("train_size = 2000", "train_size = 1024")

PREDICT = textwrap.dedent(
    """
    import sys

    import keras
    import numpy as np

    model = keras.saving.load_model(sys.argv[1])
    x = np.random.default_rng(0).random((8, 784), dtype=np.float32)
    p = keras.ops.convert_to_numpy(model.predict(x, verbose=0))
    np.save(sys.argv[2], p)
    print(keras.config.backend(), "tensorflow" in sys.modules)
    """
)


def _env(backend: str, *, block_tensorflow: Path | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FSEARCH_")}
    env["KERAS_BACKEND"] = backend
    env["FSEARCH_RECYCLE_TRIALS"] = "0"
    env["FSEARCH_JOBS"] = "1"  # one process: this test is about the backend, not workers
    if block_tensorflow is not None:
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(block_tensorflow), env.get("PYTHONPATH", "")) if p
        )
    return env


@pytest.fixture(scope="module")
def jax_study(tmp_path_factory, real_data_dir) -> Path:
    """A 2-trial study run and exported by `fsearch run` under JAX, TensorFlow unimportable.
    Returns its working directory."""
    work = tmp_path_factory.mktemp("jax-study")
    blocker = work / "no-tensorflow"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(NO_TENSORFLOW)
    (work / "tiny.toml").write_text(JAX_TOML)
    cmd = [FSEARCH, "run", "--config", "tiny.toml", "--data-dir", real_data_dir, "--trials", 2]
    done = subprocess.run(
        [str(c) for c in cmd],
        cwd=work,
        env=_env("jax", block_tensorflow=blocker),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return work


def test_a_study_runs_and_exports_under_jax_without_tensorflow(jax_study):
    import optuna

    study = optuna.load_study(
        study_name="tiny", storage=f"sqlite:///{jax_study}/studies/fsearch.db"
    )
    finished = [t for t in study.trials if t.state.is_finished() and t.state.name != "FAIL"]
    assert len(finished) == 2
    assert any(t.state == optuna.trial.TrialState.COMPLETE for t in finished)
    card = json.loads((jax_study / "studies/tiny/best/model-card.json").read_text())
    assert 0.1 < card["test_accuracy"] <= 1.0
    assert (jax_study / "studies/tiny/best/model.keras").is_file()


def test_the_exported_model_loads_and_predicts_the_same_under_tensorflow_and_jax(
    jax_study, tmp_path
):
    model = jax_study / "studies/tiny/best/model.keras"
    script = tmp_path / "predict.py"
    script.write_text(PREDICT)
    procs = {}
    for backend in ("tensorflow", "jax"):  # side by side: each is mostly its backend's start
        blocker = jax_study / "no-tensorflow" if backend == "jax" else None
        procs[backend] = subprocess.Popen(
            [sys.executable, script, model, tmp_path / f"{backend}.npy"],
            env=_env(backend, block_tensorflow=blocker),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    out = {}
    for backend, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0, stderr[-3000:]
        # Under JAX, plain Keras loads it with TensorFlow unimportable.
        assert stdout.split() == [backend, str(backend == "tensorflow")]
        out[backend] = np.load(tmp_path / f"{backend}.npy")
    for p in out.values():
        assert p.shape == (8, 10)
        np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-4)
    np.testing.assert_allclose(out["tensorflow"], out["jax"], atol=1e-4)
