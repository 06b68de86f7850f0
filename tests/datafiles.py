"""Data files made from scikit-learn's bundled data sets (no download): the own-data tests and
benchmarks/own_data.py write them as CSV, Parquet and NPZ with pyarrow and NumPy.

- wine (178 rows, 3 classes): a classification table; its labels become text ("barolo", ...)
  and a text column "region" is derived from alcohol, so one-hot encoding is exercised.
- diabetes (442 rows): a regression table (float target "progression").
- digits (1,797 8x8 images, 10 classes): arrays, as uint8 0-255 like MNIST.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

WINE_CLASSES = ("barolo", "grignolino", "barbera")


def wine_columns() -> dict[str, np.ndarray]:
    from sklearn.datasets import load_wine

    w = load_wine()
    cols = {name: w.data[:, i] for i, name in enumerate(w.feature_names)}
    cols["region"] = np.where(w.data[:, 0] > 13.0, "north", "south").astype(object)
    cols["cultivar"] = np.array([WINE_CLASSES[i] for i in w.target], dtype=object)
    return cols


def diabetes_columns() -> dict[str, np.ndarray]:
    from sklearn.datasets import load_diabetes

    d = load_diabetes()
    cols = {name: d.data[:, i] for i, name in enumerate(d.feature_names)}
    cols["progression"] = d.target.astype(np.float64)
    return cols


def write_table(columns: dict[str, np.ndarray], path: Path) -> Path:
    """CSV or Parquet by the suffix."""
    import pyarrow as pa

    table = pa.table({k: pa.array(v.tolist()) for k, v in columns.items()})
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        pq.write_table(table, path)
    else:
        import pyarrow.csv as pcsv

        pcsv.write_csv(table, path)
    return path


def write_digits_npz(path: Path, *, with_test: bool = True) -> Path:
    """8x8 digit images scaled to 0-255 uint8; the last 297 images as the test part."""
    from sklearn.datasets import load_digits

    g = load_digits()
    x = np.round(g.images * 255.0 / 16.0).astype(np.uint8)
    y = g.target.astype(np.int64)
    if with_test:
        np.savez(path, x_train=x[:1500], y_train=y[:1500], x_test=x[1500:], y_test=y[1500:])
    else:
        np.savez(path, x=x, y=y)
    return path
