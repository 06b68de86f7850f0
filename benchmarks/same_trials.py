"""Does a change keep a seeded study's trials and its speed? One study at another commit and here.

    python -m benchmarks.same_trials --base d201444 --trials 20
    python -m benchmarks.same_trials --base d201444 --trials 200 --section same-trials
    python -m benchmarks.same_trials --base d201444 --trials 200 --here-first --section same-trials
    python -m benchmarks.same_trials --base d201444 --trials 6 --data wine.csv --target cultivar

Clones the repository at --base into a scratch folder and runs `fsearch run` of the same
seeded study (the default Fashion-MNIST one, or `--data FILE --target COL` made by each tree
for itself) in both trees, one after the other (base first, or --here-first), with this
environment's Python and one worker.
Prints the trials that differ (parameters, state and value read from each study's database;
none: the change kept every trial), each side's wall time and the summed time of its trials
(start to end of each, so start-up and import are apart), and for `--data` the exported card's
values side by side (export: the selected model, so nothing but the selection is trained
again). Each run is appended to `--log`; `--section NAME` writes BENCHMARKS.md's section from
every logged run. Exit 1 if any trial differs.
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

from benchmarks.common import append_record, markdown_table, trial_seconds, write_section

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_LOG = str(ROOT / "benchmarks" / "results" / "same_trials.jsonl")
CARD_KEYS = ("trial", "validation_value", "test_accuracy", "test_balanced_accuracy",
             "test_loss", "test_rmse", "test_examples", "parameter_count")  # fmt: skip


def study_trials(db: Path) -> list[dict]:
    """Each finished trial of the one study in db: number, state, params, value, seconds."""
    import optuna

    storage = f"sqlite:///{db}"
    (summary,) = optuna.get_all_study_summaries(storage)
    study = optuna.load_study(study_name=summary.study_name, storage=storage)
    out = []
    for t in study.get_trials(deepcopy=False):
        if t.datetime_complete is None:
            continue
        value = t.value
        if value is None and t.intermediate_values:
            value = t.intermediate_values[max(t.intermediate_values)]
        out.append({
            "number": t.number,
            "state": t.state.name,
            "params": {k: (round(v, 12) if isinstance(v, float) else v)
                       for k, v in sorted(t.params.items())},
            "value": None if value is None else round(float(value), 4),
            "epochs": len(t.intermediate_values),
            "seconds": trial_seconds(t),
        })  # fmt: skip
    return out


def run_tree(tree: Path, work: Path, args) -> tuple[list[str], float, list[dict], dict]:
    """Trial lines, wall seconds, trials (from the database) and (with --data) the card."""
    work.mkdir(parents=True, exist_ok=True)
    db = work / "f.db"
    # One worker: the trials come in one order, whatever the default --jobs.
    cmd = [sys.executable, "-m", "search.cli", "run", "--trials", str(args.trials),
           "--storage", f"sqlite:///{db}", "--artifacts", str(work / "artifacts"),
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
    return lines, seconds, study_trials(db), card


def differing(a: list[dict], b: list[dict]) -> list[tuple[dict | None, dict | None]]:
    """Trials whose number, state, parameters, value or epoch count differ between a and b."""
    keys = ("number", "state", "params", "value", "epochs")
    by_a = {t["number"]: t for t in a}
    by_b = {t["number"]: t for t in b}
    out = []
    for n in sorted(set(by_a) | set(by_b)):
        ta, tb = by_a.get(n), by_b.get(n)
        if ta is None or tb is None or any(ta[k] != tb[k] for k in keys):
            out.append((ta, tb))
    return out


def head_of(tree: Path) -> str:
    sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=tree,
                         capture_output=True, text=True).stdout.strip()  # fmt: skip
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "search"], cwd=tree,
                           capture_output=True, text=True).stdout.strip()  # fmt: skip
    return sha + (" (search/ modified)" if dirty else "")


def section_body(records: list[dict]) -> str:
    rows = []
    for r in records:
        ts_a, ts_b = r["base_trial_s"], r["here_trial_s"]
        rows.append([
            r["date"], f"{r['cpu']}, {r['cores']} cores", r["data"], r["base"], r["here"],
            r["trials"], r.get("first", "base"),
            f"{r['differ']} of {max(r['base_trials'], r['here_trials'])}",
            f"{r['base_wall_s'] / 60:.1f}", f"{r['here_wall_s'] / 60:.1f}",
            f"{r['here_wall_s'] / r['base_wall_s']:.3f}",
            f"{ts_a / 60:.1f}", f"{ts_b / 60:.1f}", f"{ts_b / ts_a:.3f}",
        ])  # fmt: skip
    return (
        "The same seeded study run by `fsearch run --jobs 1 --no-export` at the base commit and "
        "here, one after the other (the column says which first) with this environment's "
        "packages. Trials that "
        "differ: number, state, parameters, value or epoch count not the same in the two "
        "databases. Wall: the command's minutes; trials: the summed start-to-end minutes of its "
        "finished trials (without import and start-up). A ratio above 1 means here is "
        "slower.\n\n"
        + markdown_table(
            [
                "measured",
                "machine",
                "data",
                "base",
                "here",
                "trials",
                "ran first",
                "trials that differ",
                "base wall min",
                "here wall min",
                "here / base wall",
                "base trials min",
                "here trials min",
                "here / base trials",
            ],  # fmt: skip
            rows,
        )
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", required=True, help="the commit to compare with")
    p.add_argument("--trials", type=int, default=20)
    p.add_argument("--data", help="a table (with --target) instead of Fashion-MNIST")
    p.add_argument("--target", default="")
    p.add_argument(
        "--here-first",
        action="store_true",
        help="run this tree before the base (a second run in the other order evens out drift)",
    )
    p.add_argument("--log", default=DEFAULT_LOG, help="append the run's result here")
    p.add_argument("--section", help="write this BENCHMARKS.md section from every logged run")
    args = p.parse_args()
    here = head_of(ROOT)
    with tempfile.TemporaryDirectory(prefix="fsearch-same-") as tmp:
        base = Path(tmp) / "base"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(base)], check=True)
        subprocess.run(["git", "checkout", "-q", args.base], cwd=base, check=True)
        if args.here_first:
            b_lines, b_s, b_trials, b_card = run_tree(ROOT, Path(tmp) / "run-here", args)
        a_lines, a_s, a_trials, a_card = run_tree(base, Path(tmp) / "run-base", args)
        if not args.here_first:
            b_lines, b_s, b_trials, b_card = run_tree(ROOT, Path(tmp) / "run-here", args)
    differ = differing(a_trials, b_trials)
    a_ts = sum(t["seconds"] for t in a_trials)
    b_ts = sum(t["seconds"] for t in b_trials)
    print(f"{len(a_trials)} trials at {args.base} ({a_s:.0f} s wall, {a_ts:.0f} s in trials), "
          f"{len(b_trials)} here at {here} ({b_s:.0f} s wall, {b_ts:.0f} s in trials); "
          f"{len(differ)} differ")  # fmt: skip
    for ta, tb in differ:
        print(f"  {args.base}: {ta}\n  here:    {tb}")
    lines_differ = sum(a != b for a, b in zip(a_lines, b_lines, strict=False))
    print(f"printed trial lines: {len(a_lines)} at {args.base}, {len(b_lines)} here, "
          f"{lines_differ} differ in text")  # fmt: skip
    for key in CARD_KEYS:
        if key in a_card or key in b_card:
            print(f"card {key}: {a_card.get(key)} | {b_card.get(key)}")
    if a_card or b_card:
        print(f"card keys only here: {sorted(set(b_card) - set(a_card))}; only at "
              f"{args.base}: {sorted(set(a_card) - set(b_card))}")  # fmt: skip
    append_record(args.log, {
        "base": args.base, "here": here, "trials": args.trials,
        "data": Path(args.data).name if args.data else "fashion-mnist",
        "differ": len(differ), "base_trials": len(a_trials), "here_trials": len(b_trials),
        "base_wall_s": round(a_s, 1), "here_wall_s": round(b_s, 1),
        "base_trial_s": round(a_ts, 1), "here_trial_s": round(b_ts, 1),
        "first": "here" if args.here_first else "base",
    })  # fmt: skip
    if args.section:
        records = [json.loads(s) for s in Path(args.log).read_text().splitlines() if s.strip()]
        write_section(
            args.section,
            section_body(records),
            f"python -m benchmarks.same_trials --base {args.base} --trials {args.trials} "
            f"[--here-first] --section {args.section}  # once per row",
        )
    sys.exit(1 if differ or len(a_trials) != len(b_trials) else 0)


if __name__ == "__main__":
    main()
