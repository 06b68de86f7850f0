"""Which export should `fsearch run` make? Selected, refit, ensemble or both, over several
studies of the default space.

    python -m benchmarks.export_modes --seeds 3 --trials 100 --jobs 2 [--work DIR]

Runs the default study (studies/fashion-mnist-mlp.toml) once per seed (`--seed`, its own study
name, `--trials` each, `--jobs` workers, no export), then exports each study four ways:
the selected model, `--refit`, `--ensemble K` and `--ensemble K --refit`. Every export reads
the test set once, for its own card; nothing here picks a mode per study by test accuracy:
the table and the medians over studies are what the default is chosen from. The studies stay
in --work (default /tmp/fsearch-export-modes), so running the command again resumes them and
only redoes the exports.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import markdown_table, write_section

ROOT = Path(__file__).resolve().parent.parent
FSEARCH = Path(sys.executable).parent / "fsearch"


def _run(args: list[str], log) -> str:
    print("$ fsearch " + " ".join(args), file=log, flush=True)
    r = subprocess.run([str(FSEARCH), *args], capture_output=True, text=True, cwd=ROOT)
    print(r.stdout[-3000:] + r.stderr[-3000:], file=log, flush=True)
    if r.returncode != 0:
        raise SystemExit(f"fsearch {' '.join(args)} failed (exit {r.returncode}); see the log")
    return r.stdout


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--first-seed", type=int, default=1)
    p.add_argument("--trials", type=int, default=100)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--ensemble", type=int, default=3)
    p.add_argument("--work", type=Path, default=Path("/tmp/fsearch-export-modes"))
    p.add_argument("--no-write", action="store_true", help="print, do not edit BENCHMARKS.md")
    args = p.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    storage = f"sqlite:///{args.work / 'modes.db'}"
    common = ["--storage", storage, "--artifacts", str(args.work / "artifacts")]
    k = args.ensemble
    modes = {  # every flag spelled out: none depends on what the default is
        "selected": ["--no-refit", "--ensemble", "1"],
        "refit": ["--refit", "--ensemble", "1"],
        f"ensemble {k}": ["--no-refit", "--ensemble", str(k)],
        f"ensemble {k} + refit": ["--refit", "--ensemble", str(k)],
    }
    rows, by_mode = [], {m: [] for m in modes}
    with open(args.work / "log.txt", "a") as log:
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            name = f"fm-export-seed{seed}"
            t0 = time.perf_counter()
            _run(
                ["run", "--study", name, "--seed", str(seed), "--trials", str(args.trials),
                 "--jobs", str(args.jobs), "--no-export", *common],
                log,
            )  # fmt: skip
            search_min = (time.perf_counter() - t0) / 60
            for mode, flags in modes.items():
                out = args.work / name / mode.replace(" ", "-").replace("+", "and")
                _run(["export", "--study", name, "--out", str(out), *flags, *common], log)
                card = json.loads((out / "model-card.json").read_text())
                info = card["export"]
                val = info.get("ensemble_validation_value", card["validation_value"])
                by_mode[mode].append(card["test_accuracy"])
                rows.append(
                    [
                        f"seed {seed}",
                        mode,
                        ", ".join(f"#{n}" for n in info["members"]),
                        f"{val:.4f}" + (" (selection)" if "refit" in info else ""),
                        f"{card['test_accuracy']:.4f}",
                        f"{card['export_seconds']:.0f}",
                        f"{card['parameter_count']:,}",
                        f"{card['model_bytes'] / 2**20:.1f}",
                    ]
                )
                print(" | ".join(rows[-1]), flush=True)
            print(f"seed {seed}: search {search_min:.1f} min (this run)", flush=True)
            # Written after every study, so a run cut short still leaves what it measured.
            _write(args, rows, by_mode, seeds_done=seed - args.first_seed + 1)


def _write(args, rows: list, by_mode: dict, *, seeds_done: int) -> None:
    k = args.ensemble
    summary = [
        [mode, f"{statistics.median(v):.4f}", f"{min(v):.4f}", f"{max(v):.4f}", str(len(v))]
        for mode, v in by_mode.items()
        if v
    ]
    body = (
        f"The default study, {args.trials} trials per seed with --jobs {args.jobs}, exported "
        "four ways (each export reads the test set once, for its own card); "
        f"{seeds_done} of {args.seeds} studies done.\n\n"
        + markdown_table(
            [
                "study",
                "export",
                "trials",
                "validation",
                "test accuracy",
                "export s",
                "parameters",
                "MiB",
            ],
            rows,
        )  # fmt: skip
        + "\n\nTest accuracy over the studies:\n\n"
        + markdown_table(["export", "median", "min", "max", "studies"], summary)
    )
    command = (
        f"python -m benchmarks.export_modes --seeds {args.seeds} --first-seed {args.first_seed} "
        f"--trials {args.trials} --jobs {args.jobs} --ensemble {k}"
    )
    if not args.no_write:
        write_section("export-modes", body, command)
    print(body)


if __name__ == "__main__":
    main()
