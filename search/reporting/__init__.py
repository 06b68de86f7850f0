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

One job per module, imports pointing one way: runs (trials as Runs) <- tables (cells and
tables) <- lab (the lab report's data and Tables 1-8); plots (the PNGs) and html (the page) use
runs and tables; this module writes the report from all of them.
"""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from search.errors import StudyError
from search.exporting import prepare_out_dir
from search.metrics import of_study
from search.reporting.html import page
from search.reporting.lab import LAB_BEST, LAB_QUOTED, LAB_STUDIES, lab_tables, with_lab_rows
from search.reporting.plots import PLOTS, TOP_CURVES, describe, draw_plots, view_study
from search.reporting.runs import Run, best_run, runs_of, state_counts
from search.reporting.tables import (
    Cell,
    Table,
    architecture_table,
    factor_table,
    study_tables,
)

if TYPE_CHECKING:
    import optuna

__all__ = [
    "LAB_BEST",
    "LAB_QUOTED",
    "LAB_STUDIES",
    "PLOTS",
    "TOP_CURVES",
    "Cell",
    "Report",
    "Run",
    "Table",
    "architecture_table",
    "describe",
    "draw_plots",
    "factor_table",
    "lab_tables",
    "runs_of",
    "state_counts",
    "study_tables",
    "view_study",
    "with_lab_rows",
    "write_report",
]


@dataclass
class Report:
    out: Path
    files: list[Path]
    counts: dict[str, int]
    best: Run | None
    tables: list[Table]
    studies: list[str]  # the reported studies' names, in the order given


def _budget(study: optuna.Study) -> int | None:
    config = study.user_attrs.get("fsearch:config")
    return (config or {}).get("study", {}).get("max_params") or None


def _selection_noise(study: optuna.Study, k: int, data_dir, log) -> dict | None:
    if k <= 0:
        return None
    from search.reseed import rank_agreement, reseed_top

    rows = reseed_top(study, k, data_dir=data_dir, log=log)
    return {"rows": rows, "rank_agreement": rank_agreement(rows)}


def write_report(
    studies: list[optuna.Study],
    out: Path,
    *,
    lab: bool = False,
    storage_masked: str = "",
    reseed: int = 0,
    data_dir: str | None = None,
    log=None,
) -> Report:
    """Write index.html, the PNG plots, tables.md and report.json for the studies into out.
    reseed=K: the first study's K best configurations trained again with another seed
    (search/reseed.py), beside their selection scores."""
    by_study = {s.study_name: runs_of(s) for s in studies}
    runs = [r for rs in by_study.values() for r in rs]
    if not runs:
        names = ", ".join(by_study)
        raise StudyError(f"no trials in {names} yet; run `fsearch run` first, then report")
    out = prepare_out_dir(out)
    counts = state_counts(runs)
    multi = len(studies) > 1
    metric = of_study(studies[0])
    budgets = {_budget(s) for s in studies}
    notes = draw_plots(
        runs,
        out,
        counts=counts,
        multi=multi,
        label=metric.label,
        budget=budgets.pop() if len(budgets) == 1 else None,
    )
    # The lab's tables already hold one factor at a time; the generic ones would mix studies.
    tables = lab_tables(by_study) if lab else study_tables(runs)
    best = best_run(runs)
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
        "metric": metric.label,
        "selection_noise": _selection_noise(studies[0], reseed, data_dir, log),
        "plots": {f: notes.get(f, "ok") for f, _ in PLOTS},
        "tables": [t.to_json() for t in tables],
    }
    (out / "report.json").write_text(json.dumps(meta, indent=2, default=str) + "\n")
    (out / "tables.md").write_text("\n".join(t.to_markdown() for t in tables))
    (out / "index.html").write_text(page(meta, tables, out, notes), encoding="utf-8")
    files = [out / "index.html", out / "tables.md", out / "report.json"]
    files += [out / f for f, _ in PLOTS]
    return Report(out, files, counts, best, tables, names)
