"""The split every trial of a study trains on, whatever the data: the `Split` type, its hash,
and the seeded hold-outs that make it (a test part, then validation, stratified by class).

Fashion-MNIST (fashion.py) and own files (tables.py, arrays.py) both end in a `Split`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from search.config import DataSettings
from search.data.preprocessing import FASHION_PIXELS, Preprocessing
from search.errors import DataError

# Fashion-MNIST's classes: the defaults of `Split` describe Fashion-MNIST (fashion.py).
CLASS_NAMES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)


MIN_TRAIN_ROWS = 2


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def stratified_indices(labels: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """n indices drawn without replacement, each class in proportion to its share of labels."""
    classes, counts = np.unique(labels, return_counts=True)
    exact = counts * n / counts.sum()
    quota = np.floor(exact).astype(int)
    # Hand out what flooring left over to the classes with the largest remainders.
    for i in np.argsort(-(exact - quota), kind="stable")[: n - quota.sum()]:
        quota[i] += 1
    picked = [
        rng.permutation(np.flatnonzero(labels == c))[:q]
        for c, q in zip(classes, quota, strict=True)
    ]
    return np.sort(np.concatenate(picked))


@dataclass(frozen=True, eq=False)
class Split:
    """What every trial of a study trains and is scored on: float32 feature rows (already
    scaled or encoded, so trials spend nothing on it) and labels (class indices, or a
    standardized target for regression). Own data sets fill in the fields after `directory`
    (tables.py, arrays.py); the defaults describe Fashion-MNIST."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    files: dict[str, str]  # data file name -> SHA-256 of the file, for the model card
    directory: str
    kind: str = "fashion-mnist"  # fashion-mnist | arrays | table
    task: str = "classification"  # classification | regression
    classes: tuple[str, ...] = CLASS_NAMES  # class index -> label as text (classification)
    y_mean: float = 0.0  # regression: the model learns (y - y_mean) / y_std
    y_std: float = 1.0
    # regression with target_transform = "log": ... of log(1 + y) instead of y
    y_log: bool = False
    split_sha: str = ""  # hash of the data and of the rows in each part (checked on resume)
    notes: tuple[str, ...] = ()  # what was inferred, said out loud at the start of a run
    # How raw inputs become x, one type per kind of input (preprocessing.py): the exported
    # model's layers in front of the network and the card's words for them (a table's
    # columns: `preprocessing.features`).
    preprocessing: Preprocessing = FASHION_PIXELS

    @property
    def n_outputs(self) -> int:
        return len(self.classes) if self.task == "classification" else 1

    @property
    def input_dim(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def dims(self) -> dict[str, Any]:
        """What a net for this data is sized by (space.suggest's inputs, outputs, numbers,
        wide_categories)."""
        table = self.preprocessing.table
        return {
            "inputs": self.input_dim,
            "outputs": self.n_outputs,
            "numbers": len(table.columns) if table else 0,
            "wide_categories": table.category_widths if table else (),
        }


def split_hash(files: dict[str, str], *parts: np.ndarray) -> str:
    """The data's files and the rows of each part, in one short hash: a study records it, so a
    resumed or distributed study that would see other rows stops instead."""
    h = hashlib.sha256(json.dumps(files, sort_keys=True).encode())
    for part in parts:
        h.update(np.asarray(part, dtype=np.int64).tobytes())
        h.update(b"|")
    return h.hexdigest()[:16]


@dataclass(frozen=True, eq=False)
class _Loaded:
    split: Split
    test_inputs: Any  # what the exported model takes: a dict of columns or an array
    y_test: np.ndarray  # class indices (task.UNSEEN_CLASS: a label training lacks), or the target
    test_rows: np.ndarray | None  # the file's rows held out for test (None: its own test part)
    test_notes: tuple[str, ...] = ()  # what export must say about the test part (card)


def _hold_out(
    rows: np.ndarray, k: int, labels: np.ndarray | None, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(rows kept, k rows picked): stratified by labels[rows] when labels are given."""
    if labels is not None:
        picked = rows[stratified_indices(labels[rows], k, rng)]
    else:
        picked = np.sort(rng.permutation(rows)[:k])
    return np.setdiff1d(rows, picked, assume_unique=True), picked


def _test_part(
    strata: np.ndarray | None, n: int, settings: DataSettings, *, has_test: bool, where: str
) -> tuple[np.ndarray, np.ndarray, np.random.Generator]:
    """(training part rows, test rows, the split's generator to go on with) of n rows: the
    test rows are a seeded hold-out, or none when the file has a test part of its own."""
    rng = np.random.default_rng(settings.seed)
    rows = np.arange(n)
    test = np.array([], dtype=np.int64)
    if not has_test:
        k = int(round(settings.test_fraction * n))
        if settings.test_size:
            k = settings.test_size
        if k < 1:
            raise DataError(
                f"{where}: no test part: the file has none and test_fraction is 0; set "
                "test_fraction (e.g. 0.2) in [data]"
            )
        if k >= n - MIN_TRAIN_ROWS:
            raise DataError(f"{where}: {n} rows are too few to hold out {k} for the test")
        rows, test = _hold_out(rows, k, strata, rng)
    return rows, test, rng


def _train_val(
    rows: np.ndarray,
    y: np.ndarray,
    settings: DataSettings,
    task: str,
    rng: np.random.Generator,
    where: str,
) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) row indices of the training part `rows`."""
    k = (
        int(round(settings.validation_fraction * len(rows)))
        if settings.validation_fraction
        else settings.validation_size
    )
    if k < 1 or len(rows) - k < MIN_TRAIN_ROWS:
        raise DataError(
            f"{where}: {len(rows):,} training rows are too few for a validation split of {k:,} "
            "rows; lower validation_size or set validation_fraction (e.g. 0.2) in [data]"
        )
    labels = y if task == "classification" else None
    train, val = _hold_out(rows, k, labels, rng)
    if settings.train_size and settings.train_size < len(train):
        _, train = _hold_out(train, settings.train_size, labels, rng)
    return train, val
