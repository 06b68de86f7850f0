"""A table's search space (issue #22, items 1, 2 and 7): RealMLP's robust scaling and smooth
clipping, periodic embeddings of numbers, embeddings of wide categories, AdamW and label
smoothing, inside the model; the space `fsearch init` writes for a table; the time budget of
a --data run."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest

from search import datasets
from search.config import DataSettings, Fixed, parse_config
from search.space import Hyperparams, stored_hyperparams, suggest
from tests import datafiles
from tests.helpers import invoke, raw_config


def _wine_split(workdir: Path):
    datafiles.write_table(datafiles.wine_columns(), workdir / "wine.csv")
    return datasets.load_split(
        DataSettings(source="wine.csv", target="cultivar", validation_fraction=0.25)
    )


def _wine_with_grower() -> dict[str, np.ndarray]:
    """Wine plus `grower`, a 24-value category (each value about 7 times in 178 rows)."""
    cols = datafiles.wine_columns()
    order = np.argsort(np.argsort(cols["proline"], kind="stable"))
    cols["grower"] = np.array([f"g{i % 24:02d}" for i in order], dtype=object)
    return cols


def _grower_split(workdir: Path):
    datafiles.write_table(_wine_with_grower(), workdir / "grower.csv")
    return datasets.load_split(
        DataSettings(source="grower.csv", target="cultivar", validation_fraction=0.25)
    )


def _tables_hp(split, **kw) -> Hyperparams:
    return Hyperparams(widths=(8,), optimizer="adam", learning_rate=0.01, **split.dims, **kw)


def _on_validation_rows(split, layer_name: str, **kw):
    """(hp, model, its layer `layer_name`, that layer's output on the validation rows) for a
    model of _tables_hp(split, **kw)."""
    import keras

    from search.model import build_model

    hp = _tables_hp(split, **kw)
    model = build_model(hp, table=split.preprocessing.table)
    layer = model.get_layer(layer_name)
    return hp, model, layer, np.asarray(layer(keras.ops.convert_to_tensor(split.x_val)))


def test_robust_layer_gives_realmlps_scaled_and_clipped_numbers_and_passes_categories(workdir):
    split = _wine_split(workdir)
    numbers = split.preprocessing.table
    _, _, _, got = _on_validation_rows(split, "robust_numbers", numeric="robust")
    x = split.x_val
    # pytabkit's RobustScaleSmoothClipTransform from the raw column values of the same rows.
    cols = datafiles.wine_columns()
    for feature, at in zip(
        [f for f in split.preprocessing.features if f.kind == "number"],
        numbers.columns,
        strict=True,
    ):
        raw = x[:, at] * feature.std + feature.mean
        r = (raw - feature.median) * feature.robust_factor
        want = r / np.sqrt(1 + (r / 3) ** 2)
        np.testing.assert_allclose(got[:, at], want, rtol=1e-4, atol=1e-5)
        assert feature.name in cols
    others = [i for i in range(x.shape[1]) if i not in numbers.columns]
    assert others, "wine has a text column: its one-hot inputs must pass unchanged"
    np.testing.assert_array_equal(got[:, others], x[:, others])
    assert np.abs(got[:, list(numbers.columns)]).max() < 3.0


def test_quantile_layer_matches_scikit_learns_quantile_transformer_to_normal(workdir):
    from sklearn.preprocessing import QuantileTransformer

    split = _wine_split(workdir)
    table = split.preprocessing.table
    _, _, _, got = _on_validation_rows(split, "quantile_numbers", numeric="quantile")
    numbers = [f for f in split.preprocessing.features if f.kind == "number"]
    for f, at in zip(numbers, table.columns, strict=True):
        train_z = split.x_train[:, at].astype(np.float64)
        qt = QuantileTransformer(
            n_quantiles=min(max(len(train_z) // 30, 10), 1000), output_distribution="normal"
        ).fit(train_z.reshape(-1, 1))
        want = qt.transform(split.x_val[:, at].astype(np.float64).reshape(-1, 1)).reshape(-1)
        np.testing.assert_allclose(got[:, at], want, atol=1e-5, err_msg=f.name)
    others = [i for i in range(split.input_dim) if i not in table.columns]
    np.testing.assert_array_equal(got[:, others], split.x_val[:, others])
    assert np.abs(got[:, list(table.columns)]).max() <= 5.2  # the normal quantile of 1e-7: 5.1993


def test_quantile_layer_matches_scikit_learn_exactly_on_a_count_column_with_ties():
    import keras
    from sklearn.preprocessing import QuantileTransformer

    from search.data.tables import _quantiles
    from search.layers import QuantileNormal

    rng = np.random.default_rng(0)
    train = rng.poisson(2.0, size=600).astype(np.float64)  # 0, 1, 2, ...: many ties
    knots, levels = _quantiles(train)
    assert len(knots) < min(max(len(train) // 30, 10), 1000)  # repeated values share a knot
    layer = QuantileNormal([0], [knots], [levels], 1)
    probe = np.concatenate([np.arange(-1.0, 12.0, 0.25), train[:50]])
    got = np.asarray(layer(keras.ops.convert_to_tensor(probe.reshape(-1, 1).astype("float32"))))
    qt = QuantileTransformer(n_quantiles=20, output_distribution="normal").fit(train[:, None])
    want = qt.transform(probe[:, None])
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_robust_factor_is_one_over_the_iqr_with_pytabkits_fallbacks():
    from search.data.tables import _robust

    assert _robust(np.array([1.0, 2.0, 3.0, 4.0, 5.0])) == (3.0, 0.5)
    # IQR 0: half the range
    assert _robust(np.array([0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 8.0])) == (1.0, 0.25)
    assert _robust(np.array([2.0, 2.0, 2.0])) == (2.0, 0.0)
    assert _robust(np.array([])) == (0.0, 0.0)


def test_periodic_embedding_adds_dim_values_per_number_and_count_params_matches_keras(workdir):
    from search.model import PERIODIC_DIM, build_model, count_params

    split = _wine_split(workdir)
    hp = _tables_hp(split, embedding="periodic", embedding_scale=0.5)
    model = build_model(hp, table=split.preprocessing.table)
    out = model.get_layer("periodic_numbers").output
    assert out.shape[-1] == split.input_dim + hp.numbers * PERIODIC_DIM
    assert hp.numbers == 13
    assert count_params(hp) == model.count_params()
    plain = _tables_hp(split)
    assert count_params(plain) == build_model(plain).count_params()


def test_category_embedding_replaces_each_wide_one_hot_block_by_its_row_of_the_table(workdir):

    from search.model import CATEGORY_DIM, build_model, count_params

    split = _grower_split(workdir)
    table = split.preprocessing.table
    grower = next(f for f in split.preprocessing.features if f.name == "grower")
    assert len(grower.vocabulary) == 24
    (start, width), = table.categories  # fmt: skip
    assert width == 25  # 24 values and the slot for an unseen one; region (2 values) stays
    hp, model, layer, got = _on_validation_rows(split, "category_embeddings", categories="embed")
    assert hp.wide_categories == (25,)
    x = split.x_val
    keep = [i for i in range(x.shape[1]) if not start <= i < start + width]
    assert got.shape == (len(x), len(keep) + CATEGORY_DIM)
    np.testing.assert_array_equal(got[:, : len(keep)], x[:, keep])
    rows = np.asarray(layer.tables[0])[np.argmax(x[:, start : start + width], axis=1)]
    np.testing.assert_allclose(got[:, len(keep) :], rows, rtol=1e-6)
    assert count_params(hp) == model.count_params()
    with pytest.raises(ValueError, match="20 or more values"):
        build_model(_tables_hp(_wine_split(workdir), categories="embed"))


def test_piecewise_embedding_is_relu_of_a_linear_map_of_the_published_encoding(workdir):

    from search.data.tables import PIECEWISE_BINS
    from search.model import PERIODIC_DIM, count_params

    split = _wine_split(workdir)
    table = split.preprocessing.table
    hp, model, layer, got = _on_validation_rows(split, "piecewise_numbers", embedding="piecewise")
    assert count_params(hp) == model.count_params()
    x = split.x_val
    assert got.shape == (len(x), split.input_dim + hp.numbers * PERIODIC_DIM)
    np.testing.assert_array_equal(got[:, : split.input_dim], x)
    w, b = (np.asarray(v) for v in (layer.w, layer.b))
    for j, (col, edges) in enumerate(zip(table.columns, table.bins, strict=True)):
        assert len(edges) == PIECEWISE_BINS + 1
        v = x[:, col].astype(np.float64)
        enc = np.zeros((len(v), PIECEWISE_BINS))
        for t in range(PIECEWISE_BINS):  # Gorishniy et al. 2022, eq. for PLE
            lo, hi = edges[t], edges[t + 1]
            if hi == lo:
                continue
            r = (v - lo) / (hi - lo)
            if t > 0:
                r = np.maximum(r, 0.0)
            if t < PIECEWISE_BINS - 1:
                r = np.minimum(r, 1.0)
            enc[:, t] = r
        want = np.maximum(enc @ w[j] + b[j], 0.0)
        at = split.input_dim + j * PERIODIC_DIM
        np.testing.assert_allclose(got[:, at : at + PERIODIC_DIM], want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("numeric", ["robust", "quantile"])
def test_piecewise_embeddings_read_the_standardized_numbers_before_robust_or_quantile(
    workdir, numeric
):
    import keras

    from search.model import PERIODIC_DIM, build_model

    split = _wine_split(workdir)
    table = split.preprocessing.table
    model = build_model(_tables_hp(split, embedding="piecewise", numeric=numeric), table=table)
    alone = build_model(_tables_hp(split, embedding="piecewise"), table=table)
    alone.get_layer("piecewise_numbers").set_weights(
        model.get_layer("piecewise_numbers").get_weights()
    )
    x = keras.ops.convert_to_tensor(split.x_val)
    both = keras.Model(model.inputs, model.get_layer(f"{numeric}_numbers").output)(x)
    ple = keras.Model(alone.inputs, alone.get_layer("piecewise_numbers").output)(x)
    n = split.input_dim
    # The embeddings come from z as in a model without `numeric`; only z's columns change.
    np.testing.assert_allclose(np.asarray(both)[:, n:], np.asarray(ple)[:, n:], rtol=1e-6)
    assert np.asarray(both).shape[1] == n + len(table.columns) * PERIODIC_DIM
    assert not np.allclose(np.asarray(both)[:, list(table.columns)], split.x_val[:, table.columns])


def test_smoothed_crossentropy_equals_keras_categorical_crossentropy_with_label_smoothing():
    import keras

    from search.layers import SparseSmoothedCrossentropy

    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(4), size=16).astype("float32")
    y = rng.integers(0, 4, size=16)
    ours = SparseSmoothedCrossentropy(0.1)(y, p)
    theirs = keras.losses.CategoricalCrossentropy(label_smoothing=0.1)(np.eye(4)[y], p)
    assert float(ours) == pytest.approx(float(theirs), rel=1e-5)
    assert float(SparseSmoothedCrossentropy(0.0)(y, p)) == pytest.approx(
        float(keras.losses.SparseCategoricalCrossentropy()(y, p)), rel=1e-5
    )


class _Recorder:
    """A trial that answers every suggest with the first choice / low end, and records names."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def suggest_categorical(self, name, choices):
        self.names.append(name)
        return choices[-1]

    def suggest_int(self, name, low, high, **_):
        self.names.append(name)
        return low

    def suggest_float(self, name, low, high, **_):
        self.names.append(name)
        return low


def test_the_default_space_asks_the_sampler_for_no_table_parameter():
    from search.config import default_config_path, load_config

    trial = _Recorder()
    hp = suggest(trial, load_config(default_config_path()))
    new = {"weight_decay", "label_smoothing", "numeric", "embedding", "embedding_scale"}
    assert trial.names and not (new | {"categories"}) & set(trial.names)
    assert (hp.numeric, hp.embedding, hp.label_smoothing) == ("standardize", "none", 0.0)


def test_table_parameters_are_asked_only_where_they_matter():
    space = {
        "optimizer": ["adam", "adamw"],
        "weight_decay": {"low": 1e-5, "high": 0.1, "log": True},
        "label_smoothing": {"low": 0.0, "high": 0.2},
        "numeric": ["standardize", "robust"],
        "embedding": ["none", "periodic"],
        "embedding_scale": {"low": 0.01, "high": 10.0, "log": True},
    }
    cfg = parse_config(raw_config(**space))
    trial = _Recorder()  # picks the last choice: adamw, robust, periodic
    hp = suggest(trial, cfg, inputs=20, outputs=3, numbers=5)
    assert {"weight_decay", "label_smoothing", "embedding_scale"} <= set(trial.names)
    assert (hp.optimizer, hp.numeric, hp.embedding, hp.numbers) == (
        "adamw",
        "robust",
        "periodic",
        5,
    )
    regression = _Recorder()
    suggest(regression, cfg, inputs=20, outputs=1, numbers=5)
    assert "label_smoothing" not in regression.names


def test_a_trial_recorded_before_the_table_keys_still_matches_its_parameters():
    import optuna

    from search.space import distributions

    cfg = parse_config(raw_config())
    hp = suggest(_Recorder(), cfg, inputs=30, outputs=2, numbers=4)
    old = hp.to_dict()
    for key in ("weight_decay", "label_smoothing", "numeric", "embedding", "embedding_scale"):
        old.pop(key)
    for key in ("numbers", "categories", "wide_categories"):
        old.pop(key)
    params = {}
    rec = _Recorder()
    suggest(rec, cfg, inputs=30, outputs=2, numbers=4)
    dists = distributions(cfg)
    for name in rec.names:
        d = dists[name]
        params[name] = d.choices[-1] if hasattr(d, "choices") else d.low
    trial = optuna.trial.create_trial(
        params=params, distributions={n: dists[n] for n in params}, value=0.5,
        user_attrs={"hyperparams": old},
    )  # fmt: skip
    assert stored_hyperparams(trial, cfg, inputs=30, outputs=2, numbers=4) == hp


def test_robust_numbers_on_fashion_mnist_stop_the_run_with_one_line(tiny_config):
    text = tiny_config.read_text().replace("[space]\n", '[space]\nnumeric = "robust"\n')
    tiny_config.write_text(text)
    r = invoke("run", "--config", tiny_config, "--trials", "1")
    assert r.exit_code == 2, r.output
    assert "numeric act on a table's number columns" in r.output
    assert "Traceback" not in r.output


def test_categories_on_a_table_without_wide_categories_stop_the_run_with_one_line(workdir):
    datafiles.write_table(datafiles.wine_columns(), workdir / "wine.csv")
    r = invoke("init", "--data", "wine.csv", "--target", "cultivar")
    assert r.exit_code == 0, r.output
    text = r.stdout[r.stdout.index("# A study of") :]
    assert "categories = " not in text
    (workdir / "w.toml").write_text(text.replace("[space]\n", '[space]\ncategories = "embed"\n'))
    r = invoke("run", "--config", "w.toml", "--trials", "1")
    assert r.exit_code == 2, r.output
    assert "categories acts on a table's category columns with 20 or more values" in r.output
    assert "Traceback" not in r.output


def test_init_offers_category_embeddings_for_a_table_with_a_20_value_category(workdir):
    datafiles.write_table(_wine_with_grower(), workdir / "grower.csv")
    r = invoke("init", "--data", "grower.csv", "--target", "cultivar")
    assert r.exit_code == 0, r.output
    assert 'categories = ["onehot", "embed"]' in r.output


def test_init_writes_the_table_space_for_a_table_and_the_default_one_for_arrays(workdir):
    datafiles.write_table(datafiles.wine_columns(), workdir / "wine.csv")
    r = invoke("init", "--data", "wine.csv", "--target", "cultivar")
    assert r.exit_code == 0, r.output
    for line in (
        'optimizer = "adamw"',
        'numeric = ["standardize", "robust", "quantile"]',
        'embedding = ["none", "periodic", "piecewise"]',
        "label_smoothing = { low = 0.0, high = 0.2 }",
    ):
        assert line in r.output
    datafiles.write_table(datafiles.diabetes_columns(), workdir / "d.csv")
    r = invoke("init", "--data", "d.csv", "--target", "progression")
    assert r.exit_code == 0 and "label_smoothing" not in r.output
    datafiles.write_digits_npz(workdir / "digits.npz")
    r = invoke("init", "--data", "digits.npz")
    assert r.exit_code == 0 and "numeric" not in r.output and '"sgd"' in r.output


def test_data_time_budget_grows_with_rows_between_five_minutes_and_an_hour():
    from search.data.init_toml import data_time_budget

    assert data_time_budget(100) == 300.0
    assert data_time_budget(20_000) == 1000.0
    assert data_time_budget(10_000_000) == 3600.0


@pytest.mark.slow
@pytest.mark.parametrize(
    ("numeric", "embedding", "layers"),
    [
        ("robust", "periodic", ["CategoryEmbedding", "PeriodicEmbedding", "RobustScaleClip"]),
        (
            "quantile",
            "piecewise",
            ["CategoryEmbedding", "PiecewiseLinearEmbedding", "QuantileNormal"],
        ),
    ],
)
def test_a_table_study_with_every_table_layer_exports_and_predicts_the_cards_accuracy(
    workdir, numeric, embedding, layers
):
    """The parts a table's search can choose, all on (robust scaling or the quantile
    transform, periodic or piecewise-linear embeddings, category embeddings, AdamW, label
    smoothing): export
    (kept members rebuilt into an ensemble, no refit) and `fsearch predict` on the held-out
    rows give the card's accuracy, and the model says which of fsearch's layers it needs."""
    datafiles.write_table(_wine_with_grower(), workdir / "wine.csv")
    (workdir / "w.toml").write_text(
        textwrap.dedent(
            """
            [study]
            name = "wine-tables"
            seed = 5
            pruner = "none"
            keep_models = 2

            [data]
            source = "wine.csv"
            target = "cultivar"
            validation_fraction = 0.25

            [space]
            layers = 1
            width = [16, 32]
            activation = "mish"
            optimizer = "adamw"
            weight_decay = { low = 1e-4, high = 1e-2, log = true }
            learning_rate = 0.01
            momentum = 0.0
            regularizer = "none"
            reg_strength = 0.0
            dropout = 0.1
            label_smoothing = 0.1
            numeric = "{numeric}"
            embedding = "{embedding}"
            embedding_scale = { low = 0.05, high = 1.0, log = true }
            categories = "embed"
            batch_size = 32
            epochs = 4
            """
        )
        .replace("{numeric}", numeric)
        .replace("{embedding}", embedding)
    )
    r = invoke("run", "--config", "w.toml", "--trials", "2", "--no-refit", "--ensemble", "2")
    assert r.exit_code == 0, r.output
    best = workdir / "studies/wine-tables/best"
    card = json.loads((best / "model-card.json").read_text())
    assert card["fsearch_layers"] == layers
    assert card["hyperparams"]["numeric"] == numeric
    rows = datasets.held_out_rows(
        DataSettings(source="wine.csv", target="cultivar", validation_fraction=0.25)
    )
    cols = _wine_with_grower()
    kept = datafiles.write_table({k: v[rows] for k, v in cols.items()}, workdir / "kept.csv")
    r = invoke("predict", "--model", best, "--data", kept, "--out", workdir / "p.csv")
    assert r.exit_code == 0, r.output
    import pyarrow.csv as pcsv

    pred = pcsv.read_csv(workdir / "p.csv").to_pydict()["prediction"]
    assert np.mean(np.array(pred) == cols["cultivar"][rows]) == card["test_accuracy"]


def test_a_data_run_without_trials_or_timeout_gets_a_time_budget_and_says_it(workdir):
    import io

    from rich.console import Console

    from search.planning import RunOptions, plan

    datafiles.write_table(datafiles.wine_columns(), workdir / "wine.csv")
    out = io.StringIO()
    made = plan(None, RunOptions(data="wine.csv", target="cultivar"), Console(file=out))
    assert made.timeout == 300.0 and made.options.timeout == 300.0
    assert made.trials == 200
    first = out.getvalue().splitlines()[0]
    assert first.startswith("--data without --trials or --timeout: searching for 5 min")
    assert "sized to 142 training rows" in first
    given = plan(None, RunOptions(data="wine.csv", target="cultivar", trials=3), Console(file=out))
    assert given.timeout is None


def test_fixed_defaults_leave_the_fingerprint_of_a_space_without_the_table_keys():
    cfg = parse_config(raw_config())
    explicit = parse_config(
        raw_config(numeric="standardize", embedding="none", label_smoothing=0.0)
    )
    assert cfg.fingerprint() == explicit.fingerprint()
    assert cfg.space["numeric"] == Fixed("standardize")


def test_init_and_data_runs_drop_an_identifier_column_and_say_why(workdir):
    cols = datafiles.wine_columns()
    cols["customer"] = np.array([f"c{i:04d}" for i in range(len(cols["cultivar"]))], dtype=object)
    datafiles.write_table(cols, workdir / "wine.csv")
    r = invoke("init", "--data", "wine.csv", "--target", "cultivar")
    assert r.exit_code == 0, r.output
    assert 'drop = ["customer"]' in r.output
    assert "column 'customer' left out (drop = [...] in [data]): " in r.output
    assert "(an identifier or free text)" in r.output
    from search.data.init_toml import study_config

    cfg, notes, _ = study_config("wine.csv", "cultivar")
    assert cfg.data.drop == ("customer",) and notes[0].startswith("column 'customer' left out")


def test_init_with_a_target_the_file_lacks_still_stops_beside_a_dropped_column(workdir):
    cols = datafiles.wine_columns()
    cols["customer"] = np.array([f"c{i:04d}" for i in range(len(cols["cultivar"]))], dtype=object)
    datafiles.write_table(cols, workdir / "wine.csv")
    r = invoke("init", "--data", "wine.csv", "--target", "missing_column")
    assert r.exit_code == 2 and "missing_column" in r.output
