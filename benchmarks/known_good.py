"""The best complete trials of a finished study, as `search.first_trials.Known` entries: where
Fashion-MNIST's first trials (`[study] first_trials`) come from. A study selected on
validation only (its trials' values), never on test.

    .venv/bin/python -m benchmarks.known_good --study jobs \\
        --storage sqlite:///studies/jobs-bench-amd/jobs-auto-0.db [--n 1]
"""

from __future__ import annotations

import argparse
import pprint


def known_entries(storage: str, study_name: str, n: int) -> list[tuple[str, dict]]:
    """(label, params) of the n best complete trials, best first; "width_1" of a shared-width
    space is written "width"."""
    import optuna
    from optuna.trial import TrialState

    from search.metrics import of_study

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.load_study(study_name=study_name, storage=storage)
    metric = of_study(study)
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    best = sorted(done, key=lambda t: metric.rank_key(t.value))[:n]
    finished = sum(t.state.is_finished() for t in study.trials)
    return [
        (
            f"trial #{t.number} of a {finished}-trial study ({study_name}, seed "
            f"{study.user_attrs.get('fsearch:config', {}).get('study', {}).get('seed')}), "
            f"{metric.name} {t.value:.4f}",
            dict(t.params),
        )
        for t in best
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--storage", required=True)
    ap.add_argument("--study", required=True)
    ap.add_argument("--n", type=int, default=1)
    args = ap.parse_args()
    for label, params in known_entries(args.storage, args.study, args.n):
        print(f"Known(\n    {label!r},\n    {pprint.pformat(params, sort_dicts=False)},\n),")


if __name__ == "__main__":
    main()
