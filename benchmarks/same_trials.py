"""Does a change keep a seeded study's trials? The same study at another commit and here.

    python -m benchmarks.same_trials --base d201444 --trials 20
    python -m benchmarks.same_trials --base d201444 --trials 6 --data wine.csv --target cultivar

Clones the repository at --base into a scratch folder and runs `fsearch run` of the same
seeded study (the default Fashion-MNIST one, or `--data FILE --target COL` made by each tree
for itself) in both trees, one after the other, with this environment's Python. Prints the
trial lines that differ (none: the change kept every trial), each side's wall time, and for
`--data` the exported card's values side by side (export: the selected model, so nothing
but the selection is trained again). Exit 1 if any trial line differs.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CARD_KEYS = ("trial", "validation_value", "test_accuracy", "test_balanced_accuracy",
             "test_loss", "test_rmse", "test_examples", "parameter_count")  # fmt: skip


def run_tree(tree: Path, work: Path, args) -> tuple[list[str], float, dict]:
    """Trial lines, wall seconds and (with --data) the card of one tree's run."""
    work.mkdir(parents=True, exist_ok=True)
    storage = f"sqlite:///{work / 'f.db'}"
    # One worker: the trial lines come in one order, whatever the default --jobs.
    cmd = [sys.executable, "-m", "search.cli", "run", "--trials", str(args.trials),
           "--storage", storage, "--artifacts", str(work / "artifacts"),
           "--jobs", "1"]  # fmt: skip
    if args.data:
        cmd += ["--data", str(Path(args.data).resolve()), "--target", args.target,
                "--no-refit", "--ensemble", "1", "--export-dir", str(work / "best")]  # fmt: skip
    else:
        cmd += ["--no-export"]
    t0 = time.perf_counter()
    # cwd=tree: `python -m search.cli` imports that tree's package (the working directory is
    # first on sys.path, before the editable install of this one).
    r = subprocess.run(cmd, cwd=tree, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"{tree}: fsearch run failed (exit {r.returncode}):\n{r.stderr[-3000:]}")
    lines = [s for s in r.stdout.splitlines() if re.match(r"#\d+\s", s)]
    card = {}
    if args.data:
        card = json.loads((work / "best" / "model-card.json").read_text())
    return lines, seconds, card


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", required=True, help="the commit to compare with")
    p.add_argument("--trials", type=int, default=20)
    p.add_argument("--data", help="a table (with --target) instead of Fashion-MNIST")
    p.add_argument("--target", default="")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="fsearch-same-") as tmp:
        base = Path(tmp) / "base"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(base)], check=True)
        subprocess.run(["git", "checkout", "-q", args.base], cwd=base, check=True)
        a_lines, a_s, a_card = run_tree(base, Path(tmp) / "run-base", args)
        b_lines, b_s, b_card = run_tree(ROOT, Path(tmp) / "run-here", args)
    differ = [(a, b) for a, b in zip(a_lines, b_lines, strict=False) if a != b]
    print(f"{len(a_lines)} trial lines at {args.base} ({a_s:.0f} s), {len(b_lines)} here "
          f"({b_s:.0f} s); {len(differ)} differ")  # fmt: skip
    for a, b in differ:
        print(f"  {args.base}: {a}\n  here:    {b}")
    for key in CARD_KEYS:
        if key in a_card or key in b_card:
            print(f"card {key}: {a_card.get(key)} | {b_card.get(key)}")
    if a_card or b_card:
        print(f"card keys only here: {sorted(set(b_card) - set(a_card))}; only at "
              f"{args.base}: {sorted(set(a_card) - set(b_card))}")  # fmt: skip
    sys.exit(1 if differ or len(a_lines) != len(b_lines) else 0)


if __name__ == "__main__":
    main()
