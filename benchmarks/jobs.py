"""One worker against `--jobs auto` on the default study: what a user waits for.

Each arm is a real `fsearch run` of the default study (studies/fashion-mnist-mlp.toml, full
epochs, not 3-epoch trials) on its own SQLite file, with the same seed and wall-clock budget;
the arms run one after the other with the whole machine each (nothing else should run). From
each study's trials, measured from the moment the command was started (so TensorFlow's import,
the data load and the worker start-up count):

- the time to the first trial reaching 0.89 and 0.90 validation accuracy (any epoch: a pruned
  trial counts, as in `time-to-accuracy`);
- trials finished (complete or pruned) after 10 and 30 minutes and within the budget;
- the wall time of the whole run, which is the time for `--trials` when the budget allows.

    .venv/bin/python -m benchmarks.jobs --budget 900 --seeds 1
    .venv/bin/python -m benchmarks.jobs --trials 200 --budget 4000 --seeds 3   # the issue's

The export is not part of an arm (`--no-export`: the issue's target is the search's minutes).
`--export-kept DIR` exports each study that `--keep DIR` kept, as `fsearch run` would at its
end (`fsearch export`: the 3 best refit on train + validation and averaged), and logs its
test accuracy and seconds beside the arm's row; run it after the arms, alone too.

Six 200-trial studies take longer than one sitting, so each arm's result is also appended to
`--log` (JSON lines, committed) and the section is written from every logged arm measured on
this kind of CPU with the same `--trials` and `--budget`: seeds can be run on different days
(`--first-seed 1 --seeds 1`), one arm after the other, alone on the machine each time.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import (
    WHAT_REACHES_COUNTS,
    append_record,
    cpu_name,
    finished,
    finished_by,
    markdown_table,
    write_section,
)

TARGETS = (0.89, 0.90)
MARKS_MIN = (10, 30)


def arm_result(db: Path, launched: dt.datetime) -> dict:
    """Times and counts of one arm's study, measured from `launched` (local time, as Optuna
    stores its trial times)."""
    import optuna

    study = optuna.load_study(study_name="jobs", storage=f"sqlite:///{db}")
    done = finished(study.trials)

    def since(t) -> float:
        return (t.datetime_complete - launched).total_seconds()

    out = {"finished": len(done), "complete": sum(t.state.name == "COMPLETE" for t in done)}
    for target in TARGETS:
        hits = [
            since(t)
            for t in done
            if t.intermediate_values and max(t.intermediate_values.values()) >= target
        ]
        out[target] = min(hits) if hits else None
    out |= finished_by(done, launched, MARKS_MIN)
    out["best"] = max((t.value for t in done if t.value is not None), default=float("nan"))
    return out


# An arm is a --jobs value, optionally with "+first" (--first-trials: the known configurations
# queued first, search/first_trials.py; without it --no-first-trials) and "+late" (the default
# study with [study] keys set: a late rung, search/late_rung.py, at the epoch BENCHMARKS.md
# `rungs` chose on its replay), e.g. "auto+first". An arm may end in "@TAG", which names
# the code it ran when two versions of the code are compared, each run from its own snapshot
# (a `git worktree`) with the same --log: "auto+first@one-known" and "auto+first@two-known"
# are logged and shown as two arms. A tag also keeps one pair's rows apart from earlier runs
# of the same arm logged under the same --budget and --trials.
ARM_FLAGS = {"first": "--first-trials"}
# "+cap2m": the default study with `[study] max_params = 2000000`, the cap BENCHMARKS.md `caps`
# chose on its replay and wrote its arm's rule for (nets over it pruned before training).
ARM_STUDY = {"late": {"late_rung": 8, "late_rung_keep": 2}, "cap2m": {"max_params": 2_000_000}}
# "+bf16": the default study with [space] keys set: the hidden layers under mixed_bfloat16
# (search/model.py; BENCHMARKS.md `precision`). "+precauto": under `precision = "auto"`, what
# the machine running the arm resolves it to (search/model.resolve_precision), as a user of
# that setting gets it, its export included.
ARM_SPACE = {"bf16": {"precision": "mixed_bfloat16"}, "precauto": {"precision": "auto"}}
ARM_KEYS = {
    **{e: ("study", k) for e, k in ARM_STUDY.items()},
    **{e: ("space", k) for e, k in ARM_SPACE.items()},
}


def arm_parts(arm: str) -> tuple[str, list[str], str]:
    """An arm's --jobs value, its +parts and its @tag ("" when none)."""
    body, _, tag = arm.partition("@")
    jobs, *extra = body.split("+")
    return jobs, extra, tag


def arm_label(arm: str) -> str:
    jobs, extra, tag = arm_parts(arm)
    labels = [
        ARM_FLAGS[e]
        if e in ARM_FLAGS
        else ", ".join(f"{k} = {v}" for k, v in ARM_KEYS[e][1].items())
        for e in extra
    ]
    return " ".join([f"--jobs {jobs}", *labels, *([f"({tag})"] if tag else [])])


def arm_config(extra: list[str], tmp: Path) -> list[str]:
    """--config FILE for an arm that sets [study] or [space] keys (the default study's text
    with them added to its table); no flags for an arm that sets none."""
    keys = {
        (table, k): v
        for e in extra
        if e in ARM_KEYS
        for table, kv in [ARM_KEYS[e]]
        for k, v in kv.items()
    }
    if not keys:
        return []
    from search.config import Fixed, default_config_path, load_config

    text = default_config_path().read_text()
    for table in ("study", "space"):
        added = "".join(f"{k} = {json.dumps(v)}\n" for (t, k), v in keys.items() if t == table)
        text = text.replace(f"[{table}]\n", f"[{table}]\n" + added, 1) if added else text
    path = tmp / f"study-{'-'.join(sorted(k for _, k in keys))}.toml"
    path.write_text(text)
    # A key the default study already sets is a TOML error here; a [study] or [space] line it
    # no longer has verbatim would leave the keys out: either stops the arm before it runs.
    cfg = load_config(path)
    missed = {
        k: v
        for (table, k), v in keys.items()
        if (getattr(cfg.study, k) if table == "study" else cfg.space[k])
        != (v if table == "study" else Fixed(v))
    }
    if missed:
        sys.exit(f"arm config {path}: {missed} not set (the default study lacks its table line?)")
    return ["--config", str(path)]


def run_arm(arm: str, seed: int, args, tmp: Path) -> dict:
    exe = Path(sys.executable).parent / "fsearch"
    jobs, extra, _ = arm_parts(arm)
    flags = [ARM_FLAGS[e] for e in extra if e in ARM_FLAGS] + arm_config(extra, tmp)
    if "first" not in extra:
        # An arm without +first runs without first trials, as every such arm logged before
        # the default study turned them on (2026-12-07), so old and new rows stay comparable.
        flags.append("--no-first-trials")
    db = tmp / f"jobs-{arm}-{seed}.db"
    cmd = [
        str(exe),
        "run",
        "--study",
        "jobs",
        "--storage",
        f"sqlite:///{db}",
        "--artifacts",
        str(tmp / f"art-{arm}-{seed}"),
        "--trials",
        str(args.trials),
        "--timeout",
        str(args.budget),
        "--seed",
        str(seed),
        "--jobs",
        jobs,
        *flags,
        "--no-export",
    ]
    print("$", " ".join(cmd), flush=True)
    launched = dt.datetime.now()
    t0 = time.perf_counter()
    rc = subprocess.run(cmd, stdout=subprocess.DEVNULL).returncode
    wall = time.perf_counter() - t0
    if rc != 0:
        sys.exit(f"{arm_label(arm)}, seed {seed}: fsearch run exited {rc}")
    res = arm_result(db, launched)
    res["wall"] = wall
    if args.keep:
        import shutil

        Path(args.keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(db, Path(args.keep) / db.name)
    print(f"{arm_label(arm)} seed {seed}: {res}", flush=True)
    if args.log:
        # JSON keys are strings: the targets are stored as "0.89", read back by logged().
        _log(args, arm, seed, "result", {str(k): v for k, v in res.items()})
    return res


def _log(args, arm: str, seed: int, key: str, value: dict) -> None:
    """Append one record (an arm's `result`, or its kept study's `export`) to --log."""
    record = {"trials": args.trials, "budget": args.budget, "arm": arm, "seed": seed, key: value}
    append_record(args.log, record)


def export_kept(args, arms: list[str], tmp: Path) -> None:
    """`fsearch export` of each study `--keep` kept (jobs-ARM-SEED.db) for these arms, timed;
    its card's test accuracy goes to --log."""
    exe = Path(sys.executable).parent / "fsearch"
    if not args.log:
        sys.exit("--export-kept logs its results: give --log")
    # An export is logged under --budget and --trials, and the section pairs it with the run
    # logged under the same ones: an export run without the study's own (once, the default
    # --budget 900 for a 3600-second study) was logged where no run could claim it.
    runs = logged(args, arms)
    for db in sorted(Path(args.export_kept).glob("jobs-*.db")):
        arm, _, seed = db.stem[len("jobs-") :].rpartition("-")
        if arm not in arms or not seed.isdigit():
            continue
        if not any(r["seed"] == int(seed) for r in runs[arm]):
            sys.exit(
                f"{db.name}: no run of {arm_label(arm)} seed {seed} with --budget "
                f"{args.budget:g} --trials {args.trials} on this CPU in {args.log}; "
                "give --export-kept the --budget and --trials its study ran with"
            )
        out = tmp / f"export-{arm}-{seed}"
        cmd = [str(exe), "export", "--study", "jobs", "--storage", f"sqlite:///{db}"]
        cmd += ["--artifacts", str(tmp / "no-kept-models"), "--out", str(out)]
        print("$", " ".join(cmd), flush=True)
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        card = json.loads((out / "model-card.json").read_text())
        res = {"test_accuracy": card["test_accuracy"], "seconds": time.perf_counter() - t0}
        print(f"{arm_label(arm)} seed {seed}: export {res}", flush=True)
        _log(args, arm, int(seed), "export", res)


def logged(args, arms: list[str]) -> dict[str, list[dict]]:
    """Every arm in `--log` measured on this CPU with these `--trials` and `--budget`, by arm,
    in seed order (a seed measured twice: the later run), with its kept study's export where
    one was logged (`test`, `export s`)."""
    by_arm: dict[str, dict[int, dict]] = {a: {} for a in arms}
    exports: dict[tuple[str, int], dict] = {}
    if not args.log or not Path(args.log).exists():
        return {a: [] for a in arms}
    for line in Path(args.log).read_text().splitlines():
        r = json.loads(line)
        same = (r["cpu"], r["cores"], r["trials"], r["budget"]) == (
            cpu_name(),
            os.cpu_count(),
            args.trials,
            args.budget,
        )
        if same and r["arm"] in by_arm and "export" in r:
            exports[r["arm"], r["seed"]] = r["export"]
        elif same and r["arm"] in by_arm:
            exports.pop((r["arm"], r["seed"]), None)  # an export of an earlier run's study
            res = {k: v for k, v in r["result"].items()}
            for t in TARGETS:
                res[t] = res.pop(str(t))
            res["seed"] = r["seed"]
            by_arm[r["arm"]][r["seed"]] = res
    for (arm, seed), export in exports.items():
        if seed in by_arm[arm]:
            by_arm[arm][seed] |= {"test": export["test_accuracy"], "export s": export["seconds"]}
    return {a: [runs[s] for s in sorted(runs)] for a, runs in by_arm.items()}


def _minutes(v: float | None, budget: float) -> str:
    return f"{v / 60:.1f}" if v is not None else f"> {budget / 60:.0f}"


def summarize(results: dict[str, list[dict]], args) -> str:
    rows = []
    seeds = sorted({r["seed"] for runs in results.values() for r in runs})
    exported = any("test" in r for runs in results.values() for r in runs)
    for jobs, runs in results.items():
        if not runs:  # nothing logged for this arm with these --budget and --trials
            continue
        # Arms may hold different seeds (one logged later): each value lines up with this.
        row = [arm_label(jobs), ", ".join(str(r["seed"]) for r in runs)]
        for target in TARGETS:
            per = [r[target] for r in runs]
            # A seed that never reached the target sorts last: the median is still known
            # when more than half of the seeds reached it.
            med = statistics.median(math.inf if v is None else v for v in per) / 60
            med = med if math.isfinite(med) else None
            row.append(
                ", ".join(_minutes(v, args.budget) for v in per)
                + (f" (median {med:.1f})" if med is not None and len(per) > 1 else "")
            )
        for m in MARKS_MIN:
            if m * 60 <= args.budget:
                row.append(", ".join(str(r[f"{m} min"]) for r in runs))
        row.append(", ".join(f"{r['finished']} ({r['complete']})" for r in runs))
        row.append(", ".join(f"{r['wall'] / 60:.1f}" for r in runs))
        row.append(", ".join(f"{r['best']:.4f}" for r in runs))
        if exported:
            row.append(", ".join(f"{r['test']:.4f}" if "test" in r else "-" for r in runs))
            row.append(", ".join(f"{r['export s'] / 60:.1f}" if "test" in r else "-" for r in runs))
        rows.append(row)
    header = ["arm", "seeds", *(f"min to {t} val acc" for t in TARGETS)]
    header += [f"trials by {m} min" for m in MARKS_MIN if m * 60 <= args.budget]
    header += ["trials finished (complete)", "wall min", "best val acc (complete trials)"]
    if exported:
        header += ["exported test acc", "export min"]
    body = (
        f"The default study, seed(s) {', '.join(map(str, seeds))}, at most "
        f"{args.trials} trials or {args.budget / 60:.0f} min per arm; the arms ran one after "
        "the other with the whole machine each. Times are minutes from the command's start "
        "(import, data load and worker start-up included); one value per seed, in the order "
        "of the arm's seeds column. "
        + WHAT_REACHES_COUNTS
        + (
            " Exported: `fsearch export` of the arm's study after the search (`--export-kept`: "
            "the 3 best refit on train + validation and averaged, as `fsearch run` exports); "
            "its minutes are not in the wall time; - where not exported."
            if exported
            else ""
        )
        + "\n\n"
        + markdown_table(header, rows)
    )
    return body


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=float, default=900, help="seconds per arm and seed")
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--seeds", type=int, default=1, help="how many seeds to run now")
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument(
        "--log",
        default=str(Path(__file__).resolve().parent / "results" / "jobs.jsonl"),
        help="append each arm's result here; the section is written from all logged arms",
    )
    ap.add_argument(
        "--arms",
        default="1,auto",
        help="comma-separated --jobs values, each optionally +first (--first-trials), +late "
        "(a late rung) and @TAG (the code snapshot it ran)",
    )
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument(
        "--export-kept",
        metavar="DIR",
        help="export the studies --keep DIR kept (these --arms) and log their test accuracy; "
        "with --seeds 0 only that",
    )
    ap.add_argument("--section", default="jobs", help="the BENCHMARKS.md section written")
    ap.add_argument(
        "--keep", metavar="DIR", help="copy each arm's study database here (epochs_spent reads it)"
    )
    args = ap.parse_args()
    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    for arm in arms:  # before anything runs: a typo would otherwise run an hour as another arm
        jobs, extra, tag = arm_parts(arm)
        unknown = [e for e in extra if e not in ARM_FLAGS and e not in ARM_KEYS]
        if unknown:
            ap.error(
                f"arm {arm!r}: unknown part {unknown[0]!r}; an arm is a --jobs value with "
                f"optional +{' +'.join([*ARM_FLAGS, *ARM_KEYS])} and @TAG"
            )
        if "@" in arm and not tag.replace("-", "").isalnum():
            ap.error(f"arm {arm!r}: a tag is letters, digits and '-' (it names a file)")
    results: dict[str, list[dict]] = {a: [] for a in arms}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            for jobs in arms:
                res = run_arm(jobs, seed, args, Path(tmp))
                results[jobs].append({**res, "seed": seed})
        if args.export_kept:  # after the arms: this run's kept studies too
            export_kept(args, arms, Path(tmp))
    if args.log:
        results = logged(args, arms)
    if not any(results.values()):
        sys.exit(
            f"no run of arms {args.arms} with --budget {args.budget:g} --trials {args.trials} "
            f"on this CPU in {args.log}: give the --budget and --trials they ran with"
        )
    body = summarize(results, args)
    print(body)
    if not args.no_write:
        write_section(
            args.section,
            body,
            f"python -m benchmarks.jobs --budget {args.budget:g} --trials {args.trials} "
            f"--first-seed S --seeds 1 --arms {','.join(arms)}"
            + (f" --section {args.section}" if args.section != "jobs" else "")
            + " --keep DIR  # once per seed logged; then the same with --seeds 0 --export-kept DIR",
        )


if __name__ == "__main__":
    main()
