"""A trial's outcome, defined once: complete / pruned / diverged / failed / running / waiting.

Optuna stores four end states (COMPLETE, PRUNED, FAIL, and RUNNING / WAITING while live).
fsearch adds one distinction: a trial whose loss became NaN or inf is stored as PRUNED with
`end_reason = "diverged"` in its user attributes (the lab report's many "0.1" results were
such runs trained to the end). Every count and label of the runner, the CLI, inspection, the
report and the benchmarks comes from here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING

from search.metrics import ACCURACY, Metric

if TYPE_CHECKING:
    import optuna

OUTCOMES = ("complete", "pruned", "diverged", "failed", "running", "waiting")
FINISHED = ("complete", "pruned", "diverged")  # count toward --trials
END_REASON = "end_reason"  # trial user attribute: completed / pruned / diverged / failed / lost
DIVERGED = "diverged"


def outcome(trial: optuna.trial.FrozenTrial) -> str:
    """One of OUTCOMES for the trial."""
    name = trial.state.name.lower()
    if name == "pruned" and trial.user_attrs.get(END_REASON) == DIVERGED:
        return DIVERGED
    return "failed" if name == "fail" else name


def count_outcomes(trials: Iterable[optuna.trial.FrozenTrial]) -> dict[str, int]:
    """How many trials ended each way; every key of OUTCOMES is present, in its order."""
    return tally(outcome(t) for t in trials)


def tally(names: Iterable[str]) -> dict[str, int]:
    """Count outcome names (e.g. of the report's runs); every key of OUTCOMES is present."""
    counts = dict.fromkeys(OUTCOMES, 0)
    for name in names:
        counts[name] += 1
    return counts


def finished(counts: dict[str, int]) -> int:
    """Finished trials (complete + pruned + diverged) in a count_outcomes dict."""
    return sum(counts[k] for k in FINISHED)


def finished_states() -> tuple:
    """Optuna states of finished trials (a diverged trial is PRUNED in Optuna)."""
    from optuna.trial import TrialState

    return (TrialState.COMPLETE, TrialState.PRUNED)


def count_finished(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=finished_states()))


def summary(counts: dict[str, int]) -> str:
    """The run's closing count, e.g. "150 complete, 45 pruned, 0 fail, 5 of the pruned
    diverged" (diverged trials are PRUNED to Optuna and to the --trials budget)."""
    pruned = counts["pruned"] + counts["diverged"]
    parts = [f"{counts['complete']} complete", f"{pruned} pruned", f"{counts['failed']} fail"]
    if counts["diverged"]:
        parts.append(f"{counts['diverged']} of the pruned diverged")
    if counts["running"]:
        parts.append(f"{counts['running']} running")
    return ", ".join(parts)


def best_epoch_value(trial: optuna.trial.FrozenTrial, metric: Metric = ACCURACY) -> float | None:
    """The best epoch's validation score: the objective value of a complete trial, the best
    reported epoch of a pruned one; None for diverged, failed and running trials."""
    state = outcome(trial)
    if state == "complete":
        return trial.value
    if state == "pruned" and trial.intermediate_values:
        values = [v for v in trial.intermediate_values.values() if math.isfinite(v)]
        return metric.best(values)
    return None
