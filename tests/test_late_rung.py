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


@pytest.mark.parametrize("pruner", ["hyperband", "successive-halving"])
@pytest.mark.parametrize("direction", ["maximize", "minimize"])
def test_late_rung_stops_at_its_epoch_the_trials_below_the_best_half_and_no_other(
    pruner, direction
):
    pruner = make_pruner(
        study_settings(pruner=pruner, reduction_factor=4, bootstrap_count=0, late_rung=8),
        max_epochs=12,
    )
    assert isinstance(
        pruner, (optuna.pruners.HyperbandPruner, optuna.pruners.SuccessiveHalvingPruner)
    )
    sign = 1 if direction == "maximize" else -1
    study = optuna.create_study(direction=direction, pruner=pruner)
    at_8 = [0.90, 0.80, 0.95, 0.70, 0.85, 0.99]
    stopped = []
    for k, v8 in enumerate(at_8):
        trial = study.ask()
        stop = None
        for epoch in range(1, 13):
            # At the base pruner's rungs (epochs 1 and 4) each trial is the best so far, so it
            # is promoted; at every other epoch but 8 each is the worst so far, so a rung
            # anywhere else would stop it there.
            if epoch == 8:
                v = v8
            elif epoch in (1, 4):
                v = 0.5 + 0.01 * k
            else:
                v = 0.5 - 0.01 * k
            trial.report(sign * v, step=epoch)
            if trial.should_prune():
                stop = epoch
                break
        stopped.append(stop)
        if stop:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            study.tell(trial, sign * 0.99)
    # Kept: the best 1/2 of the values at epoch 8 so far, itself included (len // 2 - 1, at
    # least the best): 0.80 is below 0.90 of 2; 0.70 below the 2nd best (0.90) of 4; 0.85
    # below the 2nd best (0.90) of 5.
    assert stopped == [None, 8, None, 8, 8, None]


def test_without_late_rung_the_default_pruner_is_optunas_own_hyperband():
    pruner = make_pruner(study_settings(pruner="hyperband"), max_epochs=12)
    assert type(pruner) is optuna.pruners.HyperbandPruner


def test_late_rung_with_successive_halving_keeps_its_class_and_the_rung_settings():
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
