"""Tables: runs grouped into cells (best validation accuracy and how the others ended), by
architecture or by one hyperparameter x architecture, as Markdown or JSON.

A run whose loss became NaN is shown as "diverged", and a finished run that learned nothing
as "0.1000 (chance)": the lab report wrote both kinds as "0.1". Many sampled values (a TPE
study) are binned into ranges.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from search.outcomes import OUTCOMES
from search.reporting.runs import Run

CHANCE = 0.11  # 10 balanced classes: a best accuracy below this learned nothing
# A factor with more distinct values than this (a TPE study) is binned into ranges.
MAX_ROWS = 12
# Hyperparameters tabulated one at a time: (title, key). Regularizer x strength is one factor.
FACTORS = (
    ("Learning rate", "learning_rate"),
    ("Momentum", "momentum"),
    ("Regularizer x strength", "regularization"),
    ("Dropout", "dropout"),
)


@dataclass
class Cell:
    """A group of runs summarised: the best complete value, and how the others ended."""

    runs: list[Run] = field(default_factory=list)
    fixed: str | None = None  # a quoted value (the lab report's), not computed from runs

    @property
    def best(self) -> float | None:
        done = [r for r in self.runs if r.state == "complete" and r.value is not None]
        return min(done, key=lambda r: r.rank).value if done else None

    def count(self, state: str) -> int:
        return sum(r.state == state for r in self.runs)

    @property
    def text(self) -> str:
        if self.fixed is not None:
            return self.fixed
        if not self.runs:
            return "-"
        diverged = self.count("diverged")
        if self.best is not None:
            # Chance level without a NaN: dead ReLUs or a collapsed net (the lab's 0.1s too).
            maximize = all(r.maximize for r in self.runs)
            chance = " (chance)" if maximize and self.best < CHANCE else ""
            return f"{self.best:.4f}{chance}" + (f" ({diverged} diverged)" if diverged else "")
        if diverged:
            return "diverged"
        # No complete run and none diverged: the best pruned run (its best epoch and where it
        # was stopped), else failed or still running.
        pruned = [r for r in self.runs if r.state == "pruned" and r.value is not None]
        if pruned:
            r = min(pruned, key=lambda r: r.rank)
            return f"pruned: {r.value:.4f} by epoch {len(r.curve)}"
        for state in ("running", "pruned", "failed", "waiting"):
            if self.count(state):
                return state
        return "-"

    def to_json(self) -> dict[str, Any]:
        if self.fixed is not None:
            return {"text": self.fixed, "quoted": True}
        return {
            "text": self.text,
            "best": self.best,
            "runs": len(self.runs),
            **{s: self.count(s) for s in OUTCOMES if self.count(s)},
        }


@dataclass
class Table:
    title: str
    row_header: str
    columns: list[str]
    rows: list[tuple[str, list[Cell]]]
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "row_header": self.row_header,
            "columns": self.columns,
            "rows": [
                {"label": lab, "cells": [c.to_json() for c in cells]} for lab, cells in self.rows
            ],
            "note": self.note,
        }

    def to_markdown(self) -> str:
        head = [self.row_header, *self.columns]
        lines = [f"### {self.title}", ""]
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "---|" * len(head))
        for label, cells in self.rows:
            lines.append("| " + " | ".join([label, *(c.text for c in cells)]) + " |")
        if self.note:
            lines += ["", self.note]
        return "\n".join(lines) + "\n"


def _arch_key(widths: tuple[int, ...]) -> tuple:
    # The lab's column order: one hidden layer before two, narrow before wide.
    return (len(widths), widths)


def _depth_label(depth: int) -> str:
    return f"{depth} hidden layer" + ("s" if depth != 1 else "")


def architecture_table(runs: list[Run], *, title: str, note: str = "") -> Table:
    """Best validation accuracy by depth (rows) x width (columns).

    Nets whose hidden layers differ in width go to a "mixed" column; more than 8 widths (a
    sampled range) are grouped by powers of two (32-63: widths 32 to 63).
    """
    nets = [r for r in runs if r.widths]
    uniform = {r.widths[0] for r in nets if len(set(r.widths)) == 1}
    binned = len(uniform) > 8

    def column(w: tuple[int, ...]) -> tuple[int, str]:
        if len(set(w)) > 1:
            return (1 << 30, "mixed")
        if not binned:
            return (w[0], str(w[0]))
        lo = 1 << (w[0].bit_length() - 1)
        return (lo, f"{lo}-{2 * lo - 1}")

    groups: dict[tuple[int, tuple[int, str]], Cell] = {}
    for r in nets:
        groups.setdefault((len(r.widths), column(r.widths)), Cell()).runs.append(r)
    columns = sorted({c for _, c in groups})
    depths = sorted({d for d, _ in groups})
    rows = [(_depth_label(d), [groups.get((d, c), Cell()) for c in columns]) for d in depths]
    return Table(title, "depth \\ width", [label for _, label in columns], rows, note)


def _factor_value(r: Run, factor: str) -> Any:
    if factor == "regularization":
        reg = r.hp.get("regularizer", "none")
        return ("none", 0.0) if reg == "none" else (reg, float(r.hp.get("reg_strength", 0.0)))
    return r.hp.get(factor)


def format_value(v: Any) -> str:
    if isinstance(v, tuple):  # (regularizer, strength)
        return "none" if v[0] == "none" else f"{v[0].upper()} @ {v[1]:.0e}"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def _is_round(v: Any) -> bool:
    """A value someone typed (0.26, 1e-4), not one a sampler drew (0.2631...)."""
    if isinstance(v, tuple):
        return _is_round(v[1])
    return not isinstance(v, float) or float(f"{v:.3g}") == v


def _row_key(v: Any, factor: str, *, binned: bool) -> tuple[Any, str]:
    """(sort key, label) of the table row a value goes to: the value itself, or when the
    values were sampled from a range, a decade (learning rate, strength) or a 0.1-wide bin."""
    if not binned:
        return (v, format_value(v))
    if isinstance(v, tuple):  # (regularizer, strength)
        if v[0] == "none" or v[1] <= 0:
            return ((v[0], -math.inf), v[0])
        k = math.floor(math.log10(v[1]))
        return ((v[0], k), f"{v[0].upper()} @ {10.0**k:.0e} - {10.0 ** (k + 1):.0e}")
    if isinstance(v, str):
        return (v, v)
    if factor == "learning_rate" and v > 0:
        k = math.floor(math.log10(v))
        return (k, f"{10.0**k:g} - {10.0 ** (k + 1):g}")
    b = min(math.floor(v * 10 + 1e-9), 9) / 10  # 1.0 joins 0.9 - 1.0
    return (b, f"{b:.1f} - {b + 0.1:.1f}")


def factor_table(
    runs: list[Run],
    factor: str,
    *,
    title: str,
    row_header: str,
    columns: list[tuple[int, ...]] | None = None,
    note: str = "",
) -> Table:
    """Best validation accuracy by one hyperparameter (rows) and architecture (columns).

    Many distinct values (a TPE study) are binned into ranges; many architectures are grouped
    by depth. Runs that lack the factor (momentum with Adam) are left out.
    """
    runs = [r for r in runs if _factor_value(r, factor) is not None and r.widths]
    if factor == "momentum":
        runs = [r for r in runs if r.hp.get("optimizer", "sgd") == "sgd"]
    archs = sorted({r.widths for r in runs}, key=_arch_key) if columns is None else columns
    by_depth = len(archs) > 8
    if by_depth:
        col_keys: list[Any] = sorted({len(r.widths) for r in runs})
        col_names = [_depth_label(d) for d in col_keys]
    else:
        col_keys = list(archs)
        col_names = ["x".join(map(str, (784, *w, 10))) for w in archs]

    values = {_factor_value(r, factor) for r in runs}
    binned = len(values) > MAX_ROWS or not all(_is_round(v) for v in values)
    keys = {v: _row_key(v, factor, binned=binned) for v in values}
    rows_sorted = sorted(set(keys.values()))
    row_index = {k: i for i, k in enumerate(rows_sorted)}
    labels = [label for _, label in rows_sorted]

    grid = [[Cell() for _ in col_keys] for _ in labels]
    col_index = {k: i for i, k in enumerate(col_keys)}
    for r in runs:
        key = len(r.widths) if by_depth else r.widths
        if key in col_index:
            grid[row_index[keys[_factor_value(r, factor)]]][col_index[key]].runs.append(r)
    rows = [
        (lab, cells) for lab, cells in zip(labels, grid, strict=True) if any(c.runs for c in cells)
    ]
    return Table(title, row_header, col_names, rows, note)


def study_tables(runs: list[Run]) -> list[Table]:
    """The architecture table and one table per hyperparameter that varies in the runs."""
    tables = [
        architecture_table(runs, title="Best validation accuracy by architecture (depth x width)")
    ]
    for title, factor in FACTORS:
        distinct = {_factor_value(r, factor) for r in runs} - {None}
        if len(distinct) > 1:
            tables.append(
                factor_table(
                    runs,
                    factor,
                    title=f"Best validation accuracy by {title.lower()}",
                    row_header=title,
                )
            )
    return tables
