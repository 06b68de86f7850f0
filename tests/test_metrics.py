"""search/metrics.py: which way is better, and the warm start that ranks by it."""

from __future__ import annotations

import math

import optuna
import pytest

from search import studies
from search.config import parse_config
from search.metrics import ACCURACY, METRICS, balanced_accuracy, of_study
from tests.helpers import raw_config

RMSE = METRICS["rmse"]


def test_better_and_rank_follow_the_direction_and_put_missing_values_last():
    assert ACCURACY.better(0.9, 0.8) and not ACCURACY.better(0.8, 0.9)
    assert RMSE.better(3.0, 4.0) and not RMSE.better(4.0, 3.0)
    assert RMSE.better(5.0, None) and not RMSE.better(None, 5.0)
    assert not ACCURACY.better(math.nan, 0.1)
    assert sorted([3.0, None, 1.0, 2.0], key=RMSE.rank_key) == [1.0, 2.0, 3.0, None]
    assert sorted([0.3, None, 0.1], key=ACCURACY.rank_key) == [0.3, 0.1, None]
    assert RMSE.best([4.0, math.nan, 2.5]) == 2.5 and ACCURACY.best([]) is None


def test_balanced_accuracy_is_the_mean_recall_of_the_present_classes():
    # class 0: 3 of 4 right; class 1: 1 of 1; class 2 absent
    assert balanced_accuracy([0, 0, 0, 0, 1], [0, 0, 0, 1, 1], 3) == pytest.approx(0.875)


def test_of_study_reads_the_metric_name_and_old_studies_mean_accuracy():
    s = optuna.create_study(direction="minimize")
    assert of_study(s) is ACCURACY
    s.set_metric_names(["val_rmse"])
    assert of_study(s) is RMSE


def _source_study(params_and_values):
    s = optuna.create_study(direction="maximize", study_name="src")
    dists = {
        "learning_rate": optuna.distributions.FloatDistribution(1e-5, 1.0, log=True),
        "width": optuna.distributions.IntDistribution(8, 2048, log=True),
        "optimizer": optuna.distributions.CategoricalDistribution(["sgd", "adam", "nadam"]),
    }
    for params, value in params_and_values:
        s.add_trial(
            optuna.trial.create_trial(
                params=params, distributions={k: dists[k] for k in params}, value=value
            )
        )
    return s


def test_warm_start_queues_the_best_keeping_only_parameters_this_space_can_produce():
    raw = raw_config()  # width 16-48, optimizer sgd|adam, lr 1e-3-0.05
    raw["model"] = {"width_per_layer": False}  # one parameter "width", as in the source
    cfg = parse_config(raw)
    src = _source_study(
        [
            ({"learning_rate": 0.01, "width": 32, "optimizer": "adam"}, 0.9),
            ({"learning_rate": 0.02, "width": 1024, "optimizer": "nadam"}, 0.95),
            ({"learning_rate": 0.5, "width": 20, "optimizer": "sgd"}, 0.5),
        ]
    )
    target = optuna.create_study(direction="maximize")
    queued, dropped = studies.warm_start(target, src, cfg, n=2)
    assert queued == 2 and dropped == ["optimizer", "width"]
    # The queued trials come first, with the kept parameters fixed.
    first, second = target.ask(), target.ask()
    assert first.suggest_float("learning_rate", 1e-3, 0.05, log=True) == 0.02
    assert second.suggest_float("learning_rate", 1e-3, 0.05, log=True) == 0.01
    assert second.suggest_int("width", 16, 48, log=True) == 32
    assert first.user_attrs["warm_start"] == "src"
    assert studies.warm_start(target, src, cfg, n=2) == (0, [])  # once per source
