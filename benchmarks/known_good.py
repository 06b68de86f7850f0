"""The best complete trials of a finished study, as `search.first_trials.Known` entries: where
Fashion-MNIST's first trials (`[study] first_trials`) come from. A study selected on
validation only (its trials' values), never on test.

    .venv/bin/python -m benchmarks.known_good --study jobs \\
        --storage sqlite:///studies/jobs-bench-amd/jobs-auto-0.db [--n 1]

With `--fastest 0.89`: instead the complete trials that reached that validation value in the
fewest seconds of their own (model build and epochs up to the first epoch at the target,
from the times each trial logs), fastest first: a first trial that gives a user a model that
good within seconds, while the best-known one trains.

With `--quickest 0.895` (and one or more --storage): the complete trials whose value is at
least that good, across the studies, ordered by their seconds in all (build and every epoch:
a first trial is never pruned, and its model is there when it ends).
"""

from __future__ import annotations

import argparse
import pprint


def seconds_to(t, target: float, better) -> float | None:
    """A trial's seconds from its start to the end of its first epoch at `target` (build and
    epochs, from its logged times); None if no epoch reached it or it logged no times."""
    from benchmarks.common import seconds_to_epoch

    u = t.user_attrs
    if "sec_per_epoch" not in u:
        return None
    hits = [
        e for e in sorted(t.intermediate_values) if not better(target, t.intermediate_values[e])
    ]
    if not hits:
        return None
    return seconds_to_epoch(u, hits[0])


def known_entries(
    storage: str, study_name: str, n: int, *, fastest: float | None = None
) -> list[tuple[str, dict]]:
    """(label, params) of the n best complete trials, best first; "width_1" of a shared-width
    space is written "width". With `fastest`, the n complete trials that reached that value
    in the fewest seconds, fastest first."""
    import optuna
    from optuna.trial import TrialState

    from search.metrics import of_study

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.load_study(study_name=study_name, storage=storage)
    metric = of_study(study)
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    finished = sum(t.state.is_finished() for t in study.trials)
    seed = study.user_attrs.get("fsearch:config", {}).get("study", {}).get("seed")
    where = f"of a {finished}-trial study ({study_name}, seed {seed})"
    if fastest is None:
        best = sorted(done, key=lambda t: metric.rank_key(t.value))[:n]
        return [
            (f"trial #{t.number} {where}, {metric.name} {t.value:.4f}", dict(t.params))
            for t in best
        ]
    timed = [(seconds_to(t, fastest, metric.better), t) for t in done]
    quick = sorted(((s, t) for s, t in timed if s is not None), key=lambda st: st[0])[:n]
    return [
        (
            f"trial #{t.number} {where}, {metric.name} {'>=' if metric.maximize else '<='} "
            f"{metric.format(fastest)} after "
            f"{s:.1f} s of its own, {t.value:.4f} at the end",
            dict(t.params),
        )
        for s, t in quick
    ]


def quickest_entries(
    storages: list[str], study_name: str, n: int, value: float
) -> list[tuple[str, dict]]:
    """(label, params) of the n complete trials at `value` or better, across the studies,
    that took the fewest seconds in all (build and every epoch they ran), quickest first."""
    from pathlib import Path

    import optuna
    from optuna.trial import TrialState

    from benchmarks.common import seconds_to_epoch
    from search.metrics import of_study

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    found = []
    for storage in storages:
        study = optuna.load_study(study_name=study_name, storage=storage)
        metric = of_study(study)
        finished = sum(t.state.is_finished() for t in study.trials)
        seed = study.user_attrs.get("fsearch:config", {}).get("study", {}).get("seed")
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            u = t.user_attrs
            if "sec_per_epoch" not in u or metric.better(value, t.value):
                continue
            s = seconds_to_epoch(u, int(u.get("epochs_run") or 1))
            where = f"{Path(storage).parent.name}/{Path(storage).name}"
            label = (
                f"trial #{t.number} of a {finished}-trial study ({study_name}, seed {seed}, "
                f"{where}), {metric.name} {t.value:.4f} after {s:.1f} s of its own"
            )
            found.append((s, label, dict(t.params)))
    found.sort(key=lambda f: f[0])
    return [(label, params) for _, label, params in found[:n]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--storage", required=True, nargs="+", help="one; several with --quickest")
    ap.add_argument("--study", required=True)
    ap.add_argument("--n", type=int, default=1)
    ap.add_argument(
        "--fastest",
        type=float,
        metavar="VALUE",
        help="the trials that reached this validation value soonest, not the best",
    )
    ap.add_argument(
        "--quickest",
        type=float,
        metavar="VALUE",
        help="the trials at least this good that took the fewest seconds in all, across studies",
    )
    args = ap.parse_args()
    if args.quickest is not None:
        entries = quickest_entries(args.storage, args.study, args.n, args.quickest)
    elif len(args.storage) > 1:
        ap.error("several --storage only with --quickest")
    else:
        entries = known_entries(args.storage[0], args.study, args.n, fastest=args.fastest)
    for label, params in entries:
        print(f"Known(\n    {label!r},\n    {pprint.pformat(params, sort_dicts=False)},\n),")


if __name__ == "__main__":
    main()
