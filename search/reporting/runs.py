"""Runs: every trial of a study flattened into a Run, the unit every table and plot counts.

A Run's state is `search.outcomes.outcome` of its trial and its value the best epoch's
validation accuracy (`search.outcomes.best_epoch_value`).
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from search.inspection import hyperparams
from search.metrics import of_study
from search.outcomes import best_epoch_value, outcome, tally

if TYPE_CHECKING:
    import optuna


@dataclass(frozen=True)
class Run:
    """One trial, flattened: the unit every table and plot counts."""

    study: str
    trial: int
    state: str  # complete / pruned / diverged / failed / running / waiting
    value: float | None
    hp: dict[str, Any]
    architecture: str
    curve: tuple[float, ...]  # the study's metric per epoch
    started: _dt.datetime | None = None
    maximize: bool = True  # the study's direction (validation accuracy: up; RMSE: down)

    @property
    def n_params(self) -> int | None:
        """Trainable parameters of the net, from its architecture (784x64x64x10)."""
        try:
            sizes = [int(p) for p in self.architecture.split("x")]
        except ValueError:
            return None
        if len(sizes) < 2:
            return None
        return sum((a + 1) * b for a, b in zip(sizes[:-1], sizes[1:], strict=True))

    @property
    def rank(self) -> float:
        """Sort key: ascending is best first (None last)."""
        if self.value is None:
            return float("inf")
        return -self.value if self.maximize else self.value

    @property
    def widths(self) -> tuple[int, ...]:
        w = self.hp.get("widths")
        if w:
            return tuple(w)
        parts = self.architecture.split("x")
        return tuple(int(p) for p in parts[1:-1]) if len(parts) > 2 else ()


def runs_of(study: optuna.Study) -> list[Run]:
    """Every trial of the study as a Run."""
    metric = of_study(study)
    runs = []
    for t in study.get_trials(deepcopy=False):
        curve = tuple(t.intermediate_values[k] for k in sorted(t.intermediate_values))
        runs.append(
            Run(
                study=study.study_name,
                trial=t.number,
                state=outcome(t),
                value=best_epoch_value(t, metric),
                hp=hyperparams(t),
                architecture=str(t.user_attrs.get("architecture", "")),
                curve=curve,
                started=t.datetime_start,
                maximize=metric.maximize,
            )
        )
    return runs


def state_counts(runs: Iterable[Run]) -> dict[str, int]:
    """How many runs ended each way; every key of OUTCOMES is present, in its order."""
    return tally(r.state for r in runs)


def best_run(runs: Iterable[Run]) -> Run | None:
    """The complete run with the best value, or None."""
    done = [r for r in runs if r.state == "complete" and r.value is not None]
    return min(done, key=lambda r: r.rank) if done else None
