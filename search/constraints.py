"""A trial's budgets as Optuna constraints: how far over max_params / max_latency_ms it is.

The objective sets them (search/objective.py), the samplers read them (runner.make_sampler's
constraints_func, or Optuna's own stored constraints from 5.0 on), and export leaves out
trials over the latency budget.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import optuna

OVER_PARAMS = "over_max_params"
OVER_LATENCY = "over_max_latency_ms"


def native_constraints() -> bool:
    """Optuna >= 5.0 stores a trial's constraints itself (Trial.set_constraint) and deprecates
    the samplers' constraints_func, which 4.8 and 4.9 still need."""
    import optuna

    return hasattr(optuna.trial.Trial, "set_constraint")


def set_constraint(trial: optuna.Trial, attr: str, value: float) -> None:
    """How far the trial is over one budget (<= 0: within it): a user attribute for fsearch,
    and the trial's constraint for the sampler where Optuna stores those."""
    trial.set_user_attr(attr, value)
    if native_constraints():
        trial.set_constraint(attr, value)


def budget_constraints(trial: optuna.trial.FrozenTrial) -> list[float]:
    """Optuna's constraints_func: values <= 0 are feasible. Set by the objective (search/
    objective.py); a trial that never measured latency counts as within it."""
    return [
        float(trial.user_attrs.get(OVER_PARAMS, 0.0)),
        float(trial.user_attrs.get(OVER_LATENCY, 0.0)),
    ]
