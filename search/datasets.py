"""A study's data, whatever the file: the task, the features, the split, the test part.

`[data] source` names a CSV or Parquet table (with `target = "column"`), an NPZ archive or a
folder of MNIST-format IDX files; empty means Fashion-MNIST (search/data.py, unchanged). Here
the file (read by search/sources.py) becomes a `data.Split`:

- Task: classification or regression, inferred from the target and said out loud ("target
  'price': numbers, 812 distinct values -> regression"), or set with `task = ...`.
- Features: numbers standardized with the training rows' statistics; text (or `categorical`)
  columns one-hot encoded with the training rows' vocabulary; arrays flattened and either
  divided by 255 (uint8 images) or standardized per feature. Trials train on the encoded rows;
  the exported model repeats the same steps in stock Keras layers (`inference_model`), so it
  takes raw values: one named input per column for a table, one flat input for arrays.
- Split: the file's own test part when it has one (NPZ x_test/y_test, IDX t10k files),
  otherwise a seeded hold-out (stratified for classification); then a seeded validation split
  of the rest. Its hash (`Split.split_sha`) is recorded in the study, so a resumed or
  distributed study that would see other rows stops instead of mixing two splits.

A file is read once per process (cached by path, size, modification time and settings).
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from search import data as fashion
from search import sources
from search.config import DataSettings, validate_study_name
from search.errors import DataError
from search.metrics import Metric, for_data

# An integer target with at most this many distinct values is taken for classes.
MAX_INFERRED_CLASSES = 50
# A text column with more distinct values than this (or one value per row, nearly) is an
# identifier or free text, not a category: it must be dropped or encoded by the user.
MAX_CATEGORIES = 1000
# A classification target with more classes than this is refused: export's confusion matrix is
# n x n (30,000 labels: 7 GB), the softmax layer n wide, and with so many labels most classes
# have a handful of rows, which no validation split can score. Nor may the classes be more than
# half the training rows (over 20 classes): that is an identifier or free text, not a label.
MAX_CLASSES = 1000
MIN_TRAIN_ROWS = 2
# Layer names of the exported model begin with this; no input (column) may, so a column named
# like one of the model's own layers ("features", "scale_age") cannot collide with it.
RESERVED_PREFIX = "fsearch_"
# A test label the training part lacks: the model cannot predict it, export counts it wrong.
UNSEEN_CLASS = -1


@dataclass(frozen=True)
class Feature:
    """One table column as the model sees it."""

    name: str
    kind: str  # number | category
    mean: float = 0.0  # number: training mean (also what a missing value becomes)
    std: float = 1.0  # number: training standard deviation (1 where constant)
    vocabulary: tuple[str, ...] = ()  # category: training values; others share one slot
    # number: the column has blanks (NaN) somewhere in the file, so the exported model fills
    # them with `mean` (search/layers.py); which columns can be blank is read from every row
    # (no label, no value), what they are filled with from the training rows only.
    fill: bool = False
    # number: blanks in the training rows, so the network also gets a 0/1 "was missing" input
    # right after the column's value (none where training never saw a blank: its weight
    # would never be trained).
    indicator: bool = False

    @property
    def width(self) -> int:
        return 1 + self.indicator if self.kind == "number" else len(self.vocabulary) + 1

    @property
    def input_name(self) -> str:
        """The exported model's input for this column: the column's name where Keras allows
        it (letters, digits, '_', '.', '-'), else with '_' in place of the others."""
        return re.sub(r"[^A-Za-z0-9_.-]", "_", self.name)[:100] or "column"

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "input": self.input_name, "kind": self.kind}
        if self.kind == "number":
            out = {**out, "mean": self.mean, "std": self.std}
            if self.fill:
                out["missing"] = {"filled_with": self.mean, "indicator": self.indicator}
            return out
        return {**out, "vocabulary": list(self.vocabulary)}


# ---------------------------------------------------------------------------- task


@dataclass(frozen=True)
class Target:
    task: str
    metric: Metric
    note: str | None  # what was inferred, for the run's first lines


def target_of(settings: DataSettings, *, read_whole: bool = False) -> Target:
    """The study's task and metric. read_whole: the caller loads the data next, so a table is
    parsed whole once (and kept for the load) instead of once for its target column and
    again for everything; else no more of the file than the target is converted."""
    if not settings.source:
        return Target("classification", for_data("classification", settings.metric), None)
    key = _file_key(settings.source)
    if read_whole and sources.kind_of(key[0]) == "table":
        path, size, mtime = key
        _check_target_column(path, settings.target, size, mtime)  # a typo: no full parse
        _read_table(*key)
    return _target_of(*key, settings)


@lru_cache(maxsize=8)
def _target_of(path: Path, size: int, mtime: float, settings: DataSettings) -> Target:
    """The task from the training part's labels only (the test part is set aside first)."""
    kind = sources.kind_of(path)
    if kind == "table":
        _check_target_column(path, settings.target, size, mtime)
        whole = _TABLES.get((path, size, mtime))
        table = whole or sources.read_table(path, columns=[settings.target])
        values, vkind = table.columns[settings.target], table.kinds[settings.target]
        name, has_test = settings.target, False
    else:
        arrays = _read_arrays(path, size, mtime)
        values, vkind, name = arrays.y_train, _array_kind(arrays.y_train), "y_train"
        has_test = arrays.x_test is not None
    strata = None if has_test else _strata(values, vkind, settings.task)
    rows, _, _ = _test_part(strata, len(values), settings, has_test=has_test, where=str(path))
    task, note = infer_task(values[rows], vkind, name, settings.task, rows=rows)
    return Target(task, for_data(task, settings.metric), note)


def _check_target_column(path: Path, target: str, size: int, mtime: float) -> None:
    """DataError unless the table has the column `target`. (size, mtime) of a table already
    parsed whole (_TABLES): its columns answer, with no second read of the header."""
    if not target:
        raise DataError(f"{path} is a table: name its label column with --target COLUMN")
    whole = _TABLES.get((path, size, mtime))
    header = list(whole.columns) if whole is not None else _header(path)
    if target not in header:
        close = difflib.get_close_matches(target, header, n=3)
        hint = (
            f"did you mean {', '.join(map(repr, close))}?"
            if close
            else (f"its columns: {', '.join(header[:20])}" + (" ..." if len(header) > 20 else ""))
        )
        raise DataError(f"{path}: no column {target!r}; {hint}")


def _header(path: Path) -> list[str]:
    if path.name.lower().endswith((".parquet", ".pq")):
        import pyarrow.parquet as pq

        sources.check_parquet(path)
        try:
            names = list(pq.read_schema(path).names)
        except Exception as e:  # pyarrow raises several types for a damaged footer
            raise DataError(f"{path}: not a readable Parquet file ({e})") from None
    else:
        import pyarrow.csv as pcsv

        sources.check_text(path)
        try:
            with pcsv.open_csv(path) as reader:
                names = list(reader.schema.names)
        except Exception as e:
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise DataError(f"{path}: cannot read it as CSV ({first})") from None
    sources.check_unique_names(path, names)
    return names


def _array_kind(y: np.ndarray) -> str:
    if y.dtype.kind in "biuf":
        return "number"
    if y.dtype.kind in "US":
        return "text"
    raise DataError(f"labels of type {y.dtype} are not supported; use numbers or text")


def infer_task(
    values: np.ndarray,
    kind: str,
    name: str,
    task: str = "auto",
    *,
    rows: np.ndarray | None = None,
) -> tuple[str, str]:
    """(task, the sentence that says why) for a target; DataError for an unusable one.
    values: the training part's labels (never the test part's); rows: their row numbers in
    the file (0-based), for the messages."""
    rows = np.arange(len(values)) if rows is None else rows

    def where(bad: np.ndarray) -> str:
        at = ", ".join(str(int(i) + 1) for i in rows[np.flatnonzero(bad)[:5]])
        return f"{int(bad.sum())} rows (data rows {at}{' ...' if bad.sum() > 5 else ''})"

    missing = _missing(values, kind)
    if missing.any():
        raise DataError(
            f"target {name!r} is missing in {where(missing)}; drop those rows or fill them in"
        )
    if kind == "number" and np.isinf(values.astype(np.float64)).any():
        raise DataError(
            f"target {name!r} is infinite in {where(np.isinf(values.astype(np.float64)))}; "
            "drop those rows or fix their values"
        )
    distinct = np.unique(values if kind != "text" else values.astype(str))
    n = len(distinct)
    if kind == "number":
        integral = bool(np.all(np.mod(values, 1) == 0))
        what = f"{'integers' if integral else 'numbers'}, {n:,} distinct values"
        guess = "classification" if integral and n <= MAX_INFERRED_CLASSES else "regression"
    else:
        what = f"{'text' if kind == 'text' else 'true/false'}, {n:,} distinct values"
        guess = "classification"
        if task == "regression":
            raise DataError(f"target {name!r} holds {kind} values; regression needs numbers")
    chosen = guess if task == "auto" else task
    if chosen == "classification" and n < 2:
        raise DataError(
            f"target {name!r} has one class ({distinct[0]!r}); classification needs two or more"
        )
    if chosen == "classification" and (n > MAX_CLASSES or (n > 20 and n > 0.5 * len(values))):
        raise DataError(
            f"target {name!r} has {n:,} distinct labels in {len(values):,} training rows; "
            f"fsearch classifies into at most {MAX_CLASSES:,} classes, each with several rows: "
            "choose another target column (this one looks like an identifier or free text)"
            + (' or set task = "regression" in [data]' if kind == "number" else "")
        )
    if chosen == "regression" and n < 2:
        raise DataError(f"target {name!r} is constant ({distinct[0]!r}); nothing to learn")
    how = "->" if task in ("auto", guess) else "-> (task set)"
    hint = ""
    if task == "auto" and kind == "number" and integral:
        other = "regression" if guess == "classification" else "classification"
        hint = f'; set task = "{other}" in [data] if it is {other}'
    return chosen, f"target {name!r}: {what} {how} {chosen}{hint}"


def _missing(values: np.ndarray, kind: str) -> np.ndarray:
    if kind == "number":
        return np.isnan(values.astype(np.float64))
    if values.dtype == object:
        return np.array([v is None for v in values], dtype=bool)
    return np.zeros(len(values), dtype=bool)


# ---------------------------------------------------------------------------- loading


def _file_key(source: str) -> tuple[Path, int, float]:
    path = sources.check_path(source).resolve()
    st = path.stat()
    if path.is_dir():
        times = [f.stat().st_mtime for f in path.iterdir() if f.is_file()]
        return path, len(times), max(times, default=st.st_mtime)
    return path, st.st_size, st.st_mtime


@lru_cache(maxsize=2)
def _read_arrays(path: Path, _size: int, _mtime: float) -> sources.Arrays:
    return sources.read_idx_folder(path) if path.is_dir() else sources.read_npz(path)


# The last tables read whole, by file key: a dict rather than lru_cache so that _target_of can
# take a target from a table already here instead of parsing the file again (pyarrow's
# include_columns still tokenizes every column of a CSV).
_TABLES: dict[tuple[Path, int, float], sources.Table] = {}
_TABLES_KEPT = 2


def _read_table(path: Path, size: int, mtime: float) -> sources.Table:
    key = (path, size, mtime)
    if key not in _TABLES:
        table = sources.read_table(path)
        while len(_TABLES) >= _TABLES_KEPT:
            _TABLES.pop(next(iter(_TABLES)))
        _TABLES[key] = table
    return _TABLES[key]


def load_split(settings: DataSettings, data_dir: str | Path | None = None) -> fashion.Split:
    """The training and validation rows of a study; the same for every trial and worker."""
    if not settings.source:
        return fashion.load_split(settings, data_dir)
    return _load(*_file_key(settings.source), settings).split


@dataclass(frozen=True, eq=False)
class _Loaded:
    split: fashion.Split
    test_inputs: Any  # what the exported model takes: a dict of columns or an array
    y_test: np.ndarray  # class indices (UNSEEN_CLASS: a label training lacks), or the target
    test_rows: np.ndarray | None  # the file's rows held out for test (None: its own test part)
    test_notes: tuple[str, ...] = ()  # what export must say about the test part (card)


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
    if sources.kind_of(path) == "table":
        _check_target_column(path, settings.target, size, mtime)
        table = _read_table(path, size, mtime)  # first: the target is then taken from it
        return _load_table(table, settings, _target_of(path, size, mtime, settings))
    target = _target_of(path, size, mtime, settings)
    return _load_arrays(_read_arrays(path, size, mtime), settings, target)


def _labels(y: np.ndarray, task: str, classes: np.ndarray | None) -> np.ndarray:
    """Regression: the target as float64. Classification: each label's index in `classes`
    (the training part's), UNSEEN_CLASS for a label not there (or a missing one)."""
    if task == "regression":
        return y.astype(np.float64)
    keys = y.astype(str) if y.dtype == object else y
    if (keys.dtype.kind in "US") != (classes.dtype.kind in "US"):
        return np.full(len(y), UNSEEN_CLASS, dtype=np.int32)  # text labels vs number classes
    at = np.minimum(np.searchsorted(classes, keys), len(classes) - 1)
    return np.where(classes[at] == keys, at, UNSEEN_CLASS).astype(np.int32)


def _class_values(y: np.ndarray) -> np.ndarray:
    """The sorted distinct labels; the class index of a label is its position here."""
    if y.dtype == object:
        return np.unique(y.astype(str))
    u = np.unique(y)
    if u.dtype.kind == "f" and np.all(np.mod(u, 1) == 0):  # 1.0 reads as the class "1"
        u = u.astype(np.int64)
    return u


def _no_target(values: np.ndarray, kind: str) -> np.ndarray:
    """Rows whose target is missing or infinite: they cannot be scored."""
    bad = _missing(values, kind)
    if kind == "number":
        bad |= np.isinf(values.astype(np.float64))
    return bad


def _strata(values: np.ndarray, kind: str, task: str) -> np.ndarray | None:
    """Labels to stratify the test hold-out by (None: a plain random hold-out).

    The hold-out is defined on the whole file before anything is learned, as a seeded
    function of its rows and their labels, so it reads every label (missing ones form a
    stratum of their own); whether to stratify is the whole column's look (classes or
    numbers), the same rule as the task's. Everything learned from the labels (the task, the
    class list, the missing-target check) reads the training part only (`_target_of`)."""
    if task == "regression":
        return None
    bad = _no_target(values, kind)
    present = values[~bad]
    if kind == "text":
        present = present.astype(str)
    if task == "auto" and kind == "number":
        v = present.astype(np.float64)
        if not (np.all(np.mod(v, 1) == 0) and len(np.unique(v)) <= MAX_INFERRED_CLASSES):
            return None
    distinct, codes = np.unique(present, return_inverse=True)
    if len(distinct) > MAX_CLASSES:  # refused as a target next; stratifying costs labels x rows
        return None
    out = np.full(len(values), len(distinct), dtype=np.int64)  # the missing ones' stratum
    out[~bad] = codes.reshape(-1)
    return out


def _hold_out(
    rows: np.ndarray, k: int, labels: np.ndarray | None, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(rows kept, k rows picked): stratified by labels[rows] when labels are given."""
    if labels is not None:
        picked = rows[fashion.stratified_indices(labels[rows], k, rng)]
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


def _test_labels_kept(
    raw: np.ndarray, kind: str, y: np.ndarray, task: str, classes, name: str
) -> tuple[np.ndarray, tuple[str, ...]]:
    """(which test rows can be scored, sentences for the card) from the test part's raw
    labels `raw` and their encoding `y`. Read only when export loads the test part."""
    notes = []
    gone = _no_target(raw, kind)
    if gone.any():
        notes.append(
            f"{int(gone.sum()):,} test rows have no {name} value (missing or infinite); "
            "they are not scored"
        )
    if task == "classification":
        unseen = (y == UNSEEN_CLASS) & ~gone
        if unseen.any():
            labels = sorted({str(v) for v in raw[unseen]})
            notes.append(
                f"{int(unseen.sum()):,} test rows have a class the training part lacks "
                f"({', '.join(map(repr, labels[:5]))}{' ...' if len(labels) > 5 else ''}); "
                "the model cannot predict it and they count as errors"
            )
    return ~gone, tuple(notes)


def _load_arrays(a: sources.Arrays, settings: DataSettings, target: Target) -> _Loaded:
    task = target.task
    where = str(a.path)
    x = a.x_train.reshape(len(a.x_train), -1)
    has_test = a.x_test is not None
    vkind = _array_kind(a.y_train)
    strata = None if has_test else _strata(a.y_train, vkind, settings.task)
    rows, test, rng = _test_part(strata, len(x), settings, has_test=has_test, where=where)
    # The classes are the training part's labels: a class only in test is not one of them.
    classes = _class_values(a.y_train[rows]) if task == "classification" else None
    y = _labels(a.y_train, task, classes)
    train, val = _train_val(rows, y, settings, task, rng, where)
    if has_test:
        x_test_raw = a.x_test.reshape(len(a.x_test), -1)
        raw_test, y_test = a.y_test, _labels(a.y_test, task, classes)
        if settings.test_size and settings.test_size < len(y_test):
            keep = (
                fashion.stratified_indices(
                    y_test, settings.test_size, np.random.default_rng(settings.seed)
                )
                if task == "classification"
                else np.arange(settings.test_size)
            )
            x_test_raw, y_test, raw_test = x_test_raw[keep], y_test[keep], raw_test[keep]
    else:
        x_test_raw, y_test, raw_test = x[test], y[test], a.y_train[test]
    scored, notes_test = _test_labels_kept(raw_test, vkind, y_test, task, classes, "label")
    x_test_raw, y_test = x_test_raw[scored], y_test[scored]
    # uint8 arrays are images: x / 255, as Fashion-MNIST; any other numbers are standardized.
    if x.dtype == np.uint8:
        scale, mean, std = "rescale", None, None
        enc = lambda v: v.astype(np.float32) / np.float32(255.0)  # noqa: E731
    else:
        scale = "standardize"
        xt = x[train].astype(np.float64)
        mean, std = xt.mean(axis=0), xt.std(axis=0)
        std = np.where(std > 0, std, 1.0)
        enc = lambda v: ((v.astype(np.float64) - mean) / std).astype(np.float32)  # noqa: E731
    if not np.isfinite(x).all() if x.dtype.kind == "f" else False:
        bad = int((~np.isfinite(x)).any(axis=1).sum())
        raise DataError(f"{where}: x_train has NaN or infinite values in {bad} rows; fix them")
    y_mean, y_std, ys = _target_scale(y, train, task)
    notes = [target.note] if target.note else []
    notes.append(
        f"{a.path.name}: {len(x):,} rows of {x.shape[1]:,} values"
        + (f" ({'x'.join(map(str, a.x_train.shape[1:]))} flattened)" if a.x_train.ndim > 2 else "")
        + ("; verified as Fashion-MNIST" if a.known else "")
    )
    split = fashion.Split(
        x_train=enc(x[train]),
        y_train=ys[train],
        x_val=enc(x[val]),
        y_val=ys[val],
        files=dict(a.sha256),
        directory=str(a.path),
        kind="arrays",
        task=task,
        classes=tuple(map(str, classes)) if classes is not None else (),
        y_mean=y_mean,
        y_std=y_std,
        x_scale=scale,
        x_mean=mean,
        x_std=std,
        split_sha=fashion.split_hash(a.sha256, train, val, test),
        notes=tuple(notes),
    )
    return _Loaded(
        split,
        x_test_raw.astype(np.float32),
        _test_labels(y_test, task),
        None if has_test else test[scored],
        notes_test,
    )


def _target_scale(y: np.ndarray, train: np.ndarray, task: str):
    """(mean, std, labels trials learn): regression targets are standardized with the
    training rows' statistics (the exported model scales its output back)."""
    if task != "regression":
        return 0.0, 1.0, y
    mean, std = float(y[train].mean()), float(y[train].std())
    std = std if std > 0 else 1.0
    return mean, std, ((y - mean) / std).astype(np.float32)


def _test_labels(y: np.ndarray, task: str) -> np.ndarray:
    return y.astype(np.float64) if task == "regression" else y.astype(np.int32)


def _load_table(t: sources.Table, settings: DataSettings, target: Target) -> _Loaded:
    task, where = target.task, str(t.path)
    for key in ("categorical", "drop"):
        for name in getattr(settings, key):
            if name not in t.columns:
                close = difflib.get_close_matches(name, list(t.columns), n=1)
                raise DataError(
                    f"{where}: [data] {key} names column {name!r}, which the file lacks"
                    + (f"; did you mean {close[0]!r}?" if close else "")
                )
    if settings.target in settings.drop or settings.target in settings.categorical:
        raise DataError(f"[data]: the target {settings.target!r} cannot be dropped or a feature")
    raw_y, vkind = t.columns[settings.target], t.kinds[settings.target]
    strata = _strata(raw_y, vkind, settings.task)
    rows, test, rng = _test_part(strata, len(raw_y), settings, has_test=False, where=where)
    # The classes are the training part's labels: a class only in test is not one of them.
    classes = _class_values(raw_y[rows]) if task == "classification" else None
    y = _labels(raw_y, task, classes)
    train, val = _train_val(rows, y, settings, task, rng, where)
    names = [c for c in t.columns if c != settings.target and c not in settings.drop]
    if not names:
        raise DataError(f"{where}: no feature columns left besides the target")
    features, blocks, notes = [], [], [target.note] if target.note else []
    for name in names:
        feature, block = _encode_column(t, name, settings, train, where)
        features.append(feature)
        blocks.append(block)
    seen: dict[str, str] = {}
    for f in features:
        if f.input_name.lower().startswith(RESERVED_PREFIX):
            raise DataError(
                f"{where}: column {f.name!r}: names beginning with {RESERVED_PREFIX!r} are kept "
                "for the exported model's own layers; rename the column"
            )
        if f.input_name in seen:
            raise DataError(
                f"{where}: columns {seen[f.input_name]!r} and {f.name!r} both become the model "
                f"input {f.input_name!r}; rename one of them"
            )
        seen[f.input_name] = f.name
    x = np.concatenate(blocks, axis=1) if len(blocks) > 1 else blocks[0]
    n_cat = sum(f.kind == "category" for f in features)
    notes.append(
        f"{t.path.name}: {len(y):,} rows; {len(features) - n_cat} number and {n_cat} category "
        f"columns -> {x.shape[1]:,} inputs"
    )
    blanks = {n: int(_missing(t.columns[n], t.kinds[n]).sum()) for n in names}
    blanks = {n: k for n, k in blanks.items() if k}
    if blanks:
        listed = ", ".join(f"{n} ({k:,})" for n, k in list(blanks.items())[:6])
        notes.append(
            f"{t.path.name}: blanks in {len(blanks)} column(s): {listed}"
            + (", ..." if len(blanks) > 6 else "")
            + "; filled inside the model (numbers: the training mean, plus a missing "
            "indicator where training rows have blanks; text: a category of its own); "
            'missing = "error" in [data] refuses them instead'
        )
    y_mean, y_std, ys = _target_scale(y, train, task)
    split = fashion.Split(
        x_train=x[train],
        y_train=ys[train],
        x_val=x[val],
        y_val=ys[val],
        files=dict(t.sha256),
        directory=str(t.path.parent),
        kind="table",
        task=task,
        classes=tuple(map(str, classes)) if classes is not None else (),
        y_mean=y_mean,
        y_std=y_std,
        features=tuple(features),
        split_sha=fashion.split_hash(t.sha256, train, val, test),
        notes=tuple(notes),
    )
    scored, notes_test = _test_labels_kept(
        raw_y[test], vkind, y[test], task, classes, repr(settings.target)
    )
    test = test[scored]
    test_inputs = {f.input_name: model_input(t, f)[test] for f in features}
    return _Loaded(split, test_inputs, _test_labels(y[test], task), test, notes_test)


def model_input(t: sources.Table, f: Feature) -> np.ndarray:
    """A column as the exported model's input takes it: float32 numbers or text. Export's
    test rows and `fsearch predict` (search/predict.py) both go through here."""
    values = t.columns[f.name]
    if f.kind == "number":
        return values.astype(np.float32)
    return _as_text(values, t.kinds[f.name])


def _as_text(values: np.ndarray, kind: str) -> np.ndarray:
    if kind == "text":
        return np.array(["" if v is None else v for v in values], dtype=object)
    if kind == "bool":
        return values.astype(str).astype(object)
    # numbers named in `categorical`: "3", not "3.0"
    return np.array(
        ["" if math.isnan(v) else (str(int(v)) if v == int(v) else repr(v)) for v in values],
        dtype=object,
    )


def _encode_column(
    t: sources.Table, name: str, settings: DataSettings, train: np.ndarray, where: str
) -> tuple[Feature, np.ndarray]:
    kind, values = t.kinds[name], t.columns[name]
    missing = _missing(values, "text" if kind == "text" else kind)
    if missing.any() and settings.missing != "impute":
        raise DataError(
            f"{where}: column {name!r} has {int(missing.sum()):,} missing values; fill them, "
            'drop the column (drop = [...]) or set missing = "impute" in [data]'
        )
    if kind == "number" and np.isinf(values).any():
        raise DataError(
            f"{where}: column {name!r} has {int(np.isinf(values).sum()):,} infinite values; "
            "fix them or drop the column (drop = [...] in [data])"
        )
    if kind == "text" or name in settings.categorical:
        text = _as_text(values, kind)
        vocab = sorted(set(text[train].tolist()))
        if len(vocab) > MAX_CATEGORIES or (len(vocab) > 20 and len(vocab) > 0.5 * len(train)):
            raise DataError(
                f"{where}: column {name!r} has {len(vocab):,} distinct values in {len(train):,} "
                "training rows: an identifier or free text, not a category; add it to "
                "drop = [...] in [data]"
            )
        index = {v: i + 1 for i, v in enumerate(vocab)}  # 0: a value the training rows lack
        codes = np.fromiter((index.get(v, 0) for v in text), dtype=np.int64, count=len(text))
        block = np.zeros((len(text), len(vocab) + 1), dtype=np.float32)
        block[np.arange(len(text)), codes] = 1.0
        return Feature(name, "category", vocabulary=tuple(vocab)), block
    v = values.astype(np.float64)
    tv = v[train]
    mean = float(np.nanmean(tv)) if (~np.isnan(tv)).any() else 0.0
    std = float(np.nanstd(tv)) if (~np.isnan(tv)).any() else 1.0
    std = std if std > 0 else 1.0
    blank = np.isnan(v)
    v = np.where(blank, mean, v)
    # As Keras' Normalization layer computes it: (x - mean) / max(sqrt(variance), epsilon).
    block = ((v - mean) / std).astype(np.float32).reshape(-1, 1)
    indicator = bool(blank[train].any())
    if indicator:
        block = np.concatenate([block, blank.astype(np.float32).reshape(-1, 1)], axis=1)
    feature = Feature(
        name, "number", mean=mean, std=std, fill=bool(blank.any()), indicator=indicator
    )
    return feature, block


# ---------------------------------------------------------------------------- the model users get


def inference_model(core, split: fashion.Split):
    """The trained network with the data's preprocessing in front (and, for regression, the
    target's units behind), in stock Keras layers: `model.keras` takes raw values and loads
    with plain `keras.saving.load_model`; where a number column can be blank, fsearch's own
    layers fill it (search/layers.py: import it before loading). Fashion-MNIST's model is
    returned as it is.

    Keras wants every layer name in a model unique, inputs included. The inputs are named
    after the columns, so the model's own layers (the network too) are named RESERVED_PREFIX
    + something, which no column may begin with (`_load_table`): a column called
    "features", "scale_age" or "ensemble_of_3" cannot collide with them."""
    import keras

    if split.kind == "fashion-mnist":
        return core
    ns = RESERVED_PREFIX
    # The network under a reserved name (a copy: the caller's model keeps its own name).
    net = keras.Model.from_config({**core.get_config(), "name": f"{ns}network"})
    net.set_weights(core.get_weights())
    if split.kind == "table":
        inputs, parts = {}, []
        for f in split.features:
            layer = f.input_name
            if f.kind == "number":
                inp = keras.Input(shape=(1,), name=layer, dtype="float32")
                value = inp
                if f.fill:  # blanks: the training mean, inside the model
                    from search.layers import FillMissing, MissingIndicator

                    value = FillMissing(f.mean, name=f"{ns}fill_{layer}")(inp)
                parts.append(
                    keras.layers.Normalization(
                        mean=f.mean, variance=f.std**2, name=f"{ns}scale_{layer}"
                    )(value)
                )
                if f.indicator:  # right after its column, as in training's x
                    parts.append(MissingIndicator(name=f"{ns}missing_{layer}")(inp))
            else:
                inp = keras.Input(shape=(1,), name=layer, dtype="string")
                parts.append(
                    keras.layers.StringLookup(
                        vocabulary=list(f.vocabulary),
                        num_oov_indices=1,
                        output_mode="one_hot",
                        name=f"{ns}onehot_{layer}",
                    )(inp)
                )
            inputs[layer] = inp
        x = keras.layers.Concatenate(name=f"{ns}features")(parts) if len(parts) > 1 else parts[0]
    else:
        inp = keras.Input(shape=(split.input_dim,), name="x", dtype="float32")
        inputs = inp
        if split.x_scale == "rescale":
            x = keras.layers.Rescaling(1.0 / 255.0, name=f"{ns}scale")(inp)
        else:
            x = keras.layers.Normalization(
                mean=split.x_mean, variance=np.square(split.x_std), name=f"{ns}scale"
            )(inp)
    y = net(x)
    if split.task == "regression":
        y = keras.layers.Rescaling(split.y_std, offset=split.y_mean, name=f"{ns}target_units")(y)
    return keras.Model(inputs, y, name=core.name)


# ------------------------------------------------------------------ a config to start from


def study_toml(source: str, target: str = "", *, name: str | None = None) -> tuple[str, list[str]]:
    """A study TOML for a data file (`fsearch init`, and `fsearch run --data` without a
    config): the default study's search, sized to the data. Returns (text, notes)."""
    settings = DataSettings(source=source, target=target, validation_fraction=0.2)
    tgt = target_of(settings, read_whole=True)
    split = load_split(settings)
    n = len(split.y_train)
    stem = re.sub(r"[^A-Za-z0-9._-]", "-", Path(source).name.split(".")[0]).strip("-.") or "data"
    name = validate_study_name(name or f"{stem}-mlp"[:100], where="--study")
    # Small data: smaller batches (enough steps per epoch) and more epochs, which are cheap.
    if n < 2000:
        batches, epochs, widths = "[32, 64]", 40, 512
    elif n < 20000:
        batches, epochs, widths = "[64, 128, 256]", 20, 1024
    else:
        batches, epochs, widths = "[256, 512]", 12, 1024
    lines = [
        f"# A study of {_comment(Path(source).name)} made by `fsearch init`; edit freely.",
        "# Every [space] entry is a fixed value, a range {low, high, log?, step?} or a list of",
        '# choices. See README.md, "Your own data" and "Study config reference".',
        "",
        "[study]",
        f'name = "{name}"',
        "seed = 42",
        'sampler = "tpe"',
        'pruner = "hyperband"',
        "reduction_factor = 4",
        # Optuna's Hyperband default: the best so far at a rung goes on. With the default
        # study's bootstrap_count = 3 (the first 3 at each rung stop there), a 30-trial study
        # made by `benchmarks.own_data compare` ended with no completed trial to export.
        "bootstrap_count = 0",
        "keep_models = 3",
        "",
        "[data]",
        f"source = {_toml_str(source)}",
        *([f"target = {_toml_str(target)}"] if target else []),
        f'task = "{tgt.task}"   # inferred: {_comment(tgt.note or "arrays")}',
        f'metric = "{tgt.metric.key}"',
        "validation_fraction = 0.2   # of the training rows, held out to select on",
        "test_fraction = 0.2         # of all rows, when the file has no test part",
        "seed = 0                    # the split is the same for every trial and run",
        "# categorical = []          # number columns to one-hot encode as categories",
        "# drop = []                 # columns that are not features (ids, free text)",
        '# missing = "error"         # stop at a blank value instead of filling it in the model',
        "",
        "[model]",
        "width_per_layer = false",
        "",
        "[space]",
        "layers = { low = 1, high = 4 }",
        f"width = {{ low = 16, high = {widths}, log = true }}",
        'activation = "relu"',
        'optimizer = ["sgd", "adam", "rmsprop"]',
        "learning_rate = { low = 1e-4, high = 0.3, log = true }",
        "momentum = { low = 0.0, high = 0.95 }",
        'regularizer = ["none", "l1", "l2"]',
        "reg_strength = { low = 1e-6, high = 1e-3, log = true }",
        "dropout = { low = 0.0, high = 0.5 }",
        f"batch_size = {batches}",
        f"epochs = {epochs}",
        'lr_schedule = "cosine"',
        "",
    ]
    return "\n".join(lines), list(split.notes)


def _toml_str(s: str) -> str:
    """A TOML basic string: quote, backslash and control characters escaped, everything else
    (an emoji, accents) written as itself in the UTF-8 file. (json.dumps was used before: it
    writes an emoji as a UTF-16 surrogate pair, "\\ud83d\\ude00", which TOML refuses.)"""
    short = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n"}
    short.update({"\f": "\\f", "\r": "\\r"})
    out = []
    for ch in s:
        if 0xD800 <= ord(ch) <= 0xDFFF:  # a byte that is not UTF-8, kept by surrogateescape
            raise DataError(f"{s!r} is not valid UTF-8; rename it (the config is UTF-8 text)")
        if ch in short:
            out.append(short[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _comment(s: str) -> str:
    """Text for a TOML comment: no control characters (a newline would end the comment)."""
    return re.sub(r"[\x00-\x08\x0a-\x1f\x7f]", " ", s)
