"""The task and the labels: what a target column (or y_train) means, decided from the
training part's labels only, and said out loud ("target 'price': numbers, 812 distinct values
-> regression"), or set with `task = ...`; then the labels as trials and export use them
(class indices, a standardized target) and what export must say about the test part's labels.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from search.config import DataSettings
from search.data import readers
from search.data.files import _TABLES, _file_key, _read_arrays, _read_table
from search.data.split import _test_part
from search.errors import DataError
from search.metrics import Metric, for_data

# An integer target with at most this many distinct values is taken for classes.
MAX_INFERRED_CLASSES = 50
# A classification target with more classes than this is refused: export's confusion matrix is
# n x n (30,000 labels: 7 GB), the softmax layer n wide, and with so many labels most classes
# have a handful of rows, which no validation split can score. Nor may the classes be more than
# half the training rows (over 20 classes): that is an identifier or free text, not a label.
MAX_CLASSES = 1000
# A test label the training part lacks: the model cannot predict it, export counts it wrong.
UNSEEN_CLASS = -1


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
    if read_whole and readers.kind_of(key[0]) == "table":
        path, size, mtime = key
        _check_target_column(path, settings.target, size, mtime)  # a typo: no full parse
        _read_table(*key)
    return _target_of(*key, settings)


@lru_cache(maxsize=8)
def _target_of(path: Path, size: int, mtime: float, settings: DataSettings) -> Target:
    """The task from the training part's labels only (the test part is set aside first)."""
    kind = readers.kind_of(path)
    if kind == "table":
        _check_target_column(path, settings.target, size, mtime)
        whole = _TABLES.get((path, size, mtime))
        table = whole or readers.read_table(path, columns=[settings.target])
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

        readers.check_parquet(path)
        try:
            names = list(pq.read_schema(path).names)
        except Exception as e:  # pyarrow raises several types for a damaged footer
            raise DataError(f"{path}: not a readable Parquet file ({e})") from None
    else:
        import pyarrow.csv as pcsv

        readers.check_text(path)
        try:
            with pcsv.open_csv(path) as reader:
                names = list(reader.schema.names)
        except Exception as e:
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise DataError(f"{path}: cannot read it as CSV ({first})") from None
    readers.check_unique_names(path, names)
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


def _target_scale(
    y: np.ndarray, train: np.ndarray, task: str, transform: str = "none", name: str = "target"
):
    """(mean, std, labels trials learn): regression targets are standardized with the
    training rows' statistics (the exported model scales its output back); with transform
    "log", log(1 + y) is (a target below 0 anywhere: DataError)."""
    if task != "regression":
        if transform != "none":
            raise DataError(f"target_transform = {transform!r} is for a regression target")
        return 0.0, 1.0, y
    if transform == "log":
        negative = int((y < 0).sum())
        if negative:
            raise DataError(
                f'target_transform = "log" fits log(1 + y) and needs a target >= 0; '
                f'{name} has {negative:,} values below 0 (use target_transform = "none")'
            )
        y = np.log1p(y.astype(np.float64))
    mean, std = float(y[train].mean()), float(y[train].std())
    std = std if std > 0 else 1.0
    return mean, std, ((y - mean) / std).astype(np.float32)


def _test_labels(y: np.ndarray, task: str) -> np.ndarray:
    return y.astype(np.float64) if task == "regression" else y.astype(np.int32)
