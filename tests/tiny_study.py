"""A real tiny study shared by the report, inspection and dashboard tests.

A grid study of 4 two-epoch runs on 2,000 images: 1 or 2 hidden layers x learning rate
0.05 or 1e6 (with momentum 0.9). The huge learning rate makes the 2-layer net's loss NaN in its
first epoch (a "diverged" trial); the others complete, one of them stuck at chance level. It is
trained once per session (about 15 s) by the session fixture `tiny_study` (conftest.py);
tests copy it before changing it.
"""

from __future__ import annotations

import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from tests.helpers import invoke

TINY_GRID_TOML = """
[study]
name = "tiny-grid"
seed = 1
sampler = "grid"
pruner = "none"
keep_models = 2

[data]
validation_size = 500
train_size = 2000
test_size = 1000

[model]
width_per_layer = false

[train]
steps_per_execution = 8
validation_batch_size = 500

[space]
layers = [1, 2]
width = 16
activation = "relu"
optimizer = "sgd"
learning_rate = [0.05, 1e6]
momentum = 0.9
regularizer = "none"
reg_strength = 0.0
dropout = 0.0
batch_size = 64
epochs = 2
"""
NAME = "tiny-grid"
N_TRIALS = 4


@dataclass(frozen=True)
class TinyStudy:
    root: Path
    db: Path
    artifacts: Path
    name: str = NAME

    @property
    def storage(self) -> str:
        return f"sqlite:///{self.db}"

    def copy_to(self, dest: Path) -> TinyStudy:
        """A private copy (database and kept models) that a test may change."""
        dest.mkdir(parents=True, exist_ok=True)
        # SQLite's backup API, not a file copy: the database may be in WAL mode, with recent
        # pages still in fsearch.db-wal.
        with sqlite3.connect(self.db) as src, sqlite3.connect(dest / self.db.name) as dst:
            src.backup(dst)
        shutil.copytree(self.artifacts, dest / "artifacts")
        return TinyStudy(dest, dest / self.db.name, dest / "artifacts", self.name)


def build_tiny_study(root: Path, data_dir: Path) -> TinyStudy:
    """Train the tiny study into the directory `root`."""
    study = TinyStudy(root, root / "fsearch.db", root / "artifacts")
    root.mkdir(parents=True, exist_ok=True)
    config = root / "tiny-grid.toml"
    config.write_text(TINY_GRID_TOML)
    r = invoke(
        "run", "--config", config, "--storage", study.storage, "--artifacts", study.artifacts,
        "--data-dir", data_dir, "--no-export",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    return study
