"""Would a parameter cap cut the big nets' time without losing the best? A replay (issue #23).

The default study's 200 trials miss 40 minutes on 2 cores because of its biggest nets: in
BENCHMARKS.md `epochs-xeon-quick-second-1` the nets of 2M parameters or more at batch 256
are 62 of its 169 trials, at a median 12.84 s/epoch, and training is 91.0% of its time. The study
config already has the tool to leave them out: `[study] max_params` prunes a trial whose net
is over it before it trains, and constrained TPE learns the boundary (search/config.py). This
replays caps over finished studies, from their stored trials only (nothing is trained):

    python -m benchmarks.caps benchmarks/results/jobs-kept*/jobs-*.db --section caps

For each cap: the share of the study's epoch seconds spent in trials over it (what it saves
directly), the share of trials over it, whether the study's best complete trial (the one
fsearch selects) and how many of the 3 best (those `fsearch run` exports) are within it,
and how much lower the best complete trial within it is than the study's best (validation).
Only the direct effect: the saved time would have run more trials, all within the cap,
and TPE would have learned the boundary; neither is replayed, so a cap that loses nothing
here still needs a 200-trial run, beside the same seed without it, to be adopted.
"""

from __future__ import annotations

import math
import statistics

from benchmarks.common import epochs_seconds, markdown_table, replay_main

DEFAULT_CAPS = (1_000_000, 1_500_000, 2_000_000, 3_000_000)


def params_of(t) -> int | None:
    """A trial's trainable parameters, as its objective stored them (None: it stored none,
    e.g. it failed before building its net); the export's max_params filter reads the same."""
    n = t.user_attrs.get("n_params")
    return int(n) if n is not None else None


def replay(trials, cap: int, *, top: int = 3, maximize: bool = True) -> dict:
    """What `[study] max_params = cap` would have left out of a finished study."""
    finished = [t for t in trials if t.datetime_complete is not None and params_of(t) is not None]
    over = [t for t in finished if params_of(t) > cap]
    total = sum(epochs_seconds(t.user_attrs) for t in finished)
    complete = [t for t in finished if t.state.name == "COMPLETE" and t.value is not None]
    ranked = sorted(complete, key=lambda t: t.value, reverse=maximize)
    within = [t for t in ranked if params_of(t) <= cap]
    return {
        "finished": len(finished),
        "over": len(over),
        "time saved": sum(epochs_seconds(t.user_attrs) for t in over) / (total or 1),
        "best within": bool(ranked) and params_of(ranked[0]) <= cap,
        "top within": sum(params_of(t) <= cap for t in ranked[:top]),
        # How much worse the best complete trial within the cap is (inf: none within).
        "best drop": (
            abs(ranked[0].value - within[0].value) if within else (math.inf if ranked else 0.0)
        ),
    }


def best_trial(trials, *, maximize: bool = True):
    complete = [t for t in trials if t.state.name == "COMPLETE" and t.value is not None]
    return (max if maximize else min)(complete, key=lambda t: t.value) if complete else None


def cap_label(cap: int) -> str:
    return f"{cap / 1e6:g}M"


def summarize(results: dict[int, list[dict]], names: list[str], bests: list) -> str:
    """One row per cap over all studies; then each study's best trial and row per cap."""
    n = len(names)
    rows = [
        [
            cap_label(cap),
            f"{statistics.median(r['over'] / (r['finished'] or 1) for r in rs):.0%}",
            f"{statistics.median(r['time saved'] for r in rs):.0%}",
            f"{sum(r['best within'] for r in rs)} of {n}",
            f"{statistics.median(r['top within'] for r in rs):g} "
            f"(min {min(r['top within'] for r in rs)})",
            f"{statistics.median(r['best drop'] for r in rs):.4f}",
            f"{max(r['best drop'] for r in rs):.4f}",
        ]
        for cap, rs in results.items()
    ]
    text = (
        f"{n} finished studies ({', '.join(names)}). Medians over the studies; the time saved "
        "is the share of the study's epoch seconds (build and validation excluded) in trials "
        "over the cap, pruned ones included.\n\n"
    )
    text += markdown_table(
        [
            "max_params",
            "trials over it",
            "epoch time over it",
            "best trial within it",
            "of the 3 best within it",
            "best value's loss, median",
            "best value's loss, largest",
        ],
        rows,
    )
    text += (
        "\n\nPer study: its best complete trial (validation value, parameters, net); then, per "
        "cap, trials over it / finished; time over it; best within; 3 best within; loss:\n\n"
    )
    text += markdown_table(
        ["study", "best trial", *(cap_label(c) for c in results)],
        [
            [
                name,
                (
                    f"{best.value:.4f}, {params_of(best) / 1e6:.2f}M, "
                    f"{best.user_attrs.get('architecture', '?')} bs "
                    f"{(best.user_attrs.get('hyperparams') or {}).get('batch_size', '?')}"
                    if best is not None
                    else "-"
                ),
                *(
                    f"{rs[i]['over']}/{rs[i]['finished']}; {rs[i]['time saved']:.0%}; "
                    f"{'yes' if rs[i]['best within'] else 'no'}; {rs[i]['top within']}; "
                    f"{rs[i]['best drop']:.4f}"
                    for rs in results.values()
                ),
            ]
            for i, (name, best) in enumerate(zip(names, bests, strict=True))
        ],
    )
    return text


def report(studies, names: list[str], caps: list[int]) -> str:
    results = {cap: [replay(trials, cap, maximize=up) for trials, up in studies] for cap in caps}
    bests = [best_trial(trials, maximize=up) for trials, up in studies]
    return summarize(results, names, bests)


def main() -> None:
    replay_main(
        "caps",
        __doc__,
        parse=int,
        default=DEFAULT_CAPS,
        help="parameter caps to replay (default: 1000000 1500000 2000000 3000000)",
        fmt=str,
        report=report,
    )


if __name__ == "__main__":
    main()
