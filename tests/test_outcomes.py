"""search/outcomes.py on real Optuna FrozenTrials (optuna.trial.create_trial): the one
definition of how a trial ended, and the counts and summary built on it."""

from __future__ import annotations

import math

import optuna
import pytest

from search import outcomes

S = optuna.trial.TrialState


def complete(value: float = 0.8, curve: tuple[float, ...] = (0.7, 0.8)):
    return optuna.trial.create_trial(
        state=S.COMPLETE, value=value, intermediate_values=dict(enumerate(curve, 1))
    )


def pruned(curve: tuple[float, ...] = (0.6, 0.65), **user_attrs):
    return optuna.trial.create_trial(
        state=S.PRUNED, intermediate_values=dict(enumerate(curve, 1)), user_attrs=user_attrs
    )


def diverged():
    return pruned((0.3, math.nan), end_reason="diverged", end_detail="loss became nan")


def failed():
    return optuna.trial.create_trial(state=S.FAIL, user_attrs={"end_reason": "failed"})


def running():
    return optuna.trial.create_trial(state=S.RUNNING, intermediate_values={1: 0.5})


def waiting():
    return optuna.trial.create_trial(state=S.WAITING)


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (complete, "complete"),
        (pruned, "pruned"),
        (diverged, "diverged"),
        (failed, "failed"),
        (running, "running"),
        (waiting, "waiting"),
    ],
)
def test_outcome_names_each_way_a_trial_can_stand(make, expected):
    assert outcomes.outcome(make()) == expected


def test_outcome_of_a_pruned_trial_with_another_end_reason_is_pruned():
    assert outcomes.outcome(pruned(end_reason="pruned")) == "pruned"


def test_count_outcomes_has_every_outcome_key_even_with_no_trials():
    assert outcomes.count_outcomes([]) == dict.fromkeys(outcomes.OUTCOMES, 0)
    assert set(outcomes.OUTCOMES) == {
        "complete", "pruned", "diverged", "failed", "running", "waiting"
    }  # fmt: skip


def test_count_outcomes_counts_a_diverged_trial_apart_from_the_pruned_ones():
    trials = [complete(), pruned(), pruned(), diverged(), failed(), running()]
    assert outcomes.count_outcomes(trials) == {
        "complete": 1, "pruned": 2, "diverged": 1, "failed": 1, "running": 1, "waiting": 0
    }  # fmt: skip


def test_finished_is_complete_plus_pruned_plus_diverged():
    counts = outcomes.count_outcomes(
        [complete(), pruned(), diverged(), failed(), running(), waiting()]
    )
    assert outcomes.finished(counts) == 3


def test_count_finished_counts_complete_and_pruned_trials_of_a_study_but_not_failed():
    study = optuna.create_study(direction="maximize")
    for t in (complete(), pruned(), diverged(), failed()):
        study.add_trial(t)
    assert outcomes.count_finished(study) == 3
    assert set(outcomes.finished_states()) == {S.COMPLETE, S.PRUNED}


def test_summary_counts_diverged_among_the_pruned_and_says_how_many_diverged():
    counts = outcomes.count_outcomes([complete(), pruned(), diverged()])
    assert outcomes.summary(counts) == "1 complete, 2 pruned, 0 fail, 1 of the pruned diverged"


def test_summary_leaves_out_diverged_when_none_and_adds_running_trials():
    counts = outcomes.count_outcomes([complete(), complete(), failed(), running(), running()])
    assert outcomes.summary(counts) == "2 complete, 0 pruned, 1 fail, 2 running"


def test_best_epoch_value_of_a_complete_trial_is_its_value():
    assert outcomes.best_epoch_value(complete(value=0.83, curve=(0.9, 0.83))) == 0.83


def test_best_epoch_value_of_a_pruned_trial_is_its_best_finite_epoch():
    assert outcomes.best_epoch_value(pruned((0.6, math.nan, 0.72, 0.7))) == 0.72


def test_best_epoch_value_of_a_pruned_trial_without_a_finite_epoch_is_none():
    assert outcomes.best_epoch_value(pruned(())) is None
    assert outcomes.best_epoch_value(pruned((math.nan, math.inf))) is None


@pytest.mark.parametrize("make", [diverged, failed, running, waiting])
def test_best_epoch_value_of_a_diverged_failed_running_or_waiting_trial_is_none(make):
    assert outcomes.best_epoch_value(make()) is None
