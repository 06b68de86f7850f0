"""A regression target fitted as log(1 + y) (`target_transform = "log"` in [data], issue #22):
trials still selected on RMSE in the target's units, the exported model answering in those
units with stock Keras layers, and the refusals and hints around it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from search import datasets
from search.config import load_config, parse_config
from search.errors import ConfigError
from search.metrics import METRICS, from_keras_logs, score
from tests import datafiles
from tests.helpers import invoke, raw_config
from tests.test_bad_input import assert_one_line_exit_2
from tests.test_own_data import _fresh_python, study_file


def _skewed_columns() -> dict[str, np.ndarray]:
    """Diabetes with a right-skewed target >= 0: exp(progression / 60), 1.5 to 320."""
    cols = datafiles.diabetes_columns()
    cols["progression"] = np.exp(cols["progression"] / 60.0)
    return cols


def skewed_study(workdir: Path, data_file: str) -> Path:
    """A log-target study of _skewed_columns in `data_file` (.csv or .parquet): its TOML."""
    datafiles.write_table(_skewed_columns(), workdir / data_file)
    return study_file(
        workdir / "s.toml",
        "skewed",
        f'source = "{data_file}"\ntarget = "progression"\nvalidation_fraction = 0.2\n'
        'target_transform = "log"\n',
    )


def test_log_target_rmse_is_taken_in_the_targets_units_not_in_log_units():
    rng = np.random.default_rng(0)
    mean, std = 2.0, 0.7
    y_units = rng.lognormal(2.0, 0.7, size=50)
    z_y = (np.log1p(y_units) - mean) / std
    z_out = z_y + rng.normal(0, 0.3, size=50)
    out_units = np.expm1(z_out * std + mean)
    want = float(np.sqrt(np.mean((out_units - y_units) ** 2)))
    got = score(METRICS["rmse"], z_y, z_out.reshape(-1, 1), y_std=std, y_mean=mean, y_log=True)
    assert got == pytest.approx(want, rel=1e-9)
    # Keras' own val_rmse is in log units there: not used, a forward pass scores instead.
    assert from_keras_logs(METRICS["rmse"], {"val_rmse": 0.3}, y_std=std, y_log=True) is None
    assert from_keras_logs(METRICS["rmse"], {"val_rmse": 0.3}, y_std=std) == pytest.approx(0.21)


def test_target_transform_is_refused_for_classification_and_unknown_values():
    def with_data(**data):
        raw = raw_config()
        raw["data"] = {**raw.get("data", {}), "source": "t.csv", "target": "y", **data}
        return raw

    with pytest.raises(ConfigError, match="is for a regression target"):
        parse_config(with_data(task="classification", target_transform="log"))
    with pytest.raises(ConfigError, match="target_transform 'sqrt' unknown; use none or log"):
        parse_config(with_data(target_transform="sqrt"))


def test_a_log_target_below_zero_stops_the_run_with_one_line(workdir):
    cols = datafiles.diabetes_columns()
    cols["progression"] = cols["progression"] - 100.0
    datafiles.write_table(cols, workdir / "neg.csv")
    cfg = study_file(
        workdir / "n.toml",
        "neg",
        'source = "neg.csv"\ntarget = "progression"\ntarget_transform = "log"\n'
        "validation_fraction = 0.2\n",
    )
    r = invoke("run", "--config", cfg, "--trials", "1")
    assert_one_line_exit_2(r, "needs a target >= 0")
    assert f"has {int((cols['progression'] < 0).sum())} values below 0" in r.output


def test_init_hints_at_the_log_target_for_a_skewed_positive_target_only(workdir):
    datafiles.write_table(_skewed_columns(), workdir / "skewed.csv")
    r = invoke("init", "--data", "skewed.csv", "--target", "progression")
    assert r.exit_code == 0, r.output
    assert "the target is >= 0 and right-skewed (skewness" in r.stderr
    assert '# target_transform = "log"' in r.stdout
    datafiles.write_table(datafiles.diabetes_columns(), workdir / "d.csv")
    r = invoke("init", "--data", "d.csv", "--target", "progression")
    assert r.exit_code == 0, r.output
    assert "right-skewed" not in r.output  # skewness 0.44
    assert '# target_transform = "log"' in r.stdout  # the option, commented out


@pytest.mark.slow
def test_a_log_target_study_selects_and_exports_in_the_targets_units(workdir):
    cfg = skewed_study(workdir, "skewed.parquet")
    r = invoke("run", "--config", cfg, "--trials", "2", "--no-refit")
    assert r.exit_code == 0, r.output
    card = json.loads(Path("studies/skewed/best/model-card.json").read_text())
    assert "log(1 + target)" in card["data"]["outputs"]
    # Trials' values are RMSE in units: the exported network (the kept members averaged)
    # scored on the validation rows back in units gives what export measured with the same
    # scoring, and every member's value is of the target's size, not of its log's.
    import keras

    import search.layers  # noqa: F401
    from search.training import validation_score

    settings = load_config(cfg).data
    split = datasets.load_split(settings)
    assert split.y_log
    net = keras.saving.load_model("studies/skewed/best/model.keras").get_layer("fsearch_network")
    assert card["export"]["mode"] == "ensemble"
    assert validation_score(net, split, METRICS["rmse"]) == pytest.approx(
        card["export"]["ensemble_validation_value"], rel=1e-5
    )
    y_val = np.expm1(split.y_val * split.y_std + split.y_mean)
    spread = float(np.std(y_val))
    # A model that predicts the mean scores the std; a value in log units would be ~1.
    assert all(0.3 * spread < v < 1.5 * spread for v in card["export"]["member_validation_values"])
    # model.keras answers in the target's units with stock layers only (no fsearch).
    rows = datasets.held_out_rows(settings).tolist()
    got = _fresh_python(
        f"""
        import json, numpy as np, pyarrow.parquet as pq, keras
        t = pq.read_table("skewed.parquet").to_pydict()
        card = json.load(open("studies/skewed/best/model-card.json"))
        rows = {rows}
        x = {{f["input"]: np.array([t[f["name"]][i] for i in rows], dtype="float32")
              for f in card["data"]["features"]}}
        m = keras.saving.load_model("studies/skewed/best/model.keras")
        pred = np.asarray(m.predict(x, verbose=0)).reshape(-1)
        y = np.array([t["progression"][i] for i in rows])
        print(float(np.sqrt(np.mean((pred - y) ** 2))), float(pred.min()))
        """
    )
    rmse, low = map(float, got.split())
    assert rmse == pytest.approx(card["test_rmse"], rel=1e-4)
    assert low > 0  # exp(z) - 1 of a fitted log(1 + y) with y >= 1.5
