"""TPE over a window of a big study's history ([study] tpe_window, search/tpe_window.py)."""

from __future__ import annotations

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from search.config import parse_config
from search.errors import ConfigError
from search.tpe_window import GOOD_GROUP, window
from tests.helpers import raw_config

X = FloatDistribution(0.0, 1.0)


def _trials(n: int) -> list:
    """n finished trials numbered 0..n-1: every third pruned, the rest complete with value
    = number (so the best complete ones are the oldest when minimizing)."""
    out = []
    for i in range(n):
        pruned = i % 3 == 0
        t = create_trial(
            params={"x": i / n},
            distributions={"x": X},
            value=None if pruned else float(i),
            state=TrialState.PRUNED if pruned else TrialState.COMPLETE,
            intermediate_values={1: float(i)},
        )
        t.number = i
        out.append(t)
    return out


def test_the_window_keeps_the_recent_trials_the_best_complete_ones_and_the_order():
    trials = _trials(1000)
    kept = window(trials, 200, maximize=False)
    numbers = [t.number for t in kept]
    assert numbers == sorted(numbers)
    best = [i for i in range(1000) if i % 3][:GOOD_GROUP]  # lowest values: minimize
    assert set(numbers) == set(best) | set(range(800, 1000))
    top = window(trials, 200, maximize=True)
    assert {t.number for t in top} == set(range(800, 1000))  # the best are recent ones too


def test_a_study_no_larger_than_the_window_is_seen_whole():
    trials = _trials(150)
    assert window(trials, 150, maximize=True) is trials


def test_the_windowed_sampler_suggests_from_the_window_and_the_study_is_untouched(monkeypatch):
    from search.tpe_window import windowed_tpe

    sampler = windowed_tpe(100, seed=0, n_startup_trials=5, multivariate=True, group=True,
                           constant_liar=True)  # fmt: skip
    study = optuna.create_study(direction="minimize", sampler=sampler)
    study.add_trials(_trials(400))
    seen = []
    parent = optuna.samplers.TPESampler._sample
    finished = (TrialState.COMPLETE, TrialState.PRUNED)

    def spy(self, study_view, trial, space):  # what Optuna's own _sample is handed
        seen.append(len(study_view._get_trials(deepcopy=False, states=finished)))
        return parent(self, study_view, trial, space)

    monkeypatch.setattr(optuna.samplers.TPESampler, "_sample", spy)
    t = study.ask()
    x = t.suggest_float("x", 0.0, 1.0)
    assert 0.0 <= x <= 1.0
    assert seen and all(n == 100 + GOOD_GROUP for n in seen)  # the best 25 are old ones
    assert len(study.trials) == 401


def test_tpe_window_below_250_is_refused_with_its_key():
    raw = raw_config()
    raw["study"]["tpe_window"] = 100
    with pytest.raises(ConfigError, match="tpe_window must be 0 .every trial. or at least 250"):
        parse_config(raw)
    raw["study"]["tpe_window"] = 2000
    from search.runner import make_sampler

    cfg = parse_config(raw)
    assert type(make_sampler(cfg.study, seed=0)).__name__ == "WindowedTPESampler"
