"""What a run says while it works, as events the caller subscribes to.

The library never prints: planning, the run in this process, the worker pool, export and the
report emit an `Event` (a kind, the line the CLI shows, and the facts behind it as data).
Who shows them subscribes: the CLI and notebooks pass `printer(console)` (a rich Console,
which also draws the progress bar), and `search.run(..., on_event=f)` hands every event to
`f` as well, e.g. to collect trial results or to log them elsewhere.

    events = []
    search.run("studies/fashion-mnist-mlp.toml", trials=5, on_event=events.append)
    [e.data["value"] for e in events if e.kind == "trial"]
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# Every kind an event may have, and what it reports.
KINDS: dict[str, str] = {
    "note": "what the run inferred or decided before it starts (the data, a time budget)",
    "study": "the study opened: new or resumed, finished and target trials",
    "warm_start": "configurations of another study queued first (--warm-start)",
    "first_trials": "configurations known to be good for the data queued first (first_trials)",
    "waiting": "this worker waits for other workers' running trials",
    "trial": "a trial finished (one line per trial)",
    "restart": "this worker restarts itself to release TensorFlow's memory",
    "done": "the run ended: trials by outcome, the best so far",
    "stopped_early": "the run ended before its target (timeout)",
    "export_step": "a step of the export (a refit starting)",
    "exported": "the model and its card were written",
    "report_step": "a step of the report",
}


@dataclass(frozen=True)
class Event:
    kind: str  # one of KINDS
    text: str  # the line the CLI prints, plain text (no markup)
    data: dict[str, Any] = field(default_factory=dict)


Listener = Callable[[Event], None]


class Events:
    """The listeners of one run; `emit` hands each event to all of them, in order."""

    def __init__(self, *listeners: Listener | None) -> None:
        self.listeners = [f for f in listeners if f is not None]

    def emit(self, kind: str, text: str, **data: Any) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown event kind {kind!r}; add it to search.events.KINDS")
        event = Event(kind, text, data)
        for listener in self.listeners:
            listener(event)

    def line(self, kind: str) -> Callable[[str], None]:
        """A one-argument function emitting text lines of one kind (for code that takes a
        `progress(line)` or `log(line)` callback)."""
        return lambda text: self.emit(kind, text)


def printer(console) -> Listener:
    """A listener printing each event's text on a rich Console, as it is: stored names and
    error messages may contain what rich would read as markup ("[/b]")."""

    def show(event: Event) -> None:
        console.print(event.text, markup=False, highlight=False, soft_wrap=True)

    return show
