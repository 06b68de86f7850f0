"""Study reports: PNG plots, tables in the lab report's format, one self-contained HTML page.

`write_report` reads finished studies and writes into one directory:
  index.html   the whole report; plots embedded as base64 PNG, so it works offline and alone
  *.png        each plot as a file (optimization history, importances, parallel coordinates,
               learning rate vs momentum, learning curves of the top trials, trial states)
  tables.md    the tables as Markdown
  report.json  counts, best trial and tables, for scripts and tests

Tables give the best validation accuracy (the best epoch's, the study's objective) of every
group of runs. A run whose loss became NaN is shown as "diverged", and a finished run that
learned nothing as "0.1000 (chance)": the lab report wrote both kinds as "0.1".

Several studies can be combined (`fsearch report --study A --study B`); `--lab` combines the
seed-lab grid studies and adds the lab's Tables 1-8, one factor at a time.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
import math
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from search.errors import StudyError
from search.export import prepare_out_dir
from search.inspection import HP_COLUMNS, STATES, hyperparams, trial_state, trial_value

if TYPE_CHECKING:
    import optuna

# The seed-lab studies (studies/seed-lab-*.toml) in the order of the lab report's tables.
LAB_STUDIES = (
    "seed-lab-architecture",
    "seed-lab-learning-rate",
    "seed-lab-momentum",
    "seed-lab-regularization",
    "seed-lab-dropout",
)
# The lab's best: 784x64x64x10, SGD lr 0.1, momentum 0, 10 epochs, read off the *test* set.
LAB_BEST = {"architecture": "784x64x64x10", "accuracy": 0.875}
TOP_CURVES = 8  # learning curves drawn in learning-curves.png
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

PLOTS = (
    ("optimization-history.png", "Optimization history"),
    ("param-importances.png", "Hyperparameter importances"),
    ("parallel-coordinate.png", "Parallel coordinates"),
    ("lr-momentum.png", "Learning rate vs momentum (SGD runs)"),
    ("learning-curves.png", "Learning curves of the top trials"),
    ("trial-states.png", "Trials by end state"),
)


# ---------------------------------------------------------------------------- runs


@dataclass(frozen=True)
class Run:
    """One trial, flattened: the unit every table and plot counts."""

    study: str
    trial: int
    state: str  # complete / pruned / diverged / failed / running / waiting
    value: float | None
    hp: dict[str, Any]
    architecture: str
    curve: tuple[float, ...]  # validation accuracy per epoch
    started: _dt.datetime | None = None

    @property
    def widths(self) -> tuple[int, ...]:
        w = self.hp.get("widths")
        if w:
            return tuple(w)
        parts = self.architecture.split("x")
        return tuple(int(p) for p in parts[1:-1]) if len(parts) > 2 else ()


def runs_of(study: optuna.Study) -> list[Run]:
    """Every trial of the study as a Run."""
    runs = []
    for t in study.get_trials(deepcopy=False):
        curve = tuple(t.intermediate_values[k] for k in sorted(t.intermediate_values))
        runs.append(
            Run(
                study=study.study_name,
                trial=t.number,
                state=trial_state(t),
                value=trial_value(t),
                hp=hyperparams(t),
                architecture=str(t.user_attrs.get("architecture", "")),
                curve=curve,
                started=t.datetime_start,
            )
        )
    return runs


# ---------------------------------------------------------------------------- tables


@dataclass
class Cell:
    """A group of runs summarised: the best complete value, and how the others ended."""

    runs: list[Run] = field(default_factory=list)
    fixed: str | None = None  # a quoted value (the lab report's), not computed from runs

    @property
    def best(self) -> float | None:
        values = [r.value for r in self.runs if r.state == "complete" and r.value is not None]
        return max(values) if values else None

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
            chance = " (chance)" if self.best < CHANCE else ""
            return f"{self.best:.4f}{chance}" + (f" ({diverged} diverged)" if diverged else "")
        if diverged:
            return "diverged"
        # No complete run and none diverged: pruned, failed or still running.
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
            **{s: self.count(s) for s in STATES if self.count(s)},
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


def _format_value(v: Any) -> str:
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
        return (v, _format_value(v))
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


# The lab's six architectures, in the order of its tables.
LAB_ARCHS = [(16,), (32,), (64,), (16, 16), (32, 32), (64, 64)]
_SIX = ("784x16x10", "784x32x10", "784x64x10", "784x16x16x10", "784x32x32x10", "784x64x64x10")
_THREE = ("784x16x10", "784x32x32x10", "784x64x10")  # the lab's Tables 4, 5 and 7


def _quote(archs: tuple[str, ...], *values: float | None) -> dict[str, float]:
    return {a: v for a, v in zip(archs, values, strict=True) if v is not None}


# The lab report's numbers, transcribed from its Tables 1-8 (None: the lab did not run it).
# Its 0.1 entries are runs that learned nothing: chance level, whether or not the loss went NaN.
LAB_QUOTED: dict[int, dict[Any, dict[str, float]]] = {
    1: {
        "1 hidden layer": {"16": 0.8482, "32": 0.8579, "64": 0.8624},
        "2 hidden layers": {"16": 0.8566, "32": 0.8568, "64": 0.875},
    },
    2: {
        0.1: _quote(_SIX, 0.8482, 0.8579, 0.8624, 0.8566, 0.8568, 0.875),
        0.2: _quote(_SIX, 0.8554, 0.1, 0.8645, 0.1, 0.1, 0.8647),
        0.3: _quote(_SIX, 0.832, None, 0.1, None, None, 0.1),
    },
    3: {
        0.1: _quote(_SIX, 0.8526, 0.8622, 0.8654, 0.8463, 0.8559, 0.8691),
        0.2: _quote(_SIX, 0.8478, 0.8518, 0.8643, 0.8406, 0.8611, 0.1),
        0.3: _quote(_SIX, 0.8463, 0.8503, 0.8692, 0.1, 0.8572, None),
        0.4: _quote(_SIX, 0.8479, 0.8593, 0.8704, None, 0.8635, None),
        0.5: _quote(_THREE, 0.8526, 0.8702, 0.8738),
        0.6: _quote(_THREE, 0.8542, 0.8671, 0.8735),
        0.7: _quote(_THREE, 0.8512, 0.1, 0.8678),
        0.8: _quote(_THREE, 0.8531, None, 0.8672),
        0.9: _quote(_THREE, 0.8389, None, 0.8530),
        1.0: _quote(_THREE, 0.1702, None, 0.2390),
    },
    4: {
        1e-3: _quote(_THREE, 0.8214, 0.7956, 0.7961),
        1e-4: _quote(_THREE, 0.8504, 0.8533, 0.8596),
        1e-5: _quote(_THREE, 0.8485, 0.8438, 0.8576),
    },
    5: {
        1e-3: _quote(_THREE, 0.8373, 0.8309, 0.8486),
        1e-4: _quote(_THREE, 0.8363, 0.8596, 0.8641),
        1e-5: _quote(_THREE, 0.8501, 0.8441, 0.8445),
    },
    6: {
        ("l1", 1e-4): _quote(_SIX, 0.8504, 0.8505, 0.8596, 0.8401, 0.8533, 0.8686),
        ("l2", 1e-4): _quote(_SIX, 0.8363, 0.8635, 0.8641, 0.8514, 0.8596, 0.8648),
    },
    7: {
        0.2: _quote(_THREE, 0.84, 0.8509, 0.8541),
        0.3: _quote(_THREE, 0.8301, 0.8365, 0.8571),
        0.4: _quote(_THREE, 0.8225, 0.8355, 0.8560),
        0.5: _quote(_THREE, 0.8093, 0.8115, 0.8543),
    },
    8: {0.26: _quote(_SIX, 0.8346, 0.8519, 0.8654, 0.8123, 0.8371, 0.8551)},
}


def with_lab_rows(table: Table, quoted: dict[Any, dict[str, float]]) -> Table:
    """The table with the lab's own numbers in a "(lab)" row under each measured row."""
    by_label = {k if isinstance(k, str) else _format_value(k): v for k, v in quoted.items()}
    rows: list[tuple[str, list[Cell]]] = []
    for label, cells in table.rows:
        rows.append((label, cells))
        lab = by_label.get(label)
        if lab:
            rows.append(
                (
                    f"{label} (lab)",
                    [Cell(fixed=f"{lab[c]:g}" if c in lab else "") for c in table.columns],
                )
            )
    if not table.rows:  # not run yet: still show what the lab measured
        for label, lab in by_label.items():
            rows.append(
                (
                    f"{label} (lab)",
                    [Cell(fixed=f"{lab[c]:g}" if c in lab else "") for c in table.columns],
                )
            )
    note = " ".join(
        x
        for x in (
            table.note,
            "(lab) rows: the lab report's numbers, which it read off the test set; "
            "its 0.1 entries are runs that learned nothing (chance level).",
        )
        if x
    )
    return Table(table.title, table.row_header, table.columns, rows, note)


def lab_tables(by_study: dict[str, list[Run]]) -> list[Table]:
    """The lab report's Tables 1-8 regenerated from the seed-lab studies' runs."""

    def runs(name: str, keep: Callable[[Run], bool] = lambda r: True) -> list[Run]:
        return [r for r in by_study.get(name, []) if keep(r)]

    def missing(name: str) -> str:
        if by_study.get(name):
            return ""
        return f"Not run yet: fsearch run --config studies/{name}.toml"

    def reg(kind: str):
        return lambda r: r.hp.get("regularizer") == kind

    def strength(value: float):
        return lambda r: math.isclose(float(r.hp.get("reg_strength", 0.0)), value)

    def table(n: int, title: str, study: str, factor: str, header: str, keep=lambda r: True):
        return factor_table(
            runs(study, keep),
            factor,
            title=f"Table {n}: {title}",
            row_header=header,
            columns=LAB_ARCHS,
            note=missing(study),
        )

    arch = "seed-lab-architecture"
    tables = [
        architecture_table(
            runs(arch),
            title="Table 1: Comparison of several architectures (SGD, lr 0.1, momentum 0)",
            note=missing(arch),
        ),
        table(2, "Learning rate", "seed-lab-learning-rate", "learning_rate", "Learning rate"),
        table(3, "Momentum (lr 0.1)", "seed-lab-momentum", "momentum", "Momentum"),
        table(
            4,
            "L1 regularization",
            "seed-lab-regularization",
            "reg_strength",
            "L1 strength",
            reg("l1"),
        ),
        table(
            5,
            "L2 regularization",
            "seed-lab-regularization",
            "reg_strength",
            "L2 strength",
            reg("l2"),
        ),
        table(
            6,
            "L1 / L2 regularization at 1e-4",
            "seed-lab-regularization",
            "regularization",
            "Regularizer",
            strength(1e-4),
        ),
        table(
            7,
            "Dropout rate 0.2 to 0.5",
            "seed-lab-dropout",
            "dropout",
            "Dropout rate",
            lambda r: not math.isclose(r.hp.get("dropout", 0.0), 0.26),
        ),
        table(
            8,
            "Dropout rate 0.26",
            "seed-lab-dropout",
            "dropout",
            "Dropout rate",
            lambda r: math.isclose(r.hp.get("dropout", 0.0), 0.26),
        ),
    ]
    return [with_lab_rows(t, LAB_QUOTED[n]) for n, t in enumerate(tables, start=1)]


# ---------------------------------------------------------------------------- plots


def view_study(runs: list[Run]) -> optuna.Study:
    """An in-memory study of the runs whose params are *all* hyperparameters that vary.

    Optuna's plots read trial.params, which holds only suggested values: fixed ones are
    missing and grid studies of different factors share no params. Rebuilding the trials from
    the stored hyperparameters lets every plot see learning rate, momentum, etc. everywhere.
    `width` is the first hidden layer's width.
    """
    import optuna
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )
    from optuna.trial import TrialState, create_trial

    def params_of(r: Run) -> dict[str, Any]:
        p = {k: v for k, v in r.hp.items() if k not in ("widths", "epochs")}
        if r.widths:
            p["layers"], p["width"] = len(r.widths), r.widths[0]
        return {k: v for k, v in p.items() if isinstance(v, (int, float, str))}

    done = [r for r in runs if r.state in ("complete", "pruned", "diverged", "failed")]
    done.sort(key=lambda r: (r.started or _dt.datetime.min, r.study, r.trial))
    all_params = [params_of(r) for r in done]
    keys = sorted({k for p in all_params for k in p})
    dists: dict[str, Any] = {}
    for k in keys:
        vals = {p[k] for p in all_params if k in p}
        if len(vals) < 2:
            continue  # a constant tells the plots nothing
        if all(isinstance(v, str) for v in vals):
            dists[k] = CategoricalDistribution(sorted(vals))
        elif all(isinstance(v, int) and not isinstance(v, bool) for v in vals):
            dists[k] = IntDistribution(min(vals), max(vals), log=k == "width")
        elif all(isinstance(v, (int, float)) for v in vals):
            lo, hi = float(min(vals)), float(max(vals))
            dists[k] = FloatDistribution(lo, hi, log=k == "learning_rate" and lo > 0)
    state_of = {
        "complete": TrialState.COMPLETE,
        "pruned": TrialState.PRUNED,
        "diverged": TrialState.PRUNED,
        "failed": TrialState.FAIL,
    }
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    view = optuna.create_study(direction="maximize", study_name="report")
    for r, p in zip(done, all_params, strict=True):
        params = {
            k: float(v) if isinstance(dists[k], FloatDistribution) else v
            for k, v in p.items()
            if k in dists
        }
        view.add_trial(
            create_trial(
                state=state_of[r.state],
                value=r.value if r.state == "complete" else None,
                params=params,
                distributions={k: dists[k] for k in params},
                intermediate_values={i + 1: v for i, v in enumerate(r.curve) if math.isfinite(v)},
                user_attrs={"study": r.study, "trial": r.trial, "state": r.state},
            )
        )
    return view


def _figure(plot: Callable[[], Any]):
    """Run an Optuna matplotlib plot and return its figure."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ExperimentalWarning on every optuna.visualization call
        ax = plot()
    if hasattr(ax, "flat"):  # an array of axes
        ax = ax.flat[0]
    return ax.figure


def _placeholder(title: str, reason: str):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3))
    ax.set_axis_off()
    ax.set_title(title)
    ax.text(0.5, 0.5, reason, ha="center", va="center", wrap=True, fontsize=11, color="0.3")
    return fig


def _plot_lr_momentum(runs: list[Run]):
    """One marker per (learning rate, momentum) point: colour = the best run there, red x =
    some run there diverged; grids put several architectures on one point."""
    import matplotlib.pyplot as plt

    # A running trial's hyperparameters are not stored yet (only its suggested params).
    sgd = [
        r
        for r in runs
        if r.hp.get("optimizer", "sgd") == "sgd" and "momentum" in r.hp and "learning_rate" in r.hp
    ]
    if not sgd:
        raise ValueError("no SGD runs: momentum only applies to SGD")
    points: dict[tuple[float, float], list[Run]] = {}
    for r in sgd:
        points.setdefault((r.hp["learning_rate"], r.hp["momentum"]), []).append(r)
    fig, ax = plt.subplots(figsize=(8, 5))
    best = {p: Cell(rs).best for p, rs in points.items()}
    done = [p for p, v in best.items() if v is not None]
    if done:
        sc = ax.scatter(
            [p[0] for p in done],
            [p[1] for p in done],
            c=[best[p] for p in done],
            cmap="viridis",
            # Contrast among the good runs; runs that learned nothing all get the darkest.
            vmin=max(min(best[p] for p in done), max(best[p] for p in done) - 0.08),
            s=70,
            edgecolors="k",
            linewidths=0.4,
            zorder=2,
        )
        fig.colorbar(sc, ax=ax, label="best validation accuracy at the point")
        if len(done) <= 40:  # a grid: write the numbers too
            for p in done:
                ax.annotate(
                    f"{best[p]:.3f}", p, textcoords="offset points", xytext=(6, 4), fontsize=8
                )
    for state, style in (
        ("diverged", {"marker": "x", "c": "red", "s": 90, "zorder": 3}),
        ("failed", {"marker": "s", "c": "black", "s": 30, "zorder": 3}),
    ):
        hit = {p: sum(r.state == state for r in rs) for p, rs in points.items()}
        hit = {p: n for p, n in hit.items() if n}
        if hit:
            ax.scatter(
                [p[0] for p in hit],
                [p[1] for p in hit],
                label=f"{state} ({sum(hit.values())} runs)",
                **style,
            )
    lrs = [p[0] for p in points]
    if min(lrs) > 0 and max(lrs) / min(lrs) > 5:
        ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("momentum")
    ax.set_title(f"Learning rate vs momentum ({len(sgd)} SGD runs at {len(points)} points)")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best")
    return fig


def describe(r: Run) -> str:
    """Architecture and the hyperparameters that are not the lab's baseline, in a few words."""
    hp = r.hp
    parts = [r.architecture]
    if hp.get("optimizer", "sgd") != "sgd":
        parts.append(str(hp["optimizer"]))
    if "learning_rate" in hp:
        parts.append(f"lr {hp['learning_rate']:.3g}")
    if hp.get("momentum"):
        parts.append(f"mom {hp['momentum']:.2g}")
    if hp.get("regularizer", "none") != "none":
        parts.append(f"{hp['regularizer']} {hp.get('reg_strength', 0):.0e}")
    if hp.get("dropout"):
        parts.append(f"drop {hp['dropout']:.2g}")
    return " ".join(parts)


def _plot_curves(runs: list[Run], *, top: int, multi: bool):
    import matplotlib.pyplot as plt

    best = sorted(
        (r for r in runs if r.state == "complete" and r.curve), key=lambda r: -(r.value or 0)
    )[:top]
    if not best:
        raise ValueError("no completed trial yet")
    fig, ax = plt.subplots(figsize=(8, 5))
    for r in best:
        name = f"{r.study} #{r.trial}" if multi else f"#{r.trial}"
        ax.plot(
            range(1, len(r.curve) + 1),
            r.curve,
            marker="o",
            markersize=3,
            label=f"{r.value:.4f} {describe(r)} ({name})",
        )
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation accuracy")
    ax.set_title(f"Learning curves of the top {len(best)} trials")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return fig


def _plot_states(counts: dict[str, int]):
    import matplotlib.pyplot as plt

    shown = ["complete", "pruned", "diverged", "failed"] + [
        s for s in ("running", "waiting") if counts.get(s)
    ]
    colors = {"complete": "tab:green", "pruned": "tab:gray", "diverged": "tab:red"}
    fig, ax = plt.subplots(figsize=(7, 3.5))
    bars = ax.bar(
        shown, [counts.get(s, 0) for s in shown], color=[colors.get(s, "tab:blue") for s in shown]
    )
    ax.bar_label(bars)
    ax.set_ylabel("trials")
    ax.set_title(f"Trials by end state ({sum(counts.values())} in all)")
    ax.margins(y=0.15)
    return fig


def draw_plots(runs: list[Run], out: Path, *, counts: dict[str, int], multi: bool) -> dict:
    """Write every PNG of PLOTS; a plot that cannot be drawn becomes a figure saying why."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display, no GUI toolkit
    import matplotlib.pyplot as plt
    import optuna.visualization.matplotlib as ovm

    view = view_study(runs)
    makers: dict[str, Callable[[], Any]] = {
        "optimization-history.png": lambda: _figure(lambda: ovm.plot_optimization_history(view)),
        "param-importances.png": lambda: _figure(lambda: ovm.plot_param_importances(view)),
        "parallel-coordinate.png": lambda: _figure(lambda: ovm.plot_parallel_coordinate(view)),
        "lr-momentum.png": lambda: _plot_lr_momentum(runs),
        "learning-curves.png": lambda: _plot_curves(runs, top=TOP_CURVES, multi=multi),
        "trial-states.png": lambda: _plot_states(counts),
    }
    notes = {}
    for filename, title in PLOTS:
        try:
            fig = makers[filename]()
        except Exception as e:  # noqa: BLE001 - one plot must not sink the report; say why
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            notes[filename] = f"not drawn: {reason}"
            fig = _placeholder(title, notes[filename])
        if filename == "parallel-coordinate.png":
            fig.set_size_inches(12, 6)  # one axis per hyperparameter: give the labels room
        fig.savefig(out / filename, dpi=90, bbox_inches="tight")
        plt.close(fig)
    return notes


# ---------------------------------------------------------------------------- the report


@dataclass
class Report:
    out: Path
    files: list[Path]
    counts: dict[str, int]
    best: Run | None
    tables: list[Table]


def _best(runs: Iterable[Run]) -> Run | None:
    done = [r for r in runs if r.state == "complete" and r.value is not None]
    return max(done, key=lambda r: r.value) if done else None


def write_report(
    studies: list[optuna.Study], out: Path, *, lab: bool = False, storage_masked: str = ""
) -> Report:
    """Write index.html, the PNG plots, tables.md and report.json for the studies into out."""
    by_study = {s.study_name: runs_of(s) for s in studies}
    runs = [r for rs in by_study.values() for r in rs]
    if not runs:
        names = ", ".join(by_study)
        raise StudyError(f"no trials in {names} yet; run `fsearch run` first, then report")
    out = prepare_out_dir(out)
    counts = state_counts_of(runs)
    multi = len(studies) > 1
    notes = draw_plots(runs, out, counts=counts, multi=multi)
    # The lab's tables already hold one factor at a time; the generic ones would mix studies.
    tables = lab_tables(by_study) if lab else study_tables(runs)
    best = _best(runs)
    names = list(by_study)
    meta = {
        "studies": names,
        "storage": storage_masked,
        "generated": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "counts": counts,
        "best": None
        if best is None
        else {
            "study": best.study,
            "trial": best.trial,
            "value": best.value,
            "architecture": best.architecture,
            "hyperparams": best.hp,
        },
        "lab_best": LAB_BEST if lab else None,
        "plots": {f: notes.get(f, "ok") for f, _ in PLOTS},
        "tables": [t.to_json() for t in tables],
    }
    (out / "report.json").write_text(json.dumps(meta, indent=2, default=str) + "\n")
    (out / "tables.md").write_text("\n".join(t.to_markdown() for t in tables))
    (out / "index.html").write_text(_html(meta, tables, out, notes), encoding="utf-8")
    files = [out / "index.html", out / "tables.md", out / "report.json"]
    files += [out / f for f, _ in PLOTS]
    return Report(out, files, counts, best, tables)


def state_counts_of(runs: list[Run]) -> dict[str, int]:
    counts = dict.fromkeys(STATES, 0)
    for r in runs:
        counts[r.state] += 1
    return counts


_CSS = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th:first-child,td:first-child{text-align:left}
th{background:#f3f3f3} td.diverged{color:#b00} td.none{color:#999}
td.lab{color:#777;font-style:italic}
img{max-width:100%;border:1px solid #ddd} .note{color:#555;font-size:.9em}
figure{margin:1.5em 0} figcaption{font-weight:bold;margin-bottom:.3em}
"""


def _esc(v: Any) -> str:
    return html.escape(str(v))


def _html_table(t: Table) -> str:
    head = "".join(f"<th>{_esc(c)}</th>" for c in [t.row_header, *t.columns])
    body = []
    for label, cells in t.rows:
        tds = []
        for c in cells:
            cls = (
                "lab"
                if c.fixed is not None
                else "diverged"
                if c.text == "diverged"
                else "none"
                if c.text == "-"
                else ""
            )
            tds.append(f'<td class="{cls}">{_esc(c.text)}</td>')
        body.append(f"<tr><td>{_esc(label)}</td>{''.join(tds)}</tr>")
    note = f'<p class="note">{_esc(t.note)}</p>' if t.note else ""
    return f"<h3>{_esc(t.title)}</h3><table><tr>{head}</tr>{''.join(body)}</table>{note}"


def _html(meta: dict[str, Any], tables: list[Table], out: Path, notes: dict[str, str]) -> str:
    """The report page. Images are embedded as data: URIs (the page works alone and offline)
    and link to their PNG files beside it; nothing is loaded from the network."""
    c = meta["counts"]
    summary = ", ".join(f"{c[s]} {s}" for s in STATES if c[s] or s in ("complete", "diverged"))
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>fsearch report: {_esc(', '.join(meta['studies']))}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>fsearch report: {_esc(', '.join(meta['studies']))}</h1>",
        f"<p>{sum(c.values())} trials: {_esc(summary)}. Storage {_esc(meta['storage'])}; "
        f"generated {_esc(meta['generated'])}.</p>",
    ]
    best = meta["best"]
    if best:
        hp = best["hyperparams"]
        keys = (*HP_COLUMNS, "epochs")
        desc = ", ".join(f"{k} {hp[k]}" for k in keys if k in hp)
        parts.append(
            f"<h2>Best trial</h2><p><b>{best['value']:.4f}</b> validation accuracy: "
            f"{_esc(best['study'])} trial #{best['trial']}, {_esc(best['architecture'])} "
            f"({_esc(desc)}).</p>"
        )
        if meta.get("lab_best"):
            lb = meta["lab_best"]
            parts.append(
                f"<p>The lab report's best: <b>{lb['accuracy']}</b> with {lb['architecture']}, "
                "selected on the test set (here: the held-out validation split; the test set "
                "stays unseen until <code>fsearch export</code>).</p>"
            )
    parts.append("<h2>Plots</h2>")
    for filename, title in PLOTS:
        data = base64.b64encode((out / filename).read_bytes()).decode("ascii")
        note = f'<p class="note">{_esc(notes[filename])}</p>' if filename in notes else ""
        parts.append(
            f"<figure><figcaption>{_esc(title)}</figcaption>"
            f'<a href="{filename}"><img alt="{_esc(title)}" src="data:image/png;base64,{data}">'
            f"</a>{note}</figure>"
        )
    parts.append(
        "<h2>Tables</h2><p class='note'>Best validation accuracy (best epoch) of the runs in "
        "each cell; <span style='color:#b00'>diverged</span>: the loss became NaN; "
        "(chance): finished, but learned nothing (the lab report wrote both as 0.1); "
        "'-': no run.</p>"
    )
    parts += [_html_table(t) for t in tables]
    parts.append("</body></html>\n")
    return "\n".join(parts)
