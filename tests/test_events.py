"""What a run says, as events (search/events.py): the library never prints; a caller of
search.run gets every event as an object, and the CLI prints the same events' text."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from rich.console import Console

import search
from search.events import KINDS, Event, Events

SEARCH = Path(search.__file__).resolve().parent


def _prints(path: Path) -> list[int]:
    """Lines of calls to print(...) or anything.print(...) in a file."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            f = node.func
            if (isinstance(f, ast.Name) and f.id == "print") or (
                isinstance(f, ast.Attribute) and f.attr == "print"
            ):
                lines.append(node.lineno)
    return lines


def test_only_the_cli_and_the_events_printer_print():
    found = {}
    for path in SEARCH.rglob("*.py"):
        rel = path.relative_to(SEARCH)
        if rel.parts[0] == "cli":
            continue
        lines = _prints(path)
        if rel.name == "events.py":
            assert len(lines) == 1  # printer()
            continue
        if lines:
            found[str(rel)] = lines
    assert found == {}


def test_events_reach_every_listener_in_order_and_unknown_kinds_are_refused():
    a, b = [], []
    events = Events(a.append, None, b.append)
    events.emit("note", "hello", rows=3)
    events.line("export_step")("refitting")
    assert a == b == [Event("note", "hello", {"rows": 3}), Event("export_step", "refitting")]
    with pytest.raises(ValueError, match="unknown event kind 'nope'"):
        events.emit("nope", "x")


@pytest.mark.slow
def test_run_hands_every_event_to_on_event_and_prints_the_same_text(tiny_config, real_data_dir):
    import io

    got: list[Event] = []
    out = io.StringIO()
    result = search.run(
        tiny_config,
        trials=2,
        data_dir=str(real_data_dir),
        console=Console(file=out, width=200),
        on_event=got.append,
        ensemble=1,
        refit=False,
    )
    kinds = [e.kind for e in got]
    assert set(kinds) <= set(KINDS)
    assert kinds[0] == "study" and kinds.count("trial") == 2
    assert kinds.index("done") > max(i for i, k in enumerate(kinds) if k == "trial")
    assert kinds[-1] == "exported"
    trials = [e.data for e in got if e.kind == "trial"]
    assert sorted(t["number"] for t in trials) == [0, 1]
    best = result.best_trial
    assert any(t["number"] == best.number and t["value"] == best.value for t in trials)
    assert got[-1].data["test_metrics"]["test_accuracy"] == result.card["test_accuracy"]
    printed = out.getvalue()
    for e in got:
        assert e.text.splitlines()[0][:60] in printed
