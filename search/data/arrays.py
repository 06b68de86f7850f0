"""Arrays (an NPZ archive, a folder of MNIST-format IDX files) as trials see them: flattened,
then divided by 255 (uint8 images, as Fashion-MNIST) or standardized per feature with the
training rows' statistics; the exported model repeats it in one Keras layer (preprocessing.py)
and takes one flat input.
"""

from __future__ import annotations

import numpy as np

from search.config import DataSettings
from search.data import readers
from search.data.preprocessing import Rescale, Standardize
from search.data.split import (
    Split,
    _Loaded,
    _test_part,
    _train_val,
    split_hash,
    stratified_indices,
)
from search.data.task import (
    Target,
    _array_kind,
    _class_values,
    _labels,
    _strata,
    _target_scale,
    _test_labels,
    _test_labels_kept,
)
from search.errors import DataError


def _load_arrays(a: readers.Arrays, settings: DataSettings, target: Target) -> _Loaded:
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
                stratified_indices(y_test, settings.test_size, np.random.default_rng(settings.seed))
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
    y_mean, y_std, ys = _target_scale(
        y, train, task, settings.target_transform, f"{where}: y_train"
    )
    notes = [target.note] if target.note else []
    notes.append(
        f"{a.path.name}: {len(x):,} rows of {x.shape[1]:,} values"
        + (f" ({'x'.join(map(str, a.x_train.shape[1:]))} flattened)" if a.x_train.ndim > 2 else "")
        + ("; verified as Fashion-MNIST" if a.known else "")
    )
    split = Split(
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
        y_log=settings.target_transform == "log",
        preprocessing=Rescale(x.shape[1]) if scale == "rescale" else Standardize(mean, std),
        split_sha=split_hash(a.sha256, train, val, test),
        notes=tuple(notes),
    )
    return _Loaded(
        split,
        x_test_raw.astype(np.float32),
        _test_labels(y_test, task),
        None if has_test else test[scored],
        notes_test,
    )
