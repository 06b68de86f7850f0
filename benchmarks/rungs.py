"""Would a later rung cut epochs that buy nothing? A replay on finished studies (issue #23, item 3).

The default study's complete trials train all 12 epochs once Hyperband promoted them at its
1- and 4-epoch rungs, and they take about two thirds of a study's time (BENCHMARKS.md,
`epochs-spent-200`). This replays one more rung at epoch E, keeping 1/K of the trials that
reach it, over the complete trials of finished studies (their validation curves are whole, so
the replay needs no training):

    python -m benchmarks.rungs benchmarks/results/jobs-kept*/*.db --section rungs

A trial reaches the added rung at its start time plus its measured first epoch and steady
seconds per epoch; it goes on when its value at E is among the best 1/K of the values that
reached E before it, itself included: the rule of `[study] late_rung` (search/late_rung.py,
Optuna's successive halving with no bootstrap), which this measures before a study runs it.
Reported per rung: the epochs and training seconds it saves (share of the study's), in how
many studies the best complete trial (the one fsearch would select) and the 3 best (those
`fsearch run` exports) would still have finished, and the largest drop of the study's best
validation value. Only the direct effect: the saved time would have run more trials, and TPE
would have seen those trials as pruned; neither is replayed, so a rung that loses nothing here
still needs a 200-trial run to be adopted.
"""

from __future__ import annotations

import datetime as _dt
import math
import statistics

from benchmarks.common import epochs_seconds, markdown_table, replay_main, seconds_to_epoch
from search.late_rung import promotable

DEFAULT_RUNGS = ((6, 2), (8, 2), (10, 2), (8, 4))


def reach_time(t, epoch: int) -> _dt.datetime:
    """When a trial reported `epoch`: its start, build, first epoch and steady epochs after."""
    return t.datetime_start + _dt.timedelta(seconds=seconds_to_epoch(t.user_attrs, epoch))


def replay(trials, epoch: int, keep: int, *, top: int = 3, maximize: bool = True) -> dict:
    """What one added rung at `epoch` keeping 1/`keep` would have done to a study's trials.

    Every trial that reported `epoch` competes there, in the order it reached it; the rung
    stops only complete trials that trained past it and were not first trials (search/
    first_trials.py: never pruned). A trial the rung stops would have reported `epoch` all
    the same, so it stays among the competitors of later ones, as in the pruner."""
    reaching = [
        t
        for t in trials
        if t.datetime_start is not None
        and epoch in t.intermediate_values
        and not math.isnan(t.intermediate_values[epoch])
    ]
    finished = [t for t in trials if t.datetime_complete is not None]
    total_epochs = sum(int(t.user_attrs.get("epochs_run") or 0) for t in finished)
    total_seconds = sum(epochs_seconds(t.user_attrs) for t in finished)
    stopped, reached = [], []
    for t in sorted(reaching, key=lambda t: reach_time(t, epoch)):
        value = t.intermediate_values[epoch]
        reached.append(value)
        stoppable = (
            t.state.name == "COMPLETE"
            and max(t.intermediate_values) > epoch
            and "first_trial" not in t.user_attrs
        )
        if stoppable and not promotable(value, list(reached), keep, maximize=maximize):
            stopped.append(t)
    complete = [t for t in trials if t.state.name == "COMPLETE" and t.value is not None]
    ranked = sorted(complete, key=lambda t: t.value, reverse=maximize)
    gone = {t.number for t in stopped}
    kept = [t for t in ranked if t.number not in gone]
    saved_epochs = sum(max(t.intermediate_values) - epoch for t in stopped)
    saved_seconds = sum(
        float(t.user_attrs.get("sec_per_epoch") or 0) * (max(t.intermediate_values) - epoch)
        for t in stopped
    )
    return {
        "complete": len(complete),
        "stopped": len(stopped),
        "epochs saved": saved_epochs / (total_epochs or 1),
        "time saved": saved_seconds / (total_seconds or 1),
        "best kept": bool(ranked) and ranked[0].number not in gone,
        "top kept": sum(t.number not in gone for t in ranked[:top]),
        # How much worse the best complete trial left is (inf: none left).
        "best drop": (
            abs(ranked[0].value - kept[0].value) if kept else (math.inf if ranked else 0.0)
        ),
    }


def summarize(results: dict[str, list[dict]], names: list[str]) -> str:
    """One row per added rung over all studies; then each study's row per rung."""
    n = len(names)
    rows = []
    for rung, rs in results.items():
        rows.append(
            [
                rung,
                f"{statistics.median(r['stopped'] / (r['complete'] or 1) for r in rs):.0%}",
                f"{statistics.median(r['epochs saved'] for r in rs):.1%}",
                f"{statistics.median(r['time saved'] for r in rs):.1%}",
                f"{sum(r['best kept'] for r in rs)} of {n}",
                f"{statistics.median(r['top kept'] for r in rs):g} "
                f"(min {min(r['top kept'] for r in rs)})",
                f"{max(r['best drop'] for r in rs):.4f}",
            ]
        )
    text = (
        f"{n} finished studies ({', '.join(names)}). Medians over the studies; the saved "
        "shares are of all the study's epochs and epoch seconds (pruned trials included).\n\n"
    )
    text += markdown_table(
        [
            "added rung (epoch, keep 1/K)",
            "complete trials it stops",
            "epochs saved",
            "epoch time saved",
            "best trial still complete",
            "of the 3 best still complete",
            "largest loss of the best validation value",
        ],
        rows,
    )
    text += "\n\nPer study (stopped trials / complete; best kept; 3 best kept; drop):\n\n"
    text += markdown_table(
        ["study", *results],
        [
            [
                name,
                *(
                    f"{rs[i]['stopped']}/{rs[i]['complete']}; "
                    f"{'yes' if rs[i]['best kept'] else 'no'}; {rs[i]['top kept']}; "
                    f"{rs[i]['best drop']:.4f}"
                    for rs in results.values()
                ),
            ]
            for i, name in enumerate(names)
        ],
    )
    return text


def parse_rung(text: str) -> tuple[int, int]:
    epoch, keep = text.split("/")
    return int(epoch), int(keep)


def report(studies, names: list[str], rungs: list[tuple[int, int]]) -> str:
    results = {
        f"{e}, 1/{k}": [replay(trials, e, k, maximize=up) for trials, up in studies]
        for e, k in rungs
    }
    return summarize(results, names)


def main() -> None:
    replay_main(
        "rungs",
        __doc__,
        parse=parse_rung,
        default=DEFAULT_RUNGS,
        help="EPOCH/K: a rung at EPOCH keeping 1/K (default: 6/2 8/2 10/2 8/4)",
        fmt=lambda rung: f"{rung[0]}/{rung[1]}",
        report=report,
    )


if __name__ == "__main__":
    main()
