"""The grid sampler: its config rules, its search space, and the seed-lab studies."""

from __future__ import annotations

import math

import pytest

from search.config import Choice, Fixed, load_config, parse_config
from search.errors import ConfigError
from search.runner import make_sampler
from search.space import grid_search_space, grid_size
from tests.helpers import DEFAULT_DB, LAB_BASELINE, ROOT, invoke

SEED_LAB = sorted((ROOT / "studies").glob("seed-lab-*.toml"))


def grid_toml(**space) -> dict:
    base = {"layers": [1, 2], "width": [16, 32], "activation": "relu", **LAB_BASELINE, "epochs": 2}
    return {
        "study": {"name": "g", "sampler": "grid"},
        "model": {"width_per_layer": False},
        "space": {**base, **space},
    }


def test_grid_space_and_size():
    cfg = parse_config(grid_toml(dropout=[0.1, 0.2, 0.3]))
    assert grid_search_space(cfg) == {
        "layers": [1, 2],
        "width": [16, 32],
        "dropout": [0.1, 0.2, 0.3],
    }
    assert grid_size(cfg) == 12


def test_grid_with_a_width_per_layer():
    raw = grid_toml(layers=[1, 3])
    raw["model"] = {"width_per_layer": True}
    cfg = parse_config(raw)
    assert list(grid_search_space(cfg)) == ["layers", "width_1", "width_2", "width_3"]


def test_a_range_in_a_grid_study_is_refused():
    with pytest.raises(ConfigError, match=r"momentum is a range; write e\.g\. momentum = \["):
        parse_config(grid_toml(momentum={"low": 0.0, "high": 0.9}))


def test_sampler_grid_override_on_a_range_config(tiny_config):
    r = invoke("run", "--config", tiny_config, "--sampler", "grid")
    assert r.exit_code == 2 and "the grid sampler needs a value or a list" in r.output
    assert "layers, width, learning_rate" in r.output
    assert not DEFAULT_DB.exists()


def test_grid_order_does_not_depend_on_the_process_seed():
    # Resumed runs and workers get other process seeds; grid ids must mean the same points.
    # (With a width per layer, 1-layer nets would repeat for every width_2: documented.)
    cfg = parse_config(grid_toml(dropout=[0.1, 0.2, 0.3]))
    grid = grid_search_space(cfg)
    a = make_sampler(cfg.study, seed=1, grid=grid)
    b = make_sampler(cfg.study, seed=999, grid=grid)
    assert a._all_grids == b._all_grids and len(a._all_grids) == 12


@pytest.mark.parametrize("path", SEED_LAB, ids=lambda p: p.stem)
def test_seed_lab_studies_keep_the_lab_baseline(path):
    cfg = load_config(path)
    assert cfg.study.name == path.stem and cfg.study.sampler == "grid"
    assert cfg.study.pruner == "none"  # every run trains its 10 epochs, as in the lab
    s = cfg.space
    assert s["layers"] == Choice((1, 2)) and s["width"] == Choice((16, 32, 64))
    assert not cfg.model.width_per_layer  # 784xWxWx10
    assert s["optimizer"] == Fixed("sgd") and s["batch_size"] == Fixed(32)
    assert s["epochs"] == Fixed(10) and s["activation"] == Fixed("relu")
    varied = {k for k, p in s.items() if isinstance(p, Choice)} - {"layers", "width"}
    baseline = {"learning_rate": 0.1, "momentum": 0.0, "dropout": 0.0, "regularizer": "none"}
    for key, value in baseline.items():
        if key not in varied and not (key == "regularizer" and "reg_strength" in varied):
            assert s[key] == Fixed(value), (path.stem, key)


def test_seed_lab_grid_covers_the_lab():
    sizes = {p.stem: grid_size(load_config(p)) for p in SEED_LAB}
    assert sizes == {
        "seed-lab-architecture": 6,
        "seed-lab-learning-rate": 18,
        "seed-lab-momentum": 60,
        "seed-lab-regularization": 36,
        "seed-lab-dropout": 30,
    }
    momentum = load_config(ROOT / "studies" / "seed-lab-momentum.toml").space["momentum"].choices
    assert len(momentum) == 10
    assert all(math.isclose(m, (i + 1) / 10) for i, m in enumerate(momentum))
