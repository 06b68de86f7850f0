"""What one TPE suggestion costs as a study grows, and where the time goes (issue #24).

The default study's sampler (runner.make_sampler's TPE: multivariate, group, constant liar)
and space (space.suggest), on an in-memory study holding N finished trials (a quarter
complete, the rest pruned after 1 or 4 epochs, as the default study's trials end), so the
database is out of the measurement: this is the sampler's own CPU time per trial, which
every worker pays before each trial. Per N: the median seconds of ask + suggest over
--repeats new trials (each told FAIL, so the history stays N), with constant_liar on (the
default) and off, with `tpe_window = --window` (search/tpe_window.py), and cProfile's top
functions for the default.

    .venv/bin/python -m benchmarks.tpe_cost [--sizes 1000,5000,20000] [--repeats 5]
                                            [--window 2000] [--no-write]
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import io
import os
import pstats
import statistics
import time

from benchmarks.common import markdown_table, write_section


def history(n: int, config, seed: int = 0) -> list:
    """n finished trials of the config's space: random points, complete or pruned."""
    import numpy as np
    import optuna
    from optuna.trial import TrialState

    from search.space import distributions, suggest

    rng = np.random.default_rng(seed)
    sampler = optuna.samplers.RandomSampler(seed=seed)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    dists = distributions(config)
    out = []
    for i in range(n):
        t = study.ask()
        suggest(t, config)
        params = {k: v for k, v in t.params.items()}
        study.tell(t, state=TrialState.FAIL)
        complete = rng.random() < 0.25
        epochs = 12 if complete else int(rng.choice([1, 4]))
        curve = {e: float(0.8 + 0.1 * rng.random()) for e in range(1, epochs + 1)}
        out.append(
            optuna.trial.create_trial(
                params=params,
                distributions={k: dists[k] for k in params},
                value=max(curve.values()) if complete else None,
                state=TrialState.COMPLETE if complete else TrialState.PRUNED,
                intermediate_values=curve,
            )
        )
        if i % 5000 == 4999:
            print(f"  history: {i + 1:,} trials made", flush=True)
    return out


def per_suggestion(
    trials: list, config, *, liar: bool, repeats: int, profile: bool, window: int = 0
):
    import optuna
    from optuna.trial import TrialState

    from search.runner import make_sampler
    from search.space import suggest

    # The default study's own sampler, with the window and constant_liar as measured.
    settings = dataclasses.replace(config.study, tpe_window=window)
    sampler = make_sampler(settings, seed=1, constant_liar=liar)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.add_trials(trials)
    times, prof = [], cProfile.Profile() if profile else None
    for _ in range(repeats):
        t0 = time.perf_counter()
        if prof:
            prof.enable()
        t = study.ask()
        suggest(t, config)
        if prof:
            prof.disable()
        times.append(time.perf_counter() - t0)
        study.tell(t, state=TrialState.FAIL)
    top = ""
    if prof:
        s = io.StringIO()
        pstats.Stats(prof, stream=s).sort_stats("cumulative").print_stats(12)
        top = s.getvalue()
    return statistics.median(times), top


def main() -> None:
    import optuna

    from search.config import default_config_path, load_config

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,5000,20000")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--window", type=int, default=2000, help="tpe_window measured")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    config = load_config(default_config_path())
    sizes = [int(s) for s in args.sizes.split(",")]
    trials = history(max(sizes), config)
    rows, tops = [], {}
    for n in sizes:
        on, tops[n] = per_suggestion(
            trials[:n], config, liar=True, repeats=args.repeats, profile=True
        )
        off, _ = per_suggestion(trials[:n], config, liar=False, repeats=args.repeats, profile=False)
        win, _ = per_suggestion(
            trials[:n], config, liar=True, repeats=args.repeats, profile=False, window=args.window
        )
        rows.append([f"{n:,}", f"{on:.3f}", f"{off:.3f}", f"{win:.3f}"])
        print(rows[-1], flush=True)
    for n, top in tops.items():
        print(f"\ncProfile, {n:,} trials, constant liar on (cumulative):\n{top}")
    header = [
        "finished trials",
        "s per suggestion (default: constant liar)",
        "constant liar off",
        f"tpe_window = {args.window:,}",
    ]
    body = (
        "Seconds of one ask + suggest of the default study's space with the default TPE, "
        f"median of {args.repeats}, on an in-memory study of N finished trials (no database: "
        "the sampler's own time, paid by every worker before every trial); the machine's "
        "load average at the start: "
        + ", ".join(f"{x:.1f}" for x in os.getloadavg())
        + ".\n\n"
        + markdown_table(header, rows)
    )
    print(body)
    if not args.no_write:
        write_section(
            "tpe-cost",
            body,
            f"python -m benchmarks.tpe_cost --sizes {args.sizes} --repeats {args.repeats} "
            f"--window {args.window}",
        )


if __name__ == "__main__":
    main()
