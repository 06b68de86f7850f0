"""`fsearch predict`: an exported model on new rows, checked against its card (issue #22)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from search import datasets
from search.config import DataSettings
from tests import datafiles
from tests.helpers import invoke


def _export_table(workdir: Path, columns: dict, name: str, target: str) -> tuple[Path, dict]:
    path = datafiles.write_table(columns, workdir / name)
    r = invoke(
        "run", "--data", path, "--target", target, "--trials", "2", "--no-refit",
        "--ensemble", "1",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    (best,) = (workdir / "studies").glob("*/best")
    return best, json.loads((best / "model-card.json").read_text())


def _held_out(columns: dict, card: dict, out: Path) -> Path:
    """The rows export tested on, as a file of their own (what a user would keep back)."""
    split = card["data"]["split"]
    settings = DataSettings(**{k: tuple(v) if isinstance(v, list) else v for k, v in split.items()})
    rows = datasets.held_out_rows(settings)
    return datafiles.write_table({k: v[rows] for k, v in columns.items()}, out)


@pytest.mark.slow
def test_predict_on_the_held_out_rows_reproduces_the_cards_test_accuracy(workdir):
    cols = datafiles.wine_columns()
    best, card = _export_table(workdir, cols, "wine.csv", "cultivar")
    test = _held_out(cols, card, workdir / "kept-back.parquet")
    r = invoke("predict", "--model", best, "--data", test, "--out", workdir / "p.csv", "--proba")
    assert r.exit_code == 0, r.output
    import pyarrow.csv as pcsv

    pred = pcsv.read_csv(workdir / "p.csv").to_pydict()
    truth = cols["cultivar"][datasets.held_out_rows(DataSettings(**_settings(card)))]
    assert len(pred["prediction"]) == card["test_examples"]
    assert set(pred["prediction"]) <= set(datafiles.WINE_CLASSES)
    assert np.mean(np.array(pred["prediction"]) == truth) == card["test_accuracy"]
    proba = np.array([pred[f"proba_{c}"] for c in card["classes"]]).T
    assert np.allclose(proba.sum(axis=1), 1.0, atol=1e-5)


def _settings(card: dict) -> dict:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in card["data"]["split"].items()}


@pytest.mark.slow
def test_predict_regression_gives_values_in_target_units_matching_the_cards_rmse(workdir):
    cols = datafiles.diabetes_columns()
    best, card = _export_table(workdir, cols, "diabetes.csv", "progression")
    test = _held_out(cols, card, workdir / "kept-back.csv")
    r = invoke("predict", "--model", best, "--data", test)
    assert r.exit_code == 0, r.output
    lines = r.output.strip().splitlines()
    assert lines[0] == "prediction"
    values = np.array([float(v) for v in lines[1:]])
    truth = cols["progression"][datasets.held_out_rows(DataSettings(**_settings(card)))]
    assert np.sqrt(np.mean((values - truth) ** 2)) == pytest.approx(card["test_rmse"], rel=1e-6)


@pytest.fixture(scope="module")
def wine_export(tmp_path_factory):
    import os

    workdir = tmp_path_factory.mktemp("wine")
    old = os.getcwd()
    os.chdir(workdir)
    try:
        best, card = _export_table(workdir, datafiles.wine_columns(), "wine.csv", "cultivar")
    finally:
        os.chdir(old)
    return best, workdir


@pytest.mark.slow
@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda c: c.pop("alcohol"),
            "column 'alcohol', which the model was trained on, is missing",
        ),
        (
            lambda c: c.__setitem__("alcohol", np.array(["high"] * len(c["hue"]), dtype=object)),
            "column 'alcohol' holds text ('high') where the model was trained on numbers",
        ),
    ],
    ids=["missing-column", "text-in-number-column"],
)
def test_predict_bad_rows_get_one_line_and_exit_2(wine_export, tmp_path, change, message):
    best, _ = wine_export
    cols = datafiles.wine_columns()
    change(cols)
    path = datafiles.write_table(cols, tmp_path / "new.csv")
    r = invoke("predict", "--model", best, "--data", path)
    assert r.exit_code == 2 and message in r.output, r.output
    assert len(r.output.strip().splitlines()) == 1


@pytest.mark.slow
def test_predict_with_a_file_that_is_not_a_table_or_a_folder_without_a_card_exits_2(
    wine_export, tmp_path
):
    best, _ = wine_export
    notes = tmp_path / "notes.txt"
    notes.write_text("hello\n")
    r = invoke("predict", "--model", best, "--data", notes)
    assert r.exit_code == 2 and "unknown data format" in r.output, r.output
    r = invoke("predict", "--model", tmp_path, "--data", notes)
    assert r.exit_code == 2 and "no model-card.json" in r.output, r.output


@pytest.mark.slow
def test_predict_fills_blanks_in_a_column_trained_without_them_with_its_mean_and_says_so(
    wine_export, tmp_path
):
    from search.predict import predict

    best, _ = wine_export
    card = json.loads((best / "model-card.json").read_text())
    (alcohol,) = [f for f in card["data"]["features"] if f["name"] == "alcohol"]
    assert "missing" not in alcohol  # the study's file had no blanks in it
    cols = datafiles.wine_columns()
    blank = cols["alcohol"].copy()
    blank[:5] = np.nan
    filled = cols["alcohol"].copy()
    filled[:5] = alcohol["mean"]
    with_blanks = datafiles.write_table({**cols, "alcohol": blank}, tmp_path / "b.csv")
    with_mean = datafiles.write_table({**cols, "alcohol": filled}, tmp_path / "m.csv")
    got, want = predict(best, with_blanks), predict(best, with_mean)
    np.testing.assert_allclose(got.probabilities, want.probabilities, rtol=1e-6)
    assert got.notes == (
        f"{with_blanks}: column 'alcohol': 5 blank value(s) filled with the training mean "
        f"{alcohol['mean']:.6g} (the study's data had no blanks in it)",
    )
    r = invoke("predict", "--model", best, "--data", with_blanks, "--out", tmp_path / "p.csv")
    assert r.exit_code == 0 and "5 blank value(s) filled" in r.output, r.output
