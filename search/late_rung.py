"""One more rung late in training, after Hyperband's (issue #23, item 3: fewer wasted epochs).

The default study's trials that Hyperband promotes at its 1- and 4-epoch rungs train all 12
epochs, about two thirds of a study's time. `[study] late_rung = E` (0: none) adds a rung at
epoch E where a trial goes on only if its validation value is among the best 1/late_rung_keep
of the values that every trial of the study reported at epoch E, itself included: Optuna's
successive-halving rule, with no bootstrap. At an epoch that is also one of the base
pruner's rungs both rules apply, the base's first. A first trial (search/first_trials.py) is
never pruned, here either. `python -m benchmarks.rungs` replays such a rung on finished
studies (BENCHMARKS.md `rungs`).

Our own code because Optuna's pruners place rungs at min_resource x reduction_factor^k only
(1, 4, 16 for the default), so a rung at, say, epoch 8 of 12 is no setting of theirs. It
subclasses them rather than wrapping: samplers check `isinstance(study.pruner,
HyperbandPruner)` to give TPE the trials of a trial's own bracket (optuna.pruners._filter_study),
and a wrapper would silently change what TPE sees.
"""

from __future__ import annotations

import math

import optuna


def promotable(value: float, competing: list[float], keep: int, *, maximize: bool) -> bool:
    """Optuna's successive-halving rule (optuna/pruners/_successive_halving.py,
    `_is_trial_promotable_to_next_rung`, private, so restated here): the value is at least
    the (len // keep)-th best of the competing values (its own included); while fewer than
    `keep` have reached the rung, only the best so far goes on."""
    idx = max(len(competing) // keep - 1, 0)
    ordered = sorted(competing, reverse=maximize)
    return value >= ordered[idx] if maximize else value <= ordered[idx]


class _LateRung:
    """Mixin: the base pruner's decision, then the late rung's at exactly epoch `late_rung`."""

    def __init__(self, *args, late_rung: int, late_rung_keep: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.late_rung = late_rung
        self.late_rung_keep = late_rung_keep

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        if super().prune(study, trial):
            return True
        step = trial.last_step
        if step != self.late_rung:
            return False
        value = trial.intermediate_values[step]
        if math.isnan(value):
            return True
        competing = [value]
        for t in study.get_trials(deepcopy=False):
            v = t.intermediate_values.get(step)
            if t.number != trial.number and v is not None and not math.isnan(v):
                competing.append(v)
        maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
        return not promotable(value, competing, self.late_rung_keep, maximize=maximize)


class HyperbandLateRung(_LateRung, optuna.pruners.HyperbandPruner):
    """Optuna's HyperbandPruner plus the late rung."""


class SuccessiveHalvingLateRung(_LateRung, optuna.pruners.SuccessiveHalvingPruner):
    """Optuna's SuccessiveHalvingPruner plus the late rung."""
