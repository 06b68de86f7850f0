"""A table (CSV, Parquet) as trials see it: numbers standardized with the training rows'
statistics, text (or `categorical`) columns one-hot encoded with the training rows'
vocabulary, blanks filled; each column's recipe kept as a `Feature`, which the exported model
repeats in Keras layers (preprocessing.py), so it takes raw values: one named input per column.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from search.config import DataSettings
from search.data import readers
from search.data.preprocessing import RESERVED_PREFIX, Columns
from search.data.split import Split, _Loaded, _test_part, _train_val, split_hash
from search.data.task import (
    Target,
    _class_values,
    _labels,
    _missing,
    _strata,
    _target_scale,
    _test_labels,
    _test_labels_kept,
)
from search.errors import DataError, UnusableColumn

# A text column with more distinct values than this (or one value per row, nearly) is an
# identifier or free text, not a category: it must be dropped or encoded by the user.
MAX_CATEGORIES = 1000
# Quantile bins per number column for its piecewise-linear encoding: TabM's default
# (pytabkit TABM_D num_emb_n_bins).
PIECEWISE_BINS = 48


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
    # number: RealMLP's robust scaling (space key numeric = "robust", search/layers.py):
    # (v - median) * robust_factor, the factor 1 / IQR of the training rows (1 / half the
    # range where the IQR is 0, and 0 for a constant column), as pytabkit's
    # RobustScaleSmoothClipTransform computes it.
    median: float = 0.0
    robust_factor: float = 1.0
    # number: the training rows' quantiles for numeric = "quantile" (search/layers.py
    # QuantileNormal), in standardized units z = (v - mean) / std: strictly increasing knots
    # and for each the lowest and highest quantile level it is the quantile at (equal but
    # where a value repeats: a count, a rounded amount).
    knots: tuple[float, ...] = ()
    levels: tuple[tuple[float, float], ...] = ()
    # number: the edges of its PIECEWISE_BINS quantile bins (z units) for embedding =
    # "piecewise" (layers.PiecewiseLinearEmbedding); equal edges make empty bins.
    bins: tuple[float, ...] = ()

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
            out["robust"] = {"median": self.median, "factor": self.robust_factor}
            if self.fill:
                out["missing"] = {"filled_with": self.mean, "indicator": self.indicator}
            return out
        return {**out, "vocabulary": list(self.vocabulary)}


def _load_table(t: readers.Table, settings: DataSettings, target: Target) -> _Loaded:
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
    y_mean, y_std, ys = _target_scale(
        y, train, task, settings.target_transform, f"{where}: target {settings.target!r}"
    )
    split = Split(
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
        y_log=settings.target_transform == "log",
        preprocessing=Columns(tuple(features)),
        split_sha=split_hash(t.sha256, train, val, test),
        notes=tuple(notes),
    )
    scored, notes_test = _test_labels_kept(
        raw_y[test], vkind, y[test], task, classes, repr(settings.target)
    )
    test = test[scored]
    test_inputs = {f.input_name: model_input(t, f)[test] for f in features}
    return _Loaded(split, test_inputs, _test_labels(y[test], task), test, notes_test)


def model_input(t: readers.Table, f: Feature) -> np.ndarray:
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
    t: readers.Table, name: str, settings: DataSettings, train: np.ndarray, where: str
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
            raise UnusableColumn(
                f"{where}: column {name!r} has {len(vocab):,} distinct values in {len(train):,} "
                "training rows: an identifier or free text, not a category; add it to "
                "drop = [...] in [data]",
                column=name,
                why=f"{len(vocab):,} distinct values in {len(train):,} training rows "
                "(an identifier or free text)",
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
    median, factor = _robust(tv[~np.isnan(tv)])
    known_z = (tv[~np.isnan(tv)] - mean) / std
    knots, levels = _quantiles(known_z)
    bins = np.quantile(known_z, np.linspace(0, 1, PIECEWISE_BINS + 1)) if len(known_z) else None
    blank = np.isnan(v)
    v = np.where(blank, mean, v)
    # As Keras' Normalization layer computes it: (x - mean) / max(sqrt(variance), epsilon).
    block = ((v - mean) / std).astype(np.float32).reshape(-1, 1)
    indicator = bool(blank[train].any())
    if indicator:
        block = np.concatenate([block, blank.astype(np.float32).reshape(-1, 1)], axis=1)
    feature = Feature(
        name,
        "number",
        mean=mean,
        std=std,
        fill=bool(blank.any()),
        indicator=indicator,
        median=median,
        robust_factor=factor,
        knots=knots,
        levels=levels,
        bins=tuple(map(float, bins)) if bins is not None else (0.0,) * (PIECEWISE_BINS + 1),
    )
    return feature, block


def _quantiles(z: np.ndarray) -> tuple[tuple[float, ...], tuple[tuple[float, float], ...]]:
    """(knots, (low, high) level of each) of a column's training values for the quantile
    transform: as many quantiles as TabM's and RTDL's recipe takes (n // 30, between 10 and
    1,000), at evenly spaced levels, as scikit-learn's QuantileTransformer computes them. A
    value that is the quantile at several levels (a count, a rounded amount) is one knot with
    the lowest and highest of them: scikit-learn interpolates from the highest to the next
    knot and gives their mean at the knot itself (layers.QuantileNormal does the same).
    Empty for a column without known values."""
    if not len(z):
        return (), ()
    n = int(min(max(len(z) // 30, 10), 1000))
    levels = np.linspace(0.0, 1.0, n)
    q = np.quantile(z, levels)
    knots, first = np.unique(q, return_index=True)
    last = np.append(first[1:] - 1, n - 1)
    pairs = tuple((float(levels[a]), float(levels[b])) for a, b in zip(first, last, strict=True))
    return tuple(map(float, knots)), pairs


def _robust(v: np.ndarray) -> tuple[float, float]:
    """(median, 1 / IQR) of a column's training values, with pytabkit's fallbacks for RealMLP:
    half the range where the IQR is 0, and a factor of 0 (the column becomes 0) when the
    values are all equal or none is known."""
    if not len(v):
        return 0.0, 0.0
    q25, median, q75 = np.quantile(v, [0.25, 0.5, 0.75])
    spread = q75 - q25
    if spread == 0:
        spread = 0.5 * (v.max() - v.min())
    return float(median), float(1.0 / spread) if spread > 0 else 0.0
