"""[study] late_rung: one more rung after Hyperband's (search/late_rung.py)."""

from __future__ import annotations

import optuna
import pytest

from search.config import parse_config
from search.errors import ConfigError
from search.runner import make_pruner
from tests.helpers import raw_config


def study_settings(**study):
    raw = raw_config()
    raw["study"].update(study)
    return parse_config(raw).study


def test_late_rung_stops_at_its_epoch_the_trials_below_the_best_half_and_no_other():
    pruner = make_pruner(
        study_settings(pruner="hyperband", reduction_factor=4, bootstrap_count=0, late_rung=8),
        max_epochs=12,
    )
    assert isinstance(pruner, optuna.pruners.HyperbandPruner)
    study = optuna.create_study(direction="maximize", pruner=pruner)
    at_8 = [0.90, 0.80, 0.95, 0.70, 0.85, 0.99]
    stopped = []
    for k, v8 in enumerate(at_8):
        trial = study.ask()
        stop = None
        for epoch in range(1, 13):
            # Before epoch 8 each trial is the best so far, so Hyperband promotes it.
            trial.report(v8 if epoch == 8 else 0.5 + 0.01 * k + 0.001 * epoch, step=epoch)
            if trial.should_prune():
                stop = epoch
                break
        stopped.append(stop)
        study.tell(
            trial,
            state=optuna.trial.TrialState.PRUNED if stop else None,
            values=None if stop else 0.99,
        )
    # 0.80: below 0.90 (fewer than 2 others: only the best goes on); 0.70: below the 2nd best
    # of 4; 0.85: below the 2nd best of 5 (0.90). The others are in the best half.
    assert stopped == [None, 8, None, 8, 8, None]


def test_without_late_rung_the_default_pruner_is_optunas_own_hyperband():
    pruner = make_pruner(study_settings(pruner="hyperband"), max_epochs=12)
    assert type(pruner) is optuna.pruners.HyperbandPruner


def test_late_rung_with_successive_halving_is_that_pruner_plus_the_rung():
    pruner = make_pruner(study_settings(pruner="successive-halving", late_rung=5), max_epochs=9)
    assert isinstance(pruner, optuna.pruners.SuccessiveHalvingPruner)
    assert pruner.late_rung == 5 and pruner.late_rung_keep == 2


@pytest.mark.parametrize(
    ("study", "message"),
    [
        ({"late_rung": -1}, "late_rung must be >= 0, got -1"),
        ({"late_rung": 4, "late_rung_keep": 1}, "late_rung_keep must be >= 2, got 1"),
        ({"late_rung": 4, "pruner": "median"}, "late_rung adds a rung to Hyperband"),
    ],
)
def test_bad_late_rung_settings_are_refused_with_what_to_set(study, message):
    with pytest.raises(ConfigError, match=message):
        study_settings(**study)


@pytest.mark.parametrize("epoch", [1, 12, 20])
def test_late_rung_outside_the_trials_epochs_is_refused(epoch):
    s = study_settings(pruner="hyperband", min_epochs=1, late_rung=epoch)
    with pytest.raises(ConfigError, match=f"late_rung {epoch} must lie between min_epochs"):
        make_pruner(s, max_epochs=12)
