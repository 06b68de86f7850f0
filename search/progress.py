"""Terminal output of a run: a rich progress bar plus one line per finished trial."""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn
from rich.text import Text

from search.events import Events, printer
from search.metrics import ACCURACY, Metric
from search.runner import trial_line

if TYPE_CHECKING:
    import optuna


def _clock(seconds: float | None) -> str:
    return "-:--:--" if seconds is None else str(dt.timedelta(seconds=max(0, int(seconds))))


# rich's own elapsed / remaining columns count from this process's start and estimate speed
# over the last 30 s: with trials that take minutes and a worker that restarts itself every
# 20 trials (workers.restart_every), they showed 0:00 after each restart and almost never an
# ETA. These
# count from the run's first start (kept across restarts) and use the rate since then.
class _ElapsedColumn(ProgressColumn):
    def render(self, task) -> Text:
        return Text(_clock(time.time() - task.fields["started"]), style="progress.elapsed")


class _EtaColumn(ProgressColumn):
    def render(self, task) -> Text:
        end = task.fields.get("eta_at")
        return Text(
            "eta " + _clock(None if end is None else end - time.time()), "progress.remaining"
        )


class RunProgress:
    """Progress bar of finished / target trials with the best value so far and an ETA.

    `started` is (wall-clock time, finished trials then) of this run's first start, so a worker
    that restarted itself keeps its elapsed time and rate. `show=False` leaves the bar out (a
    `--jobs` worker: its parent shows one bar for all workers).
    """

    def __init__(
        self,
        console: Console,
        *,
        target: int,
        already: int,
        best: float | None,
        started: tuple[float, int] | None = None,
        show: bool = True,
        metric: Metric = ACCURACY,
        events: Events | None = None,
        deadline: float | None = None,
    ) -> None:
        self.console = console
        # --timeout: when no more trials start (wall-clock time); the ETA is never later.
        self.deadline = deadline
        # Trial lines go out as events (search/events.py); without a run's events, straight
        # to this console.
        self.events = events if events is not None else Events(printer(console))
        self.best = best
        self.metric = metric
        self.target = target
        self.started = started or (time.time(), already)
        self.progress = Progress(
            TextColumn("[bold]trials"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("best {task.fields[best]}"),
            _ElapsedColumn(),
            _EtaColumn(),
            console=console,
            transient=False,
            disable=not show,  # trial lines are still printed
        )
        self.task = self.progress.add_task(
            "trials",
            total=target,
            completed=already,
            best=self._fmt(best),
            started=self.started[0],
            eta_at=self.eta_at(already),
        )

    def eta_at(self, finished: int, now: float | None = None) -> float | None:
        """When the run ends: the target reached at the rate since the start, or the
        --timeout deadline if that comes first (None: no rate yet and no deadline)."""
        now = time.time() if now is None else now
        t0, n0 = self.started
        if finished <= n0 or now <= t0:
            return self.deadline
        at_rate = now + (now - t0) / (finished - n0) * max(self.target - finished, 0)
        return at_rate if self.deadline is None else min(at_rate, self.deadline)

    @staticmethod
    def _fmt(v: float | None) -> str:
        return f"{v:.4f}" if v is not None and math.isfinite(v) else "-"

    def __enter__(self) -> RunProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()

    def on_trial(self, trial: optuna.trial.FrozenTrial, finished: int) -> None:
        # Printed as plain text (events.printer): the line holds stored strings (an error
        # message may contain "[/b]").
        self.events.emit(
            "trial",
            trial_line(trial, self.metric),
            number=trial.number,
            state=trial.state.name,
            value=trial.value,
            params=dict(trial.params),
            finished=finished,
        )
        self.update(finished, trial.value)

    def update(self, finished: int, value: float | None = None) -> None:
        """Set the finished count; `value` is a trial's value, kept if it beats the best."""
        if self.metric.better(value, self.best):
            self.best = value
        self.progress.update(
            self.task, completed=finished, best=self._fmt(self.best), eta_at=self.eta_at(finished)
        )

    @contextlib.contextmanager
    def following(self, study: optuna.Study, every: float = 2.0) -> Iterator[None]:
        """Update the bar from the storage every `every` s while other processes run the trials
        (`--jobs N`: the workers print their trial lines; this process only watches)."""
        from search.metrics import of_study
        from search.outcomes import finished_states

        stop = threading.Event()

        def refresh() -> None:
            # A busy or briefly unreachable database only delays the bar to the next tick.
            with contextlib.suppress(Exception):
                trials = study.get_trials(deepcopy=False, states=finished_states())
                self.metric = of_study(study)
                self.update(len(trials), self.metric.best(t.value for t in trials))

        def poll() -> None:
            refresh()
            while not stop.wait(every):
                refresh()
            refresh()  # the workers have ended: the final count

        thread = threading.Thread(target=poll, name="fsearch-progress", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=every + 5)
