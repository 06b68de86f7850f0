"""Terminal output of a run: a rich progress bar plus one line per finished trial."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from search.runner import trial_line

if TYPE_CHECKING:
    import optuna


class RunProgress:
    """Progress bar of finished / target trials with the best value so far and an ETA."""

    def __init__(self, console: Console, *, target: int, already: int, best: float | None) -> None:
        self.console = console
        self.best = best
        self.progress = Progress(
            TextColumn("[bold]trials"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("best {task.fields[best]}"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self.task = self.progress.add_task(
            "trials", total=target, completed=already, best=self._fmt(best)
        )

    @staticmethod
    def _fmt(v: float | None) -> str:
        return f"{v:.4f}" if v is not None and math.isfinite(v) else "-"

    def __enter__(self) -> RunProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()

    def on_trial(self, trial: optuna.trial.FrozenTrial, finished: int) -> None:
        if trial.value is not None and (self.best is None or trial.value > self.best):
            self.best = trial.value
        self.progress.console.print(trial_line(trial), highlight=False, soft_wrap=True)
        self.progress.update(self.task, completed=finished, best=self._fmt(self.best))
