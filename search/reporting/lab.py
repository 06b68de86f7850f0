"""The lab report's data: the seed-lab studies, its best result, the numbers of its Tables 1-8
as it printed them, and those tables regenerated from the seed-lab studies with the lab's own
numbers in a "(lab)" row under each measured one.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from search.reporting.runs import Run
from search.reporting.tables import Cell, Table, architecture_table, factor_table, format_value

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
    by_label = {k if isinstance(k, str) else format_value(k): v for k, v in quoted.items()}
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
    # Over 60 lines: one flat entry per lab table, in its order; helpers above, data below.

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
