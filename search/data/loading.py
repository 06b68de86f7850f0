"""A study's data, whatever the file: the split trials train on, and the test part export
scores.

`[data] source` names a CSV or Parquet table (with `target = "column"`), an NPZ archive or a
folder of MNIST-format IDX files; empty means Fashion-MNIST (fashion.py). The file (read by
readers.py, once per process: files.py) becomes a `Split` (split.py):

- Task: classification or regression, inferred from the target (task.py).
- Features: a table's columns encoded (tables.py); arrays flattened and scaled (arrays.py).
  Trials train on the encoded rows; the exported model repeats the same steps in Keras layers
  (preprocessing.py), so it takes raw values.
- Split: the file's own test part when it has one (NPZ x_test/y_test, IDX t10k files),
  otherwise a seeded hold-out (stratified for classification); then a seeded validation split
  of the rest. Its hash (`Split.split_sha`) is recorded in the study, so a resumed or
  distributed study that would see other rows stops instead of mixing two splits.

A file is read once per process (cached by path, size, modification time and settings).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from search.config import DataSettings
from search.data import fashion, readers
from search.data.arrays import _load_arrays
from search.data.files import _file_key, _read_arrays, _read_table
from search.data.split import Split, _Loaded
from search.data.tables import _load_table
from search.data.task import _check_target_column, _target_of


def load_split(settings: DataSettings, data_dir: str | Path | None = None) -> Split:
    """The training and validation rows of a study; the same for every trial and worker."""
    if not settings.source:
        return fashion.load_split(settings, data_dir)
    return _load(*_file_key(settings.source), settings).split


def held_out_rows(settings: DataSettings) -> np.ndarray | None:
    """The rows of the file (0-based, header excluded) export tests on; None when the file
    has a test part of its own. For users who check the card's test figures themselves."""
    return _load(*_file_key(settings.source), settings).test_rows


def load_test(settings: DataSettings, data_dir: str | Path | None = None):
    """(raw test inputs for the exported model, test labels): only export calls this.
    Fashion-MNIST: pixels / 255 and class indices, as before. A class label the training
    part lacks is UNSEEN_CLASS (-1): no output of the model stands for it, so it counts as
    an error; test rows without a target value are left out (test_notes says both)."""
    if not settings.source:
        return fashion.load_test(settings, data_dir)
    loaded = _load(*_file_key(settings.source), settings)
    return loaded.test_inputs, loaded.y_test


def test_notes(settings: DataSettings, data_dir: str | Path | None = None) -> tuple[str, ...]:
    """Sentences for the model card about the test part (classes it has that training lacks,
    rows without a target); () for Fashion-MNIST and for a test part with neither."""
    if not settings.source:
        return ()
    return _load(*_file_key(settings.source), settings).test_notes


@lru_cache(maxsize=2)
def _load(path: Path, size: int, mtime: float, settings: DataSettings) -> _Loaded:
    if readers.kind_of(path) == "table":
        _check_target_column(path, settings.target, size, mtime)
        table = _read_table(path, size, mtime)  # first: the target is then taken from it
        return _load_table(table, settings, _target_of(path, size, mtime, settings))
    target = _target_of(path, size, mtime, settings)
    return _load_arrays(_read_arrays(path, size, mtime), settings, target)
