"""The one training unit (search/training.py) and the typed config that reaches it."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from search.config import Config, load_config
from search.metrics import METRICS, score
from search.space import Hyperparams
from search.training import SEED_OFFSETS, Rows, train, trial_seed
from tests.helpers import ROOT


def test_search_package_calls_keras_fit_in_training_py_only():
    calls = {
        str(p.relative_to(ROOT)): len(re.findall(r"\.fit\(", p.read_text()))
        for p in (ROOT / "search").rglob("*.py")
    }
    assert {p: n for p, n in calls.items() if n} == {"search/training.py": 1}


def test_trial_seed_differs_by_purpose_and_trial_and_stays_below_2_31():
    seeds = {trial_seed(42, n, purpose) for n in range(50) for purpose in SEED_OFFSETS}
    assert len(seeds) == 50 * len(SEED_OFFSETS)
    assert all(0 <= s < 2**31 for s in seeds)
    assert trial_seed(2**40, 7) < 2**31


@pytest.mark.parametrize("toml", sorted((ROOT / "studies").glob("*.toml")), ids=lambda p: p.name)
def test_stored_config_json_comes_back_as_the_same_config(toml: Path):
    cfg = load_config(toml)
    back = Config.from_json(cfg.to_json(), source=cfg.source)
    assert back == cfg


def test_stored_config_with_an_unknown_key_is_refused_naming_it():
    from search.errors import ConfigError

    stored = load_config(ROOT / "studies" / "fashion-mnist-mlp.toml").to_json()
    stored["study"]["bogus"] = 1
    with pytest.raises(ConfigError, match="bogus"):
        Config.from_json(stored)


def test_rows_refit_concatenates_train_and_validation_in_order():
    from search.data import Split

    split = Split(
        x_train=np.arange(6, dtype=np.float32).reshape(3, 2),
        y_train=np.array([0, 1, 0], dtype=np.int32),
        x_val=np.arange(6, 10, dtype=np.float32).reshape(2, 2),
        y_val=np.array([1, 1], dtype=np.int32),
        files={},
        directory="",
    )
    rows = Rows.refit(split)
    assert rows.x.tolist() == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]
    assert rows.y.tolist() == [0, 1, 0, 1, 1] and rows.y_val is None and len(rows) == 5


def test_score_per_metric_from_outputs():
    y = np.array([0, 0, 0, 1])
    out = np.array([[0.9, 0.1], [0.8, 0.2], [0.2, 0.8], [0.3, 0.7]])
    assert score(METRICS["accuracy"], y, out) == 0.75
    assert score(METRICS["balanced_accuracy"], y, out) == pytest.approx((2 / 3 + 1) / 2)
    reg = score(METRICS["rmse"], np.array([0.0, 1.0]), np.array([[1.0], [1.0]]), y_std=2.0)
    assert reg == pytest.approx(np.sqrt(2.0))


@pytest.mark.slow
def test_train_with_one_seed_twice_gives_the_same_weights():
    from search._tf import import_backend

    import_backend()
    cfg = load_config(ROOT / "studies" / "fashion-mnist-mlp.toml")
    rng = np.random.default_rng(0)
    rows = Rows(
        rng.random((256, 8), dtype=np.float32),
        rng.integers(0, 3, 256).astype(np.int32),
        rng.random((64, 8), dtype=np.float32),
        rng.integers(0, 3, 64).astype(np.int32),
    )
    hp = Hyperparams(widths=(16,), optimizer="adam", learning_rate=0.01, dropout=0.2,
                     batch_size=32, epochs=2, inputs=8, outputs=3)  # fmt: skip
    a, ha = train(hp, rows, task="classification", settings=cfg.train, seed=trial_seed(1, 3))
    b, hb = train(hp, rows, task="classification", settings=cfg.train, seed=trial_seed(1, 3))
    c, _ = train(hp, rows, task="classification", settings=cfg.train, seed=trial_seed(1, 4))
    assert len(ha.history["val_loss"]) == 2 and ha.history == hb.history
    assert all(np.array_equal(x, y) for x, y in zip(a.get_weights(), b.get_weights(), strict=True))
    assert not all(
        np.array_equal(x, y) for x, y in zip(a.get_weights(), c.get_weights(), strict=True)
    )
