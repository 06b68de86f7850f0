"""Where a study's epochs and seconds go: pruned against complete trials, the epoch each pruned
trial stopped at (Hyperband's rungs), the time per epoch by width and batch size and by
parameters and batch size, the time
outside training (model builds, the first epoch's graph tracing, validation passes, the rest of
each trial: sampling, pruning, storage, saving; and between trials), and the best
complete trial's validation value at times since the study's first trial started (what a
user stopping the study then would export; two studies of different speed compare at equal
time, not at equal trial count).

Reads a finished study (any fsearch storage), so it costs nothing to run on a study another
benchmark made (e.g. benchmarks.jobs keeps its databases with --keep DIR):

    .venv/bin/python -m benchmarks.epochs_spent --storage sqlite:///studies/fsearch.db \
        --study fashion-mnist-mlp
"""

from __future__ import annotations

import argparse
import statistics
from collections import Counter, defaultdict

from benchmarks.common import (
    epochs_seconds,
    finished,
    finished_by,
    markdown_table,
    trial_seconds,
    write_section,
)

BEST_AT_MINUTES = (5, 10, 15, 30, 60)


def best_by_minutes(
    trials, minutes=BEST_AT_MINUTES, *, maximize: bool = True
) -> dict[str, float | None]:
    """The best complete trial's value among those ended by each of `minutes` after the first
    trial's start, and at the study's end ("end"); None where none had ended. maximize False:
    the smallest (an RMSE study)."""
    pick = max if maximize else min
    done = [t for t in trials if t.state.name == "COMPLETE" and t.value is not None]
    started = [t.datetime_start for t in trials if t.datetime_start is not None]
    if not started:
        return {}
    t0 = min(started)
    out: dict[str, float | None] = {}
    for m in minutes:
        vals = [t.value for t in done if (t.datetime_complete - t0).total_seconds() <= 60 * m]
        out[f"{m} min"] = pick(vals) if vals else None
    out["end"] = pick((t.value for t in done), default=None)
    return out


def finished_by_minutes(trials, minutes=BEST_AT_MINUTES) -> dict[str, float]:
    """Trials finished (common.finished: complete or pruned) by each of `minutes` after the
    first trial's start, the count at the study's last end ("end") and that end's minute
    ("span min"): a stopped study's pace, counted as `benchmarks.jobs` counts its trials by
    10 and 30 minutes (common.finished_by; those from the command's start, seconds sooner)."""
    started = [t.datetime_start for t in trials if t.datetime_start is not None]
    done = finished(trials)
    if not started or not done:
        return {}
    t0 = min(started)
    out: dict[str, float] = dict(finished_by(done, t0, minutes))
    out["end"] = len(done)
    out["span min"] = max((t.datetime_complete - t0).total_seconds() for t in done) / 60
    return out


def first_trials_pace(trials) -> list[tuple[int, float]]:
    """(number, s/epoch) of each queued first trial (search/first_trials.py marks them with
    the user attribute `first_trial`) that logged its pace: the same configuration, data and
    seed in every study of a default, so across studies their s/epoch compares the machines
    (or sessions) the studies ran on, which the size buckets, mixing widths, cannot."""
    return [
        (t.number, float(t.user_attrs["sec_per_epoch"]))
        for t in sorted(trials, key=lambda t: t.number)
        if "first_trial" in t.user_attrs and t.user_attrs.get("sec_per_epoch")
    ]


# Trainable parameters: an epoch's multiply-adds follow them, whatever the batch size.
PARAMS_BUCKETS = ((300_000, "<0.3M"), (1_000_000, "0.3-1M"), (2_000_000, "1-2M"))


def params_bucket(hp: dict) -> str:
    """The size bucket of a trial's net (its stored `hyperparams`)."""
    from search.model import count_params
    from search.space import Hyperparams

    n = count_params(Hyperparams.from_dict(hp))
    return next((name for top, name in PARAMS_BUCKETS if n < top), ">=2M")


def analyse(trials, *, maximize: bool = True) -> dict:
    """Per outcome: trials, epochs, seconds; pruned trials' stop epochs; s/epoch by size."""
    by_state: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    stops: Counter[int] = Counter()
    reasons: Counter[str] = Counter()
    per_epoch: dict[tuple[str, int], list[float]] = defaultdict(list)
    per_params: dict[tuple[str, int], list[float]] = defaultdict(list)
    for t in trials:
        if t.datetime_complete is None or t.state.name in ("RUNNING", "WAITING"):
            continue
        epochs = int(t.user_attrs.get("epochs_run") or 0)
        row = by_state[t.state.name]
        row["trials"] += 1
        row["epochs"] += epochs
        row["seconds"] += trial_seconds(t)
        if t.state.name == "PRUNED" and epochs:
            stops[epochs] += 1
        reasons[str(t.user_attrs.get("end_reason") or t.state.name.lower())] += 1
        hp = t.user_attrs.get("hyperparams") or {}
        spe = t.user_attrs.get("sec_per_epoch")
        if hp and spe:
            width = max(hp["widths"])
            bucket = "<=64" if width <= 64 else "65-256" if width <= 256 else ">256"
            per_epoch[(bucket, int(hp["batch_size"]))].append(float(spe))
            per_params[(params_bucket(hp), int(hp["batch_size"]))].append(float(spe))
    return {
        "by_state": by_state,
        "stops": stops,
        "reasons": reasons,
        "per_epoch": per_epoch,
        "per_params": per_params,
        "best": best_by_minutes(trials, maximize=maximize),
        "finished": finished_by_minutes(trials),
        "first": first_trials_pace(trials),
        "split": time_split(trials),
    }


def time_split(trials) -> dict[str, float] | None:
    """Seconds of the finished trials by where they went, from the attributes each trial logs
    (search/objective.py): building the model, the first epoch's time beyond a later epoch's
    (graph tracing), the epochs' training and validation passes, and the rest of the trial
    (the sampler's suggestions, Hyperband's decisions, storage writes, saving the model).
    "between trials": the gaps from one trial's end to the next one's start, counted only
    where no two trials overlap (one worker). A trial without the attributes (a failed one)
    counts in the gaps only; None where no trial has them.
    benchmarks.study's `shares` gives the coarser split of a run it timed itself (tracing in
    training, the rest as one "other" against its wall time)."""
    done = [t for t in trials if t.datetime_complete is not None and t.datetime_start is not None]
    timed = [
        t
        for t in done
        if "build_seconds" in t.user_attrs
        and (not t.user_attrs.get("epochs_run") or t.user_attrs.get("first_epoch_seconds"))
    ]
    if not timed:
        return None
    out = dict.fromkeys(("build", "tracing", "training", "validation", "rest of trial"), 0.0)
    for t in timed:
        u = t.user_attrs
        n = int(u.get("epochs_run") or 0)
        first, steady = float(u.get("first_epoch_seconds") or 0), float(u["sec_per_epoch"] or 0)
        epochs = epochs_seconds(u)
        tracing = max(0.0, first - steady) if n > 1 else 0.0
        validation = float(u.get("val_seconds") or 0)
        out["build"] += float(u["build_seconds"])
        out["tracing"] += tracing
        out["validation"] += validation
        out["training"] += epochs - tracing - validation
        out["rest of trial"] += trial_seconds(t) - float(u["build_seconds"]) - epochs
    ordered = sorted(done, key=lambda t: t.datetime_start)
    gaps = [
        (b.datetime_start - a.datetime_complete).total_seconds()
        for a, b in zip(ordered, ordered[1:], strict=False)
    ]
    out["between trials"] = sum(gaps) if all(g >= 0 for g in gaps) else float("nan")
    return out


def summarize(a: dict, study: str) -> str:
    by_state, stops, per_epoch = a["by_state"], a["stops"], a["per_epoch"]
    total_e = sum(r["epochs"] for r in by_state.values()) or 1
    total_s = sum(r["seconds"] for r in by_state.values()) or 1
    rows = [
        [
            state.lower(),
            int(r["trials"]),
            int(r["epochs"]),
            f"{100 * r['epochs'] / total_e:.0f}%",
            f"{r['seconds'] / 60:.1f}",
            f"{100 * r['seconds'] / total_s:.0f}%",
        ]
        for state, r in sorted(by_state.items())
    ]
    text = f"Study `{study}`.\n\n" + markdown_table(
        ["outcome", "trials", "epochs", "share of epochs", "minutes", "share of time"], rows
    )
    text += "\n\nPruned trials by the epoch they stopped after: " + (
        ", ".join(f"{e}: {n}" for e, n in sorted(stops.items())) or "none"
    )
    reasons = a.get("reasons") or {}
    if reasons:
        # search/outcomes.END_REASON as the objective set it: "over budget" is a trial over
        # [study] max_params, pruned before it trained.
        text += "\n\nTrials by end reason: " + ", ".join(
            f"{r}: {n}" for r, n in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))
        )
    text += "\n\n" + markdown_table(
        ["widest layer", "batch", "trials", "median s/epoch"],
        [
            [w, b, len(v), f"{statistics.median(v):.2f}"]
            for (w, b), v in sorted(per_epoch.items(), key=lambda kv: (kv[0][1], kv[0][0]))
        ],
    )
    order = {name: i for i, (_, name) in enumerate(PARAMS_BUCKETS)}
    per_params = a.get("per_params") or {}
    if per_params:
        text += "\n\n" + markdown_table(
            ["parameters", "batch", "trials", "median s/epoch"],
            [
                [p, b, len(v), f"{statistics.median(v):.2f}"]
                for (p, b), v in sorted(
                    per_params.items(), key=lambda kv: (order.get(kv[0][0], 9), kv[0][1])
                )
            ],
        )
    split = a.get("split")
    if split:
        total = sum(v for v in split.values() if v == v) or 1
        text += "\n\n" + markdown_table(
            ["where the time went", "minutes", "share"],
            [
                [k, "-", "- (trials overlap: several workers)"]
                if v != v
                else [k, f"{v / 60:.1f}", f"{100 * v / total:.1f}%"]
                for k, v in split.items()
            ],
        )
    best = a.get("best") or {}
    if best:
        text += (
            "\n\nBest complete trial's validation value by minutes since the first trial "
            "started: "
            + ", ".join(f"{k}: {'-' if v is None else f'{v:.4f}'}" for k, v in best.items())
        )
    done = a.get("finished") or {}
    if done:
        marks = ", ".join(f"{k}: {int(v)}" for k, v in done.items() if k != "span min")
        text += (
            "\n\nTrials finished by minutes since the first trial started: "
            + marks
            + f" (the last ended {done['span min']:.1f} min after the first started)"
        )
    first = a.get("first") or []
    if first:
        text += "\n\nQueued first trials' own s/epoch: " + ", ".join(
            f"#{n} {spe:.2f}" for n, spe in first
        )
    return text


def main() -> None:
    import optuna

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--storage", required=True)
    ap.add_argument("--study", required=True)
    ap.add_argument("--section", default="epochs-spent")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=args.study, storage=args.storage)
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    body = summarize(analyse(study.get_trials(deepcopy=False), maximize=maximize), args.study)
    print(body)
    if not args.no_write:
        write_section(
            args.section,
            body,
            f"python -m benchmarks.epochs_spent --storage {args.storage} --study {args.study}"
            + (f" --section {args.section}" if args.section != "epochs-spent" else ""),
        )


if __name__ == "__main__":
    main()
