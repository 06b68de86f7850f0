"""Blanks in a user's table: filled inside the exported model by default (issue #22, item 3;
issue #21, protocol item 2: the card's numbers come from that model on raw rows)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from search import datasets
from search.config import DataSettings
from tests import datafiles
from tests.helpers import invoke


def wine_with_blanks() -> dict[str, np.ndarray]:
    """wine with blanks in two number columns (every 7th / 11th row) and in the text column
    (every 5th row: empty, "NA" or "null")."""
    cols = datafiles.wine_columns()
    n = len(cols["cultivar"])
    cols["alcohol"] = np.where(np.arange(n) % 7 == 3, np.nan, cols["alcohol"])
    cols["hue"] = np.where(np.arange(n) % 11 == 5, np.nan, cols["hue"])
    region = cols["region"].copy()
    for i in range(0, n, 5):
        region[i] = ("", "NA", "null")[i % 3]
    cols["region"] = region
    return cols


def _write_csv_with_blanks(cols: dict[str, np.ndarray], path: Path) -> Path:
    """A CSV as a spreadsheet writes it: a blank number is an empty field."""
    names = list(cols)
    lines = [",".join(names)]
    for i in range(len(cols[names[0]])):
        cells = []
        for name in names:
            v = cols[name][i]
            cells.append("" if isinstance(v, float) and math.isnan(v) else str(v))
        lines.append(",".join(cells))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.slow
def test_a_table_with_blanks_runs_without_a_toml_and_predict_reproduces_the_card(workdir):
    cols = wine_with_blanks()
    path = _write_csv_with_blanks(cols, workdir / "wine.csv")
    r = invoke("run", "--data", path, "--target", "cultivar", "--trials", "2", "--no-refit",
               "--ensemble", "1")  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "blanks in 3 column(s): alcohol" in r.output and "filled inside the model" in r.output
    best = workdir / "studies" / "wine-mlp" / "best"
    card = json.loads((best / "model-card.json").read_text())  # valid JSON: no NaN in it
    assert math.isfinite(card["test_loss"])
    by_name = {f["name"]: f for f in card["data"]["features"]}
    assert by_name["alcohol"]["missing"]["indicator"] is True
    assert "missing" not in by_name["magnesium"]
    split = {k: tuple(v) if isinstance(v, list) else v for k, v in card["data"]["split"].items()}
    # The card's features and inputs are the split's preprocessing (search/data/preprocessing.py).
    entries = datasets.load_split(DataSettings(**split)).preprocessing.card()
    assert {k: card["data"][k] for k in entries} == entries
    rows = datasets.held_out_rows(DataSettings(**split))
    kept = {k: v[rows] for k, v in cols.items()}
    assert np.isnan(kept["alcohol"]).any()  # the held-out rows have blanks too
    test_csv = _write_csv_with_blanks(kept, workdir / "kept-back.csv")
    r = invoke("predict", "--model", best, "--data", test_csv, "--out", workdir / "p.csv")
    assert r.exit_code == 0, r.output
    import pyarrow.csv as pcsv

    pred = np.array(pcsv.read_csv(workdir / "p.csv").column("prediction").to_pylist())
    assert np.mean(pred == kept["cultivar"]) == card["test_accuracy"]


@pytest.mark.slow
def test_missing_error_still_refuses_a_blank_naming_the_column(workdir):
    path = _write_csv_with_blanks(wine_with_blanks(), workdir / "wine.csv")
    toml = workdir / "wine.toml"
    r = invoke("init", "--data", path, "--target", "cultivar")
    assert r.exit_code == 0, r.output
    text = r.stdout.replace('# missing = "error"', 'missing = "error"')
    assert 'missing = "error"' in text
    toml.write_text(text)
    r = invoke("run", "--config", toml, "--trials", "1", "--no-export")
    assert r.exit_code == 2 and "column 'alcohol' has" in r.output, r.output
    assert not (workdir / "studies" / "fsearch.db").exists()


def test_exported_fill_layers_load_under_safe_mode_and_fill_blanks(tmp_path):
    import keras

    from search.layers import FillMissing, MissingIndicator

    inp = keras.Input(shape=(1,), name="a")
    out = keras.layers.Concatenate()([FillMissing(2.5)(inp), MissingIndicator()(inp)])
    path = tmp_path / "m.keras"
    keras.Model(inp, out).save(path)
    model = keras.saving.load_model(path, safe_mode=True)
    got = np.asarray(model.predict(np.array([[1.0], [np.nan]], dtype=np.float32), verbose=0))
    assert got.tolist() == [[1.0, 0.0], [2.5, 1.0]]
