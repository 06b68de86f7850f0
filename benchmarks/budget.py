"""A study under the lab report's model size: the best Fashion-MNIST model with at most as
many parameters as the lab's 784x64x64x10, next to the lab's result.

    python -m benchmarks.budget --trials 100 --jobs 2 [--work DIR]

Runs studies/fashion-mnist-55k.toml (the default study with `[study] max_params = 55000`)
with `fsearch run`, which exports at its end the way it always does (under a budget: the best
configuration within it, refit on train + validation), then writes BENCHMARKS.md `lab-budget`:
how many trials the budget stopped before training, the exported model's size and test
accuracy, and the lab's best (784x64x64x10, chosen by its test accuracy: search/reporting/lab.py
LAB_BEST). The study stays in --work (default /tmp/fsearch-budget): run again, it resumes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import markdown_table, write_section

ROOT = Path(__file__).resolve().parent.parent
FSEARCH = Path(sys.executable).parent / "fsearch"
CONFIG = ROOT / "studies" / "fashion-mnist-55k.toml"


def mlp_params(widths: list[int], inputs: int = 784, outputs: int = 10) -> int:
    """Weights and biases of a dense inputs x widths x outputs network."""
    sizes = [inputs, *widths, outputs]
    return sum(a * b + b for a, b in zip(sizes, sizes[1:], strict=False))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=100)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--work", type=Path, default=Path("/tmp/fsearch-budget"))
    p.add_argument("--no-write", action="store_true", help="print, do not edit BENCHMARKS.md")
    args = p.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    storage = f"sqlite:///{args.work / 'budget.db'}"
    export_dir = args.work / "best"
    cmd = [str(FSEARCH), "run", "--config", str(CONFIG), "--trials", str(args.trials),
           "--jobs", str(args.jobs), "--storage", storage, "--artifacts",
           str(args.work / "artifacts"), "--export-dir", str(export_dir)]  # fmt: skip
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    t0 = time.perf_counter()
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    print(r.stdout[-4000:] + r.stderr[-2000:])
    if r.returncode != 0:
        raise SystemExit(f"fsearch run failed (exit {r.returncode})")

    import optuna

    from search.reporting.lab import LAB_BEST
    from search.runner import OVER_PARAMS

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.load_study(study_name="fashion-mnist-55k", storage=storage)
    trials = study.get_trials(deepcopy=False)
    states = [t.state.name for t in trials]
    over = sum(1 for t in trials if t.user_attrs.get(OVER_PARAMS, 0) > 0)
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    card = json.loads((export_dir / "model-card.json").read_text())
    lab_widths = [int(w) for w in LAB_BEST["architecture"].split("x")[1:-1]]
    lab_params = mlp_params(lab_widths)
    rows = [
        [
            "fsearch, `max_params = 55000`",
            card["architecture"],
            f"{card['parameter_count']:,}",
            f"{card['validation_value']:.4f}",
            f"{card['test_accuracy']:.4f}",
            card["export"]["mode"],
        ],
        [
            "lab report (by hand)",
            LAB_BEST["architecture"],
            f"{lab_params:,}",
            "-",
            f"{LAB_BEST['accuracy']:.4f}",
            "chosen by its test accuracy",
        ],
    ]
    body = (
        f"`fsearch run --config studies/fashion-mnist-55k.toml --trials {args.trials} "
        f"--jobs {args.jobs}`: {len(trials)} trials ({states.count('COMPLETE')} complete, "
        f"{states.count('PRUNED')} pruned, of which {over} over the budget and never trained) "
        f"in {wall / 60:.1f} min including the export ({card['export_seconds']:.0f} s; load "
        f"average {load} at the start: other work on the 2 cores stretches the time). "
        f"Largest completed trial: {max(t.user_attrs['n_params'] for t in complete):,} "
        "parameters.\n\n"
        + markdown_table(
            ["model", "architecture", "parameters", "validation", "test accuracy", "export"],
            rows,
        )
        + "\n\nfsearch's validation is the selection's (before the refit); its test accuracy "
        "is measured once, at export. The lab's accuracy is the best of its tables, read off "
        "the test set it also chose with."
    )
    command = f"python -m benchmarks.budget --trials {args.trials} --jobs {args.jobs}"
    if not args.no_write:
        write_section("lab-budget", body, command)
    print(body)


if __name__ == "__main__":
    main()
