"""Your own data: tables and arrays, classification and regression (search/data/: task.py,
tables.py, arrays.py, readers.py). Files are made from scikit-learn's bundled sets
(tests/datafiles.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from search import datasets
from search.config import DataSettings, load_config
from search.data.preprocessing import Rescale
from search.errors import DataError
from tests import datafiles
from tests.helpers import invoke, trial_states

# A tiny search for the end-to-end tests: 3 trials of 3 epochs, no pruning.
SPACE = """
[model]
width_per_layer = false

[train]
steps_per_execution = 4

[space]
layers = 1
width = [16, 32]
activation = "relu"
optimizer = "adam"
learning_rate = { low = 3e-3, high = 3e-2, log = true }
momentum = 0.0
regularizer = "none"
reg_strength = 0.0
dropout = 0.0
batch_size = 16
epochs = 3
"""


def study_file(path: Path, name: str, data: str) -> Path:
    path.write_text(
        f'[study]\nname = "{name}"\nseed = 3\npruner = "none"\nkeep_models = 2\n\n'
        f"[data]\n{textwrap.dedent(data)}\n{SPACE}"
    )
    return path


def _fresh_python(code: str) -> str:
    """Run code in a new Python process that imports only Keras, NumPy and pyarrow (not
    fsearch, which it must not need); its last printed line."""
    code = "import sys; sys.modules['search'] = None\n" + textwrap.dedent(code)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env
    )
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout.strip().splitlines()[-1]


@pytest.fixture
def wine_csv(workdir) -> Path:
    return datafiles.write_table(datafiles.wine_columns(), workdir / "wine.csv")


@pytest.fixture
def diabetes_parquet(workdir) -> Path:
    return datafiles.write_table(datafiles.diabetes_columns(), workdir / "diabetes.parquet")


def wine_settings(**kw) -> DataSettings:
    return DataSettings(source="wine.csv", target="cultivar", validation_fraction=0.25, **kw)


# ---------------------------------------------------------------------------- task inference


@pytest.mark.parametrize(
    ("values", "kind", "task", "said"),
    [
        (np.array(["a", "b", "a"], dtype=object), "text", "classification", "text, 2 distinct"),
        (np.array([0.5, 1.25, 3.0]), "number", "regression", "numbers, 3 distinct"),
        (np.array([1.0, 2.0, 1.0]), "number", "classification", "integers, 2 distinct"),
        (np.arange(200.0), "number", "regression", "integers, 200 distinct"),
    ],
)
def test_infer_task_picks_the_task_and_says_why(values, kind, task, said):
    got, note = datasets.infer_task(values, kind, "y")
    assert got == task and said in note and f"-> {task}" in note


@pytest.mark.parametrize(
    ("values", "kind", "task", "message"),
    [
        (np.array(["a", "a"], dtype=object), "text", "auto", "one class"),
        (np.array([1.0, np.nan, 2.0]), "number", "auto", "missing in 1 rows"),
        (np.array(["a", None], dtype=object), "text", "auto", "missing in 1 rows"),
        (np.array(["a", "b"], dtype=object), "text", "regression", "regression needs numbers"),
    ],
)
def test_infer_task_refuses_unusable_targets(values, kind, task, message):
    with pytest.raises(DataError, match=message):
        datasets.infer_task(values, kind, "y", task)


# ---------------------------------------------------------------------------- tables


def test_table_split_encodes_with_training_statistics_and_stratifies(wine_csv):
    s = datasets.load_split(wine_settings())
    assert s.kind == "table" and s.task == "classification"
    assert s.classes == ("barbera", "barolo", "grignolino")  # sorted labels -> indices
    names = [f.name for f in s.preprocessing.features]
    assert "cultivar" not in names and names[-1] == "region"
    region = s.preprocessing.features[-1]
    assert region.kind == "category" and region.vocabulary == ("north", "south")
    # 13 numbers + one-hot of 2 values and the slot for unseen ones
    assert s.input_dim == 13 + 3 and s.x_train.dtype == np.float32
    np.testing.assert_allclose(s.x_train[:, :13].mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(s.x_train[:, :13].std(axis=0), 1, atol=1e-4)
    assert abs(s.x_val[:, :13].mean()) > 1e-4  # validation rows were not used for the stats
    n = len(s.y_train) + len(s.y_val) + len(datasets.held_out_rows(wine_settings()))
    assert n == 178
    shares = np.bincount(s.y_val, minlength=3) / len(s.y_val)
    np.testing.assert_allclose(shares, np.bincount(s.y_train) / len(s.y_train), atol=0.06)
    assert datasets.load_split(wine_settings()) is s  # read once per process


def test_split_hash_changes_with_the_seed_and_the_file(wine_csv):
    a = datasets.load_split(wine_settings()).split_sha
    assert datasets.load_split(wine_settings(seed=1)).split_sha != a
    cols = datafiles.wine_columns()
    cols["alcohol"][0] += 1.0
    datafiles.write_table(cols, wine_csv)
    assert datasets.load_split(wine_settings()).split_sha != a


def test_regression_target_is_standardized_and_kept_in_units_for_test(diabetes_parquet):
    st = DataSettings(source="diabetes.parquet", target="progression", validation_fraction=0.2)
    s = datasets.load_split(st)
    assert s.task == "regression" and s.n_outputs == 1
    assert abs(float(s.y_train.mean())) < 1e-5 and s.y_std > 10
    x_test, y_test = datasets.load_test(st)
    assert set(x_test) == {f.input_name for f in s.preprocessing.features}
    assert y_test.dtype == np.float64 and y_test.min() >= 25  # the file's own units


def test_missing_feature_values_are_imputed_by_default_or_stop_with_missing_error(workdir):
    cols = datafiles.wine_columns()
    cols["ash"] = cols["ash"].astype(object)
    cols["ash"][[3, 9]] = None
    datafiles.write_table(cols, workdir / "wine.csv")
    with pytest.raises(DataError, match="column 'ash' has 2 missing values"):
        datasets.load_split(wine_settings(missing="error"))
    s = datasets.load_split(wine_settings())
    assert np.isfinite(s.x_train).all()


def test_numbers_named_categorical_are_one_hot_encoded_as_text(wine_csv):
    s = datasets.load_split(wine_settings(categorical=("magnesium",)))
    magnesium = next(f for f in s.preprocessing.features if f.name == "magnesium")
    assert magnesium.kind == "category" and "127" in magnesium.vocabulary


@pytest.mark.parametrize(
    ("change", "settings", "message"),
    [
        ({}, {"target": "cultivr"}, "no column 'cultivr'; did you mean 'cultivar'"),
        (
            {"note": lambda n: np.array([f"n{i}" for i in range(n)], dtype=object)},
            {},
            "column 'note' has .* distinct values .* drop = ",
        ),
        ({}, {"validation_fraction": 0.0, "validation_size": 500}, "too few for a validation"),
        ({}, {"drop": ("colour",)}, "drop names column 'colour'"),
        ({"cultivar": lambda n: np.array(["x"] * n, dtype=object)}, {}, "one class"),
    ],
)
def test_bad_tables_get_one_clear_error(workdir, change, settings, message):
    cols = datafiles.wine_columns()
    for name, make in change.items():
        cols[name] = make(len(cols["alcohol"]))
    datafiles.write_table(cols, workdir / "wine.csv")
    kw = {"validation_fraction": 0.25, **settings}
    with pytest.raises(DataError, match=message):
        datasets.load_split(
            DataSettings(source="wine.csv", target=kw.pop("target", "cultivar"), **kw)
        )


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.csv", b"", "is empty"),
        ("fake.parquet", b"a,b\n1,2\n", "not a Parquet file"),
        ("binary.csv", b"\x00\x01\x02PK", "not a CSV file"),
        ("fake.npz", b"not a zip", "not a NumPy .npz archive"),
        ("header.csv", b"a,b\n", "no rows"),
        ("data.xlsx", b"x", "unknown data format"),
    ],
)
def test_files_that_are_not_what_they_say_are_refused(workdir, name, content, message):
    (workdir / name).write_bytes(content)
    with pytest.raises(DataError, match=message):
        datasets.load_split(DataSettings(source=name, target="b", validation_fraction=0.5))


# ---------------------------------------------------------------------------- arrays


def test_npz_uses_its_own_test_part_and_scales_uint8_like_images(workdir):
    datafiles.write_digits_npz(workdir / "digits.npz")
    st = DataSettings(source="digits.npz", validation_fraction=0.2)
    s = datasets.load_split(st)
    assert s.kind == "arrays" and s.input_dim == 64 and isinstance(s.preprocessing, Rescale)
    assert len(s.y_train) + len(s.y_val) == 1500 and 0 <= s.x_train.min() <= s.x_train.max() <= 1
    x_test, y_test = datasets.load_test(st)
    assert x_test.shape == (297, 64) and x_test.max() > 1  # raw 0-255: the model scales
    assert datasets.held_out_rows(st) is None
    assert s.preprocessing.card()["inputs"].startswith("64 values per row")  # divided by 255


def test_npz_whose_x_and_y_lengths_differ_is_refused(workdir):
    np.savez(workdir / "bad.npz", x_train=np.zeros((5, 3)), y_train=np.zeros(4))
    with pytest.raises(DataError, match="x_train has 5 rows but y_train has 4"):
        datasets.load_split(DataSettings(source="bad.npz", validation_fraction=0.2))


def test_npz_with_pickled_objects_is_not_unpickled(workdir):
    np.savez(workdir / "obj.npz", x_train=np.array([{"a": 1}] * 4, dtype=object), y_train=[0] * 4)
    with pytest.raises(DataError, match="not a NumPy .npz archive of plain arrays"):
        datasets.load_split(DataSettings(source="obj.npz", validation_fraction=0.25))


def test_idx_folder_of_fashion_mnist_is_recognized(real_data_dir):
    st = DataSettings(
        source=str(real_data_dir), validation_size=500, train_size=1000, test_size=200
    )
    s = datasets.load_split(st)
    assert s.input_dim == 784 and any("verified as Fashion-MNIST" in n for n in s.notes)
    assert s.classes == tuple(str(i) for i in range(10))
    assert datasets.load_test(st)[0].shape == (200, 784)


def test_idx_folder_with_an_altered_known_file_is_refused(workdir, real_data_dir):
    import gzip
    import shutil

    d = workdir / "fm"
    shutil.copytree(real_data_dir, d)
    raw = gzip.decompress((d / "t10k-labels-idx1-ubyte.gz").read_bytes())
    (d / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(raw[:-1] + bytes([raw[-1] ^ 1])))
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz differ from Fashion-MNIST"):
        datasets.load_split(DataSettings(source=str(d), validation_size=500))


# ---------------------------------------------------------------------------- the CLI


def test_init_prints_a_config_that_loads_and_says_what_it_inferred(wine_csv):
    r = invoke("init", "--data", "wine.csv", "--target", "cultivar")
    assert r.exit_code == 0, r.output
    assert "target 'cultivar': text, 3 distinct values -> classification" in r.output
    text = r.stdout[r.stdout.index("# A study of") :]
    cfg = load_config("churn.toml", text=text)
    assert cfg.data.source == "wine.csv" and cfg.data.task == "classification"
    assert cfg.study.name == "wine-mlp"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--data", "wine.csv", "--target", "cultivr"], "did you mean 'cultivar'"),
        (["--data", "wine.csv"], "name its label column with --target"),
        (["--data", "nope.csv", "--target", "x"], "data file 'nope.csv' not found"),
        (["--target", "cultivar"], "--target names a column of your data"),
        (["--data", "wine.csv", "--target", "cultivar", "--data-dir", "."], "leave it out"),
        (
            ["--data", "wine.csv", "--target", "cultivar", "--config", "other.toml"],
            "name two data sets",
        ),
    ],
)
def test_bad_data_options_exit_with_one_line_and_write_nothing(wine_csv, args, message):
    study_file(wine_csv.parent / "other.toml", "other", 'source = "diabetes.csv"\n')
    r = invoke("run", "--trials", "1", *args)
    assert r.exit_code == 2, r.output  # a user error (search.errors.FsearchError)
    lines = [ln for ln in r.output.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and message in lines[0], r.output
    assert not Path("studies/fsearch.db").exists()


@pytest.mark.slow
def test_table_classification_end_to_end_model_takes_raw_columns(wine_csv):
    cfg = study_file(
        wine_csv.parent / "wine.toml",
        "wine-tiny",
        'source = "wine.csv"\ntarget = "cultivar"\nvalidation_fraction = 0.25\n',
    )
    r = invoke("run", "--config", cfg, "--trials", "3")
    assert r.exit_code == 0, r.output
    assert "target 'cultivar': text, 3 distinct values -> classification" in r.output
    card = json.loads(Path("studies/wine-tiny/best/model-card.json").read_text())
    assert card["task"] == "classification" and card["metric"] == "val_accuracy"
    assert card["classes"] == ["barbera", "barolo", "grignolino"]
    assert card["data"]["files_sha256"]["wine.csv"] and len(card["data"]["features"]) == 14
    rows = datasets.held_out_rows(load_config(cfg).data).tolist()
    # A fresh process without fsearch: raw rows of the file in, the card's test accuracy out.
    got = _fresh_python(
        f"""
        import json, numpy as np, pyarrow.csv as pc, keras
        t = pc.read_csv("wine.csv").to_pydict()
        card = json.load(open("studies/wine-tiny/best/model-card.json"))
        rows = {rows}
        x = {{f["input"]: np.array([t[f["name"]][i] for i in rows],
                                 dtype=object if f["kind"] == "category" else "float32")
              for f in card["data"]["features"]}}
        m = keras.saving.load_model("studies/wine-tiny/best/model.keras")
        pred = np.asarray(m.predict(x, verbose=0)).argmax(axis=1)
        truth = [card["classes"].index(t["cultivar"][i]) for i in rows]
        print(float(np.mean(pred == np.array(truth))))
        """
    )
    assert float(got) == pytest.approx(card["test_accuracy"], abs=1e-9)


@pytest.mark.slow
def test_regression_end_to_end_minimizes_rmse_and_predicts_in_target_units(diabetes_parquet):
    cfg = study_file(
        diabetes_parquet.parent / "d.toml",
        "diabetes-tiny",
        'source = "diabetes.parquet"\ntarget = "progression"\nvalidation_fraction = 0.2\n',
    )
    r = invoke("run", "--config", cfg, "--trials", "3")
    assert r.exit_code == 0, r.output
    assert "-> regression" in r.output and "val_rmse" in r.output
    card = json.loads(Path("studies/diabetes-tiny/best/model-card.json").read_text())
    assert card["task"] == "regression" and card["metric"] == "val_rmse"
    assert {"test_rmse", "test_mae", "test_r2"} <= set(card)
    from search.api import load_study

    study = load_study("diabetes-tiny")
    assert study.direction.name == "MINIMIZE" and study.metric_names == ["val_rmse"]
    values = sorted(t.value for t in study.trials)
    assert card["validation_value"] == values[0]  # the lowest RMSE was exported
    rows = datasets.held_out_rows(load_config(cfg).data).tolist()
    got = _fresh_python(
        f"""
        import json, numpy as np, pyarrow.parquet as pq, keras
        t = pq.read_table("diabetes.parquet").to_pydict()
        card = json.load(open("studies/diabetes-tiny/best/model-card.json"))
        rows = {rows}
        x = {{f["input"]: np.array([t[f["name"]][i] for i in rows], dtype="float32")
              for f in card["data"]["features"]}}
        m = keras.saving.load_model("studies/diabetes-tiny/best/model.keras")
        pred = np.asarray(m.predict(x, verbose=0)).reshape(-1)
        y = np.array([t["progression"][i] for i in rows])
        print(float(np.sqrt(np.mean((pred - y) ** 2))))
        """
    )
    assert float(got) == pytest.approx(card["test_rmse"], rel=1e-4)


@pytest.mark.slow
def test_npz_end_to_end_and_a_changed_file_stops_the_resumed_study(workdir):
    path = datafiles.write_digits_npz(workdir / "digits.npz")
    cfg = study_file(
        workdir / "g.toml", "digits-tiny", 'source = "digits.npz"\nvalidation_fraction = 0.2\n'
    )
    r = invoke("run", "--config", cfg, "--trials", "2")
    assert r.exit_code == 0, r.output
    card = json.loads(Path("studies/digits-tiny/best/model-card.json").read_text())
    # The card's words for the inputs are the split's (search/data/preprocessing.py).
    split = datasets.load_split(load_config(cfg).data)
    assert card["data"]["inputs"] == split.preprocessing.card()["inputs"]
    got = _fresh_python(
        """
        import numpy as np, keras
        z = np.load("digits.npz")
        m = keras.saving.load_model("studies/digits-tiny/best/model.keras")
        x = z["x_test"].reshape(len(z["x_test"]), -1).astype("float32")
        print(float(np.mean(np.asarray(m.predict(x, verbose=0)).argmax(1) == z["y_test"])))
        """
    )
    assert float(got) == pytest.approx(card["test_accuracy"], abs=1e-9)
    before = trial_states()
    z = dict(np.load(path))
    z["x_train"] = z["x_train"][::-1].copy()
    np.savez(path, **z)
    r = invoke("run", "--config", cfg, "--trials", "3")
    assert r.exit_code == 2 and "began on other data" in r.output, r.output
    assert trial_states() == before


@pytest.mark.slow
def test_run_with_only_data_makes_its_study_and_warm_start_queues_the_best(wine_csv):
    cfg = study_file(
        wine_csv.parent / "wine.toml",
        "wine-a",
        'source = "wine.csv"\ntarget = "cultivar"\nvalidation_fraction = 0.25\n',
    )
    assert invoke("run", "--config", cfg, "--trials", "2", "--no-export").exit_code == 0
    cfg.write_text(cfg.read_text().replace("wine-a", "wine-b").replace("[16, 32]", "[32, 64]"))
    r = invoke("run", "--config", cfg, "--trials", "1", "--warm-start", "wine-a", "--no-export")
    assert r.exit_code == 0, r.output
    assert "warm start: 2 configuration(s) of study 'wine-a' queued" in r.output
    from search.api import load_study

    a, b = load_study("wine-a"), load_study("wine-b")
    first = b.trials[0]
    assert first.user_attrs.get("warm_start") == "wine-a"
    # (a table's study also holds its first trials, one of them still waiting after 2 trials)
    best_a = max((t for t in a.trials if t.state.name == "COMPLETE"), key=lambda t: t.value)
    assert first.params["learning_rate"] == best_a.params["learning_rate"]
    assert first.params["width"] in (32, 64)  # this space's widths; theirs was not kept


@pytest.mark.parametrize("config", [True, False], ids=["with-config", "data-only"])
def test_a_run_in_one_process_parses_its_table_and_its_header_once(wine_csv, monkeypatch, config):
    from search.data import files, loading, readers, task

    files._TABLES.clear()
    task._target_of.cache_clear()
    loading._load.cache_clear()
    reads, real = [], readers.read_table
    monkeypatch.setattr(
        readers,
        "read_table",
        lambda path, columns=None: reads.append(columns) or real(path, columns),
    )
    headers, real_header = [], task._header
    monkeypatch.setattr(task, "_header", lambda path: headers.append(path) or real_header(path))
    if config:
        cfg = study_file(
            wine_csv.parent / "w.toml",
            "wine-once",
            'source = "wine.csv"\ntarget = "cultivar"\nvalidation_fraction = 0.25\n',
        )
        args = ["--config", cfg]
    else:  # --data without a config: the study is sized from the data, then run on it
        args = ["--data", "wine.csv", "--target", "cultivar"]
    r = invoke("run", *args, "--trials", "1", "--no-export")
    assert r.exit_code == 0, r.output
    assert reads == [None]  # one whole read, no separate read of the target column
    assert len(headers) == 1  # the column is checked once, before that read


# ---------------------------------------------------------------- the test part, read at export


def test_npz_classes_come_from_y_train_and_a_class_only_in_test_counts_as_unseen(workdir):
    from sklearn.datasets import load_digits

    g = load_digits()
    x, y = np.round(g.images * 255.0 / 16.0).astype(np.uint8), g.target.astype(np.int64)
    train, test = np.flatnonzero(y != 9)[:1200], np.arange(1500, 1797)
    np.savez(workdir / "d.npz", x_train=x[train], y_train=y[train], x_test=x[test], y_test=y[test])
    st = DataSettings(source="d.npz", validation_fraction=0.2)
    s = datasets.load_split(st)
    assert s.classes == tuple(str(i) for i in range(9)) and s.n_outputs == 9
    _, y_test = datasets.load_test(st)
    nines = y[test] == 9
    assert nines.any() and (y_test[nines] == datasets.UNSEEN_CLASS).all()
    assert (y_test[~nines] == y[test][~nines]).all()
    (note,) = datasets.test_notes(st)
    assert f"{nines.sum()} test rows have a class the training part lacks ('9')" in note


def test_table_classes_come_from_the_training_part_only(workdir):
    # 20 a, 20 b and one c: holding out 21 of 41 rows by class shares puts the c in test.
    labels = ["a"] * 20 + ["b"] * 20 + ["c"]
    rows = [f"{i * 0.5},{label}" for i, label in enumerate(labels)]
    (workdir / "t.csv").write_text("x,y\n" + "\n".join(rows) + "\n")
    st = DataSettings(source="t.csv", target="y", test_size=21, validation_fraction=0.2)
    s = datasets.load_split(st)
    assert 40 in datasets.held_out_rows(st)
    assert s.classes == ("a", "b")
    _, y_test = datasets.load_test(st)
    at = datasets.held_out_rows(st).tolist().index(40)
    assert y_test[at] == datasets.UNSEEN_CLASS and (np.delete(y_test, at) >= 0).all()
    assert "1 test rows have a class the training part lacks ('c')" in datasets.test_notes(st)[0]


def test_a_target_missing_in_test_rows_is_left_out_and_in_a_training_row_stops(workdir):
    cols = datafiles.diabetes_columns()
    path = datafiles.write_table(cols, workdir / "d.csv")
    st = DataSettings(source="d.csv", target="progression", validation_fraction=0.2)
    test = datasets.held_out_rows(st)
    cols["progression"][test[:2]] = [np.nan, np.inf]
    datafiles.write_table(cols, path)
    datasets.load_split(st)  # loads: the test part's targets are not checked here
    assert datasets.held_out_rows(st).tolist() == test[2:].tolist()
    _, y_test = datasets.load_test(st)
    assert len(y_test) == len(test) - 2 and np.isfinite(y_test).all()
    assert datasets.test_notes(st) == (
        "2 test rows have no 'progression' value (missing or infinite); they are not scored",
    )
    train_row = int(np.setdiff1d(np.arange(len(cols["progression"])), test)[0])
    cols["progression"][train_row] = np.nan
    datafiles.write_table(cols, path)
    with pytest.raises(DataError, match=rf"missing in 1 rows \(data rows {train_row + 1}\)"):
        datasets.load_split(st)
