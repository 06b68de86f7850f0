"""--folds by default for small tables (issue #22, item 4): `fsearch init` and `fsearch run
--data` write [study] folds for a table of at most FOLDS_MAX_ROWS training rows, the export
reads it from the study, an explicit --folds wins (0: off), and out-of-fold scores are in
the target's units."""

from __future__ import annotations

import json

import numpy as np
import pytest

from search import exporting
from search.config import FOLDS_MAX_ROWS, MAX_FOLDS, TABLE_FOLDS, export_folds
from search.errors import ExportError
from tests import datafiles
from tests.helpers import invoke
from tests.test_log_target import skewed_study


@pytest.mark.parametrize(
    ("explicit", "configured", "kw", "want"),
    [(None, 0, {}, None),
     (None, 5, {}, 5),
     (3, 5, {}, 3),
     (0, 5, {}, None),
     (None, 5, {"refit": False}, None),
     (None, 5, {"max_params": 10_000}, None),
     (None, 5, {"max_params": 10_000, "ensemble": 2}, 5),
     (0, 0, {"refit": False}, None)],
    ids=["neither", "the-studys", "explicit-wins", "zero-turns-it-off", "study-yields-to-no-refit",
         "study-yields-to-a-budget", "budget-with-ensemble-keeps-it", "zero-with-no-refit"],
)  # fmt: skip
def test_export_folds_is_the_explicit_k_else_the_studys_where_the_export_can_bag(
    explicit, configured, kw, want
):
    how = {"refit": True, "max_params": None, "ensemble": None, **kw}
    assert export_folds(explicit, configured, **how) == want


def test_an_explicit_folds_that_cannot_go_with_the_export_is_refused_not_dropped():
    with pytest.raises(ExportError, match="cannot be combined with --no-refit"):
        export_folds(5, 0, refit=False, max_params=None, ensemble=None)
    with pytest.raises(ExportError, match=f"must be 0 \\(off\\) or between 2 and {MAX_FOLDS}"):
        export_folds(1, 5, refit=True, max_params=None, ensemble=None)


def test_init_writes_folds_for_a_table_within_the_row_bound_only(workdir, monkeypatch):
    datafiles.write_table(datafiles.wine_columns(), workdir / "wine.csv")  # 142 training rows
    r = invoke("init", "--data", "wine.csv", "--target", "cultivar")
    assert r.exit_code == 0, r.output
    assert f"\nfolds = {TABLE_FOLDS} " in r.stdout and FOLDS_MAX_ROWS >= 142
    with monkeypatch.context() as m:
        m.setattr("search.data.init_toml.FOLDS_MAX_ROWS", 141)
        r = invoke("init", "--data", "wine.csv", "--target", "cultivar")
    assert r.exit_code == 0, r.output
    assert "folds =" not in r.stdout
    datafiles.write_digits_npz(workdir / "digits.npz")  # arrays: no folds, whatever their size
    r = invoke("init", "--data", "digits.npz")
    assert r.exit_code == 0, r.output
    assert "folds =" not in r.stdout


def test_a_study_init_made_exports_fold_models_says_so_first_and_folds_0_refits(workdir):
    datafiles.write_table(datafiles.wine_columns(), workdir / "wine.csv")
    r = invoke("init", "--data", "wine.csv", "--target", "cultivar")
    assert r.exit_code == 0, r.output
    small = {  # init's study for wine, made quick: one small layer, 2 epochs, no first trials
        "epochs = 40": "epochs = 2",
        "layers = { low = 1, high = 4 }": "layers = 1",
        "width = { low = 32, high = 512, log = true }": "width = [8, 16]",
        'embedding = ["none", "periodic", "piecewise"]': 'embedding = "none"',
        "keep_models = 3\n": "keep_models = 3\nfirst_trials = false\n",
    }
    toml = r.stdout
    for was, now in small.items():
        assert was in toml, was
        toml = toml.replace(was, now)
    (workdir / "w.toml").write_text(toml)
    r = invoke("run", "--config", "w.toml", "--trials", "2", "--seed", "1", "--ensemble", "2")
    assert r.exit_code == 0, r.output
    said = r.output.index(
        f"the export cross-validates the 2 best configurations on {TABLE_FOLDS} folds"
    )
    assert said < r.output.index("done:")  # on the first lines, not after the search
    card = json.loads((workdir / "studies/wine-mlp/best/model-card.json").read_text())
    assert card["export"]["mode"] == "folds" and card["export"]["folds"]["k"] == TABLE_FOLDS
    r = invoke("export", "--study", "wine-mlp", "--folds", "0", "--ensemble", "2", "--out", "refit")
    assert r.exit_code == 0, r.output
    card = json.loads((workdir / "refit/model-card.json").read_text())
    assert card["export"]["mode"] == "refit ensemble" and "folds" not in card["export"]


def test_out_of_fold_rmse_of_a_log_target_covers_every_row_in_the_targets_units(
    workdir, monkeypatch
):
    cfg = skewed_study(workdir, "skewed.csv")
    cfg.write_text(cfg.read_text().replace("keep_models = 2\n", "keep_models = 2\nfolds = 3\n"))
    calls, real = [], exporting.score

    def spy(metric, y, out, **kw):
        value = real(metric, y, out, **kw)
        if kw:  # the out-of-fold scores (the test part is scored without the target's scaling)
            calls.append((np.array(y), np.array(out), kw, value))
        return value

    monkeypatch.setattr(exporting, "score", spy)
    r = invoke("run", "--config", cfg, "--trials", "2")
    assert r.exit_code == 0, r.output
    card = json.loads((workdir / "studies/skewed/best/model-card.json").read_text())
    bag = card["export"]["folds"]
    assert len(calls) == len(bag["candidates"]) == 2
    for y, oof, kw, value in calls:
        assert kw["y_log"] is True and len(y) == bag["rows"] == len(oof)
        assert np.all(oof != 0.0)  # every row has the prediction of the fold that left it out
        in_units = np.sqrt(
            np.mean(
                (np.expm1(oof[:, 0] * kw["y_std"] + kw["y_mean"])
                 - np.expm1(y * kw["y_std"] + kw["y_mean"])) ** 2
            )
        )  # fmt: skip
        assert value == pytest.approx(in_units, rel=1e-6)  # float32 outputs
    assert bag["cv_value"] == min(v for *_, v in calls)
