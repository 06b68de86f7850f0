from __future__ import annotations

import optuna
import pytest

from search.config import parse_config
from search.model import count_params
from search.space import Hyperparams, suggest
from tests.helpers import raw_config


def _params(cfg, seed=0, n=30):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    out = []
    for _ in range(n):
        trial = study.ask()
        out.append((suggest(trial, cfg), dict(trial.params)))
        study.tell(trial, 0.5)
    return out


def test_conditional_parameters_are_only_suggested_where_they_matter():
    cfg = parse_config(raw_config())
    for hp, params in _params(cfg):
        assert ("momentum" in params) == (hp.optimizer == "sgd")
        assert ("reg_strength" in params) == (hp.regularizer != "none")
        assert [k for k in params if k.startswith("width_")] == [
            f"width_{i + 1}" for i in range(len(hp.widths))
        ]
        assert all(16 <= w <= 48 for w in hp.widths)
        assert 1e-3 <= hp.learning_rate <= 0.05
        assert hp.batch_size in (64, 128) and hp.epochs == 2


def test_shared_width():
    raw = raw_config()
    raw["model"] = {"width_per_layer": False}
    for hp, params in _params(parse_config(raw)):
        assert "width" in params and len(set(hp.widths)) == 1


def test_fixed_values_are_not_trial_params():
    cfg = parse_config(raw_config(layers=2, optimizer="adam", regularizer="none", width=64))
    hp, params = _params(cfg, n=1)[0]
    assert hp.widths == (64, 64)
    assert "optimizer" not in params and "layers" not in params


def test_hyperparams_round_trip_and_architecture():
    hp = Hyperparams(widths=(64, 64), optimizer="sgd", learning_rate=0.1)
    assert hp.architecture == "784x64x64x10"
    assert Hyperparams.from_dict(hp.to_dict()) == hp
    # 784*64+64 + 64*64+64 + 64*10+10
    assert count_params(hp) == 55050


@pytest.mark.parametrize("seed", [0, 1])
def test_suggest_is_deterministic_for_a_seed(seed):
    cfg = parse_config(raw_config())
    assert [p for p, _ in _params(cfg, seed=seed, n=5)] == [
        p for p, _ in _params(cfg, seed=seed, n=5)
    ]


def test_precision_reaches_hyperparams_and_is_asked_of_the_sampler_only_when_a_list():
    fixed = parse_config(raw_config(precision="mixed_bfloat16"))
    for hp, params in _params(fixed, n=3):
        assert hp.precision == "mixed_bfloat16" and "precision" not in params
    assert {hp.precision for hp, _ in _params(parse_config(raw_config()), n=3)} == {"float32"}
    searched = parse_config(raw_config(precision=["float32", "mixed_bfloat16"]))
    drawn = _params(searched, n=20)
    assert all(hp.precision == params["precision"] for hp, params in drawn)
    assert {hp.precision for hp, _ in drawn} == {"float32", "mixed_bfloat16"}
