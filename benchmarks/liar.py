"""Do parallel workers steer TPE toward cheaper nets? A simulation on the default space (issue #23).

    .venv/bin/python -m benchmarks.liar [--seeds 8] [--trials 120] [--no-write]

Section `jobs-200-xeon` found the `--jobs auto` study of seed 0 searching batch-512 nets
(cheap per epoch) where the one-worker study of the same seed searched wide nets at batch
256. One suspect is systematic: with `constant_liar` (runner.make_sampler's TPE), a trial
that is still running counts as the worst value in every suggestion made meanwhile, and a
slow configuration is running for more of the other worker's suggestions than a fast one, so
parallel TPE could learn "slow is bad". This measures whether that happens, with the
sampler's own code and nothing else varying:

- the sampler and space are the default study's (runner.make_sampler itself, its
  constant_liar switched per arm; `search.space.suggest`);
- the landscape comes from real trials: a point's value is the mean validation accuracy of
  its 3 nearest complete trials (normalized parameters) in section `jobs-200-xeon`'s seed-0
  studies (LANDSCAPE, committed under `benchmarks/results/jobs-kept-xeon/`: the pair whose
  parting is the question; named, so studies added there later do not change this
  benchmark's output); its duration is 12 epochs at a seconds-per-epoch
  fitted to those studies' one-worker trials (a term per weight, a term per batch step:
  least squares, printed);
- workers are simulated on a clock: each free worker asks for a trial, which ends after its
  duration, and the earliest-ending one is told its value. No pruning and no thread effects:
  only the order of asks and tells differs between the arms.

Arms: one worker; two workers with constant_liar (fsearch's); two workers without. Per arm,
over seeds: the mean duration of a suggested trial (the cost TPE chose), the share of trials
wider than 256 units or at batch 512, the simulated hours for the trials, and the best value
by a fixed simulated time and after all trials.
"""

from __future__ import annotations

import argparse
import heapq
import math
import statistics
from pathlib import Path

from benchmarks.common import markdown_table, write_section

ROOT = Path(__file__).resolve().parent.parent
KEPT = ROOT / "benchmarks" / "results" / "jobs-kept-xeon"
LANDSCAPE = ("jobs-1-0.db", "jobs-auto-0.db")  # the seed-0 pair; jobs-1-*: one worker's
EPOCHS = 12
TRAIN_ROWS = 50_000
OPTIMIZERS = ("sgd", "adam", "rmsprop")
REGULARIZERS = ("none", "l1", "l2")


def features(p: dict) -> list[float]:
    """A trial's parameters scaled to comparable ranges (about 0..2 each)."""
    reg = p.get("regularizer", "none")
    return [
        math.log2(p["width"]) / 3,
        p["layers"] / 2,
        math.log10(p["learning_rate"]) / 1.5,
        1.0 if p["batch_size"] == 512 else 0.0,
        p["dropout"] * 2,
        *[0.7 * (p["optimizer"] == o) for o in OPTIMIZERS],
        *[0.5 * (reg == r) for r in REGULARIZERS],
        (math.log10(p["reg_strength"]) / 3) if reg != "none" and "reg_strength" in p else 0.0,
    ]


def weights(p: dict) -> float:
    w, layers = p["width"], p["layers"]
    return 784 * w + (layers - 1) * w * w + 10 * w


class Landscape:
    """Value: mean of the k nearest real complete trials; seconds: a fitted per-epoch model."""

    def __init__(self, trials: list, one_worker: list, k: int = 3):
        import numpy as np

        done = [t for t in trials if t.state.name == "COMPLETE" and t.value is not None]
        self.x = np.array([features(t.params) for t in done])
        self.y = np.array([t.value for t in done])
        self.k = k
        timed = [t for t in one_worker if t.user_attrs.get("sec_per_epoch")]
        a = np.array([[weights(t.params), TRAIN_ROWS / t.params["batch_size"]] for t in timed])
        b = np.array([float(t.user_attrs["sec_per_epoch"]) for t in timed])
        self.coef = np.linalg.lstsq(a, b, rcond=None)[0]
        self.n_done, self.n_timed = len(done), len(timed)

    def value(self, p: dict) -> float:
        import numpy as np

        d = ((self.x - np.array(features(p))) ** 2).sum(axis=1)
        return float(self.y[np.argsort(d)[: self.k]].mean())

    def seconds(self, p: dict) -> float:
        per_epoch = self.coef[0] * weights(p) + self.coef[1] * TRAIN_ROWS / p["batch_size"]
        return EPOCHS * max(0.05, float(per_epoch))


def simulate(land: Landscape, config, *, workers: int, liar: bool, seed: int, trials: int):
    """One study on a simulated clock: [(end seconds, value, seconds, params)] in tell order."""
    import optuna

    from search.runner import make_sampler
    from search.space import suggest

    # The default study's own sampler, constant_liar as the arm says.
    sampler = make_sampler(config.study, seed=seed, constant_liar=liar)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    clock, asked, running, out = 0.0, 0, [], []
    while asked < trials or running:
        while len(running) < workers and asked < trials:
            t = study.ask()
            suggest(t, config)
            p = dict(t.params)
            secs = land.seconds(p)
            heapq.heappush(running, (clock + secs, asked, t, land.value(p), secs, p))
            asked += 1
        end, _, t, value, secs, p = heapq.heappop(running)
        clock = end
        study.tell(t, value)
        out.append((end, value, secs, p))
    return out


ARMS = (
    ("1 worker", 1, True),
    ("2 workers, constant_liar", 2, True),
    ("2 workers, no liar", 2, False),
)


def main() -> None:
    import optuna

    from search.config import default_config_path, load_config

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--trials", type=int, default=120)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    config = load_config(default_config_path())
    real, one = [], []
    for name in LANDSCAPE:
        db = KEPT / name
        study = optuna.load_study(study_name="jobs", storage=f"sqlite:///{db}")
        real += study.get_trials(deepcopy=False)
        if name.startswith("jobs-1-"):
            one += study.get_trials(deepcopy=False)
    land = Landscape(real, one)
    results = {}
    for label, workers, liar in ARMS:
        results[label] = [
            simulate(land, config, workers=workers, liar=liar, seed=s, trials=args.trials)
            for s in range(args.seeds)
        ]
        print(label, "done", flush=True)
    # Equal time: half of the one-worker arm's median hours for all the trials.
    one_hours = statistics.median(r[-1][0] for r in results[ARMS[0][0]]) / 3600
    at = one_hours / 2

    def cost(r):
        return statistics.mean(x[2] for x in r)

    base = [cost(r) for r in results[ARMS[0][0]]]
    rows = []
    for label, _, _ in ARMS:
        runs = results[label]
        costs = [cost(r) for r in runs]

        def med(f, runs=runs):
            return statistics.median(f(r) for r in runs)

        rows.append(
            [
                label,
                f"{statistics.median(costs):.0f} ({min(costs):.0f}-{max(costs):.0f})",
                "-"
                if label == ARMS[0][0]
                else f"{sum(c < b for c, b in zip(costs, base, strict=True))}",
                f"{med(lambda r: sum(x[3]['width'] > 256 for x in r) / len(r)):.0%}",
                f"{med(lambda r: sum(x[3]['batch_size'] == 512 for x in r) / len(r)):.0%}",
                f"{med(lambda r: r[-1][0] / 3600):.2f}",
                f"{med(lambda r: max((x[1] for x in r if x[0] <= at * 3600), default=0)):.4f}",
                f"{med(lambda r: max(x[1] for x in r)):.4f}",
            ]
        )
    body = (
        f"Simulated: {args.seeds} seeds (0..{args.seeds - 1}) x {args.trials} trials per arm, "
        f"default space and TPE options; landscape from {land.n_done} complete trials of "
        f"{', '.join(f'`{n}`' for n in LANDSCAPE)} (value: mean of the 3 nearest), seconds per "
        f"epoch = {land.coef[0]:.3g} x weights + {land.coef[1]:.3g} x batch steps (least "
        f"squares over {land.n_timed} one-worker trials), {EPOCHS} epochs per trial, no "
        f"pruning. Medians over seeds; two workers' hours are the clock's (both at once).\n\n"
        + markdown_table(
            [
                "arm",
                "mean s/trial chosen (min-max over seeds)",
                "seeds cheaper than 1 worker's",
                "trials wider than 256",
                "trials at batch 512",
                "hours for the trials",
                f"best by {at:.2f} h",
                "best after all trials",
            ],
            rows,
        )
    )
    print(body)
    if not args.no_write:
        write_section(
            "liar",
            body,
            f"python -m benchmarks.liar --seeds {args.seeds} --trials {args.trials}",
        )


if __name__ == "__main__":
    main()
