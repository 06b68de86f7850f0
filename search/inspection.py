"""Read a study back: per-trial rows, study summaries, the best trial, deleting a study.

Every function takes Optuna objects (storage, study) and returns plain dicts, so the CLI can
print them as a rich table, CSV or JSON and the report can build its tables from the same rows.
A trial's state is its outcome (search.outcomes): complete / pruned / diverged / failed /
running / waiting.
"""

from __future__ import annotations

import csv
import io
import json
from typing import TYPE_CHECKING, Any

from search.errors import StudyError
from search.metrics import ACCURACY, Metric, of_study
from search.outcomes import best_epoch_value, count_outcomes, outcome

if TYPE_CHECKING:
    import optuna
    from rich.table import Table

FORMATS = ("table", "csv", "json")
# Hyperparameters shown as their own columns, in the order of the lab report's tables.
HP_COLUMNS = (
    "optimizer",
    "learning_rate",
    "momentum",
    "regularizer",
    "reg_strength",
    "dropout",
    "batch_size",
)


def hyperparams(t: optuna.trial.FrozenTrial) -> dict[str, Any]:
    """Every hyperparameter of the trial, fixed ones included (trial.params holds only the
    suggested ones); falls back to trial.params for trials not made by fsearch."""
    hp = t.user_attrs.get("hyperparams")
    return dict(hp) if isinstance(hp, dict) else dict(t.params)


def trial_row(t: optuna.trial.FrozenTrial, metric: Metric = ACCURACY) -> dict[str, Any]:
    """One flat row per trial: what `fsearch trials` prints and the report tabulates."""
    hp = hyperparams(t)
    widths = hp.get("widths")
    ua = t.user_attrs
    value = best_epoch_value(t, metric)
    row: dict[str, Any] = {
        "trial": t.number,
        "state": outcome(t),
        "value": round(value, 6) if value is not None else None,
        "architecture": ua.get("architecture", ""),
        "layers": len(widths) if widths else hp.get("layers"),
        "n_params": ua.get("n_params"),
        "epochs_run": ua.get("epochs_run"),
        "best_epoch": ua.get("best_epoch"),
        "sec_per_epoch": ua.get("sec_per_epoch"),
    }
    for key in HP_COLUMNS:
        row[key] = hp.get(key)
    row["duration_s"] = round(t.duration.total_seconds(), 1) if t.duration else None
    return row


def _sort_key(row: dict[str, Any]) -> tuple:
    # Complete trials by value (as Optuna's best_trial), then pruned ones by their best epoch,
    # then trials without a value (diverged, failed, running), by number.
    v = row["value"]
    group = 0 if row["state"] == "complete" else 1 if v is not None else 2
    return (group, row["rank"], row["trial"])


def trial_rows(
    study: optuna.Study, *, top: int | None = None, states: tuple[str, ...] | None = None
) -> list[dict[str, Any]]:
    """Rows of the study's trials, best first; `top` keeps the first N, `states` filters."""
    metric = of_study(study)
    rows = [trial_row(t, metric) for t in study.get_trials(deepcopy=False)]
    if states:
        rows = [r for r in rows if r["state"] in states]
    rows.sort(key=lambda r: _sort_key({**r, "rank": metric.rank_key(r["value"])}))
    return rows[:top] if top is not None else rows


def study_rows(storage) -> list[dict[str, Any]]:
    """One row per study in the storage: trial counts by state, best value and trial, activity."""
    rows = []
    for fs in sorted(storage.get_all_studies(), key=lambda s: s.study_name):
        study_id = storage.get_study_id_from_name(fs.study_name)
        trials = storage.get_all_trials(study_id, deepcopy=False)
        counts = count_outcomes(trials)
        maximize = fs.direction.name != "MINIMIZE"
        best = max(
            (t for t in trials if outcome(t) == "complete" and t.value is not None),
            key=lambda t: t.value if maximize else -t.value,
            default=None,
        )
        times = [t.datetime_complete or t.datetime_start for t in trials]
        times = [x for x in times if x is not None]
        rows.append(
            {
                "study": fs.study_name,
                "trials": len(trials),
                **{k: counts[k] for k in ("complete", "pruned", "diverged", "failed", "running")},
                "best_value": round(best.value, 6) if best else None,
                "best_trial": best.number if best else None,
                "best_architecture": best.user_attrs.get("architecture") if best else None,
                # "running" while a trial is RUNNING (a crashed worker's trial stays so until
                # another worker's heartbeat check fails it), else idle.
                "state": "running" if counts["running"] else "idle",
                "last_activity": max(times).isoformat(timespec="seconds") if times else None,
            }
        )
    return rows


def best_trial(study: optuna.Study) -> dict[str, Any]:
    """The best complete trial: its value, all hyperparameters and metrics. Optuna's
    `study.best_trial`, as the run's summary and export pick it (the best feasible one under
    max_latency_ms): on a database one query, not the whole study (BENCHMARKS.md `scale`:
    reading 50,000 trials took 70 s and 2 GiB)."""
    from search.artifacts import kept_models
    from search.studies import best_trial as optuna_best

    t = optuna_best(study)
    if t is None:
        raise StudyError(
            f"study {study.study_name!r} has no completed trial yet; "
            f"run `fsearch run --study {study.study_name}` first"
        )
    kept = {e["trial"]: e["artifact_id"] for e in kept_models(study)}
    ua = t.user_attrs
    return {
        "study": study.study_name,
        "trial": t.number,
        "value": t.value,
        "architecture": ua.get("architecture"),
        "n_params": ua.get("n_params"),
        "hyperparams": hyperparams(t),
        "params": t.params,
        "best_epoch": ua.get("best_epoch"),
        "epochs_run": ua.get("epochs_run"),
        "sec_per_epoch": ua.get("sec_per_epoch"),
        "val_loss": ua.get("val_loss"),
        "learning_curve": [t.intermediate_values[k] for k in sorted(t.intermediate_values)],
        "duration_s": round(t.duration.total_seconds(), 1) if t.duration else None,
        "kept_model": kept.get(t.number),
    }


def delete_study(storage, name: str, artifact_store) -> int:
    """Delete the study and every artifact (kept model) uploaded to it or its trials.

    Returns how many artifact files were removed. Artifacts go first: if deleting them fails,
    the study still lists them and the command can be run again.
    """
    import optuna
    from optuna.artifacts import get_all_artifact_meta
    from optuna.artifacts.exceptions import ArtifactNotFound

    from search.artifacts import checked_id
    from search.studies import load_study

    study = load_study(storage, name)
    metas = list(get_all_artifact_meta(study))
    for t in study.get_trials(deepcopy=False):
        metas += get_all_artifact_meta(t, storage=storage)
    for meta in metas:  # all checked before anything is removed
        checked_id(meta.artifact_id)
    removed = 0
    for meta in metas:
        try:
            artifact_store.remove(meta.artifact_id)
            removed += 1
        except ArtifactNotFound:
            pass  # evicted when a better trial entered the top k
    optuna.delete_study(study_name=name, storage=storage)
    return removed


# ---------------------------------------------------------------------------- output formats


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def display_row(row: dict[str, Any]) -> dict[str, Any]:
    """A trial row made short for people: the columns that matter, values pre-formatted."""
    reg = row.get("regularizer")
    value = row["value"]
    return {
        "trial": row["trial"],
        "state": row["state"],
        "value": f"{value:.4f}" if value is not None else None,
        "architecture": row["architecture"],
        "epochs": f"{row['best_epoch'] or '-'}/{row['epochs_run'] or '-'}"
        if row.get("epochs_run")
        else None,
        "s/epoch": row["sec_per_epoch"],
        "optimizer": row["optimizer"],
        "lr": row["learning_rate"],
        "momentum": row["momentum"] if row["optimizer"] in (None, "sgd") else None,
        "regularizer": f"{reg} {row['reg_strength']:.0e}"
        if reg not in (None, "none") and row.get("reg_strength") is not None
        else reg,
        "dropout": row["dropout"],
        "batch": row["batch_size"],
    }


def to_csv(rows: list[dict[str, Any]]) -> str:
    """CSV with a header row; nested values (dicts, lists) as JSON."""
    if not rows:
        return ""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow(
            {
                k: json.dumps(v) if isinstance(v, (dict, list)) else ("" if v is None else v)
                for k, v in r.items()
            }
        )
    return buf.getvalue()


def to_json(data: Any) -> str:
    return json.dumps(data, indent=2, default=str)


def to_table(rows: list[dict[str, Any]], *, title: str | None = None) -> Table:
    """A rich table of flat rows (floats to 4 decimals, tiny ones in e-notation)."""
    from rich.table import Table

    table = Table(title=title, show_lines=False, header_style="bold")
    columns = list(rows[0]) if rows else []
    for c in columns:
        numeric = all(
            isinstance(r[c], (int, float)) and not isinstance(r[c], bool)
            for r in rows
            if r[c] is not None
        )
        table.add_column(c, justify="right" if numeric else "left")
    for r in rows:
        table.add_row(*(_cell(r[c]) for c in columns))
    return table


def key_value_rows(d: dict[str, Any], prefix: str = "") -> list[dict[str, Any]]:
    """A nested dict as (key, value) rows, for the table and CSV forms of `fsearch best`."""
    rows: list[dict[str, Any]] = []
    for k, v in d.items():
        if isinstance(v, dict):
            rows += key_value_rows(v, f"{prefix}{k}.")
        elif isinstance(v, list) and v and all(isinstance(x, float) for x in v):
            shown = [f"{x:.4f}" for x in v]
            if len(shown) > 10:  # a long learning curve: its start and its end
                shown = [*shown[:5], "...", *shown[-5:]]
            rows.append({"key": f"{prefix}{k}", "value": " ".join(shown)})
        else:
            rows.append({"key": f"{prefix}{k}", "value": v})
    return rows
