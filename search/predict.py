"""Use an exported model: `fsearch predict --model DIR --data new.csv`.

Reads the folder `fsearch export` wrote (model.keras and model-card.json), checks the new
rows against the card (every feature column present, numbers where numbers were trained on),
feeds the model its raw named inputs exactly as export fed the test rows, and returns one
prediction per input row: the label under the original label values (classification, with
the class probabilities if asked), or the value in the target's units (regression).
"""

from __future__ import annotations

import difflib
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from search.errors import DataError, ExportError

CARD_FILE = "model-card.json"


@dataclass(frozen=True)
class Predictions:
    """One row per input row: `labels` (classification) or `values` (regression), and the
    class probabilities (classification) in the order of `classes`."""

    task: str
    values: np.ndarray  # labels as text, or float64 values in the target's units
    probabilities: np.ndarray | None = None
    classes: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()  # what was done to the inputs that the user should know

    def columns(self, *, proba: bool = False) -> dict[str, np.ndarray]:
        """Output columns by name: `prediction`, and `proba_<class>` per class if asked."""
        out = {"prediction": self.values}
        if proba and self.probabilities is not None:
            for i, name in enumerate(self.classes):
                out[f"proba_{name}"] = self.probabilities[:, i]
        return out


def read_card(model_dir: str | Path) -> tuple[dict[str, Any], Path]:
    """(model card, model file) of an export folder; ExportError if it is not one."""
    folder = Path(model_dir)
    if not folder.is_dir():
        raise ExportError(
            f"--model {str(folder)!r} is not a folder; give the folder `fsearch export` wrote "
            "(it holds model.keras and model-card.json)"
        )
    card_path = folder / CARD_FILE
    if not card_path.is_file():
        raise ExportError(
            f"{folder}: no {CARD_FILE}; give the folder `fsearch export` wrote (it holds "
            "model.keras and model-card.json)"
        )
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ExportError(f"{card_path}: not a readable model card ({e})") from None
    if not isinstance(card, dict) or not isinstance(card.get("data"), dict):
        raise ExportError(f"{card_path}: not a model card written by `fsearch export`")
    model_path = folder / str(card.get("model_file", "model.keras"))
    if not model_path.is_file():
        raise ExportError(f"{folder}: the card names {model_path.name}, which is missing")
    want = card.get("model_sha256")
    if want and hashlib.sha256(model_path.read_bytes()).hexdigest() != want:
        raise ExportError(
            f"{model_path}: not the file the card describes (its SHA-256 differs); export again"
        )
    return card, model_path


def model_inputs(card: dict[str, Any], data: str | Path, notes: list[str] | None = None) -> Any:
    """The exported model's inputs for the rows of a data file, checked against the card:
    for a table, one array per feature column by its input name (numbers as float32, text as
    strings); for arrays, the rows flattened. `notes` gets a line for each thing done to the
    inputs (blanks filled here)."""
    from search import sources

    path = sources.check_path(str(data))
    features = card["data"].get("features")
    if features is not None:
        if sources.kind_of(path) != "table":
            raise DataError(f"{path}: this model takes a table (CSV or Parquet), not arrays")
        return _table_inputs(sources.read_table(path), features, notes)
    if sources.kind_of(path) != "arrays" or path.is_dir():
        raise DataError(
            f"{path}: this model takes arrays: give an .npz file with an array `x` (or x_test)"
        )
    return _array_inputs(path, card)


def _table_inputs(
    table, features: list[dict[str, Any]], notes: list[str] | None = None
) -> dict[str, np.ndarray]:
    from search.datasets import Feature, model_input

    out = {}
    for spec in features:
        name = spec["name"]
        if name not in table.columns:
            close = difflib.get_close_matches(name, list(table.columns), n=1)
            raise DataError(
                f"{table.path}: column {name!r}, which the model was trained on, is missing"
                + (f"; did you mean {close[0]!r}?" if close else "")
                + " (model-card.json lists every input column)"
            )
        feature = Feature(
            name=name,
            kind=spec["kind"],
            mean=float(spec.get("mean", 0.0)),
            std=float(spec.get("std", 1.0)),
            vocabulary=tuple(spec.get("vocabulary", ())),
        )
        if feature.kind == "number" and table.kinds[name] == "text":
            bad = next(v for v in table.columns[name] if v is not None)
            raise DataError(
                f"{table.path}: column {name!r} holds text ({bad!r}) where the model was "
                "trained on numbers; give numbers (leave a missing value blank)"
            )
        values = model_input(table, feature)
        blank = np.isnan(values) if feature.kind == "number" else None
        if blank is not None and not spec.get("missing") and blank.any():
            # The model fills blanks only in columns that had some in the study's file; here
            # the training mean goes in, as training would have filled them (no indicator:
            # the network has none for this column).
            values = np.where(blank, np.float32(feature.mean), values)
            if notes is not None:
                notes.append(
                    f"{table.path}: column {name!r}: {int(blank.sum()):,} blank value(s) "
                    f"filled with the training mean {feature.mean:.6g} (the study's data had "
                    "no blanks in it)"
                )
        out[spec["input"]] = values
    return out


def _array_inputs(path: Path, card: dict[str, Any]) -> np.ndarray:
    import zipfile

    try:
        with np.load(path, allow_pickle=False) as z:
            key = next((k for k in ("x", "x_test") if k in z.files), None)
            if key is None:
                raise DataError(f"{path}: no array named x (or x_test) in it")
            x = z[key]
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise DataError(f"{path}: cannot read it as .npz ({e})") from None
    x = x.reshape(len(x), -1)
    if not np.issubdtype(x.dtype, np.number):
        raise DataError(f"{path}: x holds {x.dtype}, not numbers")
    return x.astype(np.float32)


def predict(model_dir: str | Path, data: str | Path) -> Predictions:
    """The exported model's predictions for every row of `data` (CSV, Parquet or NPZ)."""
    card, model_path = read_card(model_dir)
    notes: list[str] = []
    inputs = model_inputs(card, data, notes)
    from search._tf import import_backend

    import_backend()
    import keras

    import search.layers  # noqa: F401  (registers fsearch's layers a model may hold)

    model = keras.saving.load_model(model_path)
    out = np.asarray(model.predict(inputs, batch_size=4096, verbose=0), dtype=np.float64)
    if card.get("task") == "regression":
        return Predictions("regression", out.reshape(-1), notes=tuple(notes))
    classes = tuple(card.get("classes") or map(str, range(out.shape[1])))
    labels = np.array(classes, dtype=object)[out.argmax(axis=1)]
    return Predictions("classification", labels, out, classes, tuple(notes))


def write_predictions(pred: Predictions, out: str | Path, *, proba: bool = False) -> Path:
    """The predictions as CSV or Parquet (by the suffix), one row per input row."""
    import pyarrow as pa

    path = Path(out)
    table = pa.table({k: pa.array(v.tolist()) for k, v in pred.columns(proba=proba).items()})
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            pq.write_table(table, path)
        else:
            import pyarrow.csv as pcsv

            pcsv.write_csv(table, path)
    except OSError as e:
        raise DataError(f"cannot write {path}: {e.strerror or e}") from None
    return path
