"""Time to a validation accuracy: fsearch's defaults vs random search without pruning.

Both arms search the same space (studies/fashion-mnist-mlp.toml) with the same wall-clock
budget, each as a real `fsearch run` process on its own SQLite file. By default the arms run one
after the other with the whole machine each (what a user gets); with --side-by-side the arms of
a seed run at the same time, each pinned to its own half of the cores with that many TF
threads, so on a shared, noisy machine they see the same load. The time to target is measured
from the first trial's start to the end of the first trial whose validation accuracy (any
epoch) reached the target — a pruned trial counts. An arm is stopped (SIGINT, as Ctrl-C) as
soon as its database shows the target reached, so a seed costs the two times to target, not
twice the budget (--full-budget runs every arm to its budget).

    .venv/bin/python -m benchmarks.time_to_accuracy --budget 900 --seeds 3
"""

from __future__ import annotations

import argparse
import math
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import (
    WHAT_REACHES_COUNTS,
    first_reaching,
    markdown_table,
    write_section,
)
from search.workers import child_env, cores

DEFAULT_ARM = "fsearch default (TPE + Hyperband)"
RANDOM_ARM = "random search, no pruning"
ARMS = {
    DEFAULT_ARM: ["--sampler", "tpe", "--pruner", "hyperband"],
    RANDOM_ARM: ["--sampler", "random", "--pruner", "none"],
}


def variant_config(spec: str, dest: Path) -> tuple[str, Path]:
    """`KEY=VALUE`: the default study with its [study] KEY set to VALUE, written to dest.

    Checked by fsearch's own config loader, so a typo ends the benchmark before any arm runs.
    """
    from search.config import default_config_path, load_config
    from search.errors import ConfigError

    key, sep, value = spec.partition("=")
    key, value = key.strip(), value.strip()
    if not sep or not key or not value:
        raise SystemExit(f"--variant wants KEY=VALUE (a [study] key), got {spec!r}")
    text = default_config_path().read_text()
    head, found, tail = text.partition("[study]\n")
    section, nxt, rest = tail.partition("\n[")
    line = re.compile(rf"^{re.escape(key)}\s*=.*$", re.M)
    if not found or not line.search(section):
        raise SystemExit(f"--variant {spec}: the default study has no [study] key {key!r}")
    section = line.sub(lambda _: f"{key} = {value}", section, count=1)
    dest.write_text(head + found + section + nxt + rest)
    try:
        load_config(dest)
    except ConfigError as e:
        raise SystemExit(f"--variant {spec}: {e}") from None
    return f"fsearch, {key} = {value}", dest


def time_to_target(db: Path, target: float) -> tuple[float | None, int, float]:
    """(seconds to target or None, finished trials, best value) from a study database."""
    import optuna

    study = optuna.load_study(study_name="tta", storage=f"sqlite:///{db}")
    trials = [t for t in study.trials if t.datetime_complete is not None]
    if not trials:
        return None, 0, float("nan")
    best = max(
        (max(t.intermediate_values.values()) for t in trials if t.intermediate_values),
        default=float("nan"),
    )
    finished = sum(t.state.is_finished() and t.state.name != "FAIL" for t in trials)
    return first_reaching(trials, target), finished, best


def median_time(runs: list[tuple], budget: float) -> tuple[float, bool]:
    """(median seconds to target, whether that median is exact).

    A seed that missed the target took longer than the budget: if the median falls on such a
    seed, the median is a lower bound (the budget stands in for it); otherwise it is exact.
    """
    times = [r[0] if r[0] is not None else math.inf for r in runs]
    med = statistics.median(times)
    if math.isfinite(med):
        return med, True
    return statistics.median([min(t, budget) for t in times]), False


def ratio_text(med: float, ok: bool, random_med: float, random_ok: bool) -> str:
    if not ok:
        return "n/a (target not reached)"
    return f"{med / random_med:.2f}" if random_ok else f"< {med / random_med:.2f}"


def wait_for_target(
    procs: dict[str, subprocess.Popen], dbs: dict[str, Path], target: float, *, poll: float = 5.0
) -> None:
    """Wait for the arms' processes; interrupt each once its study has reached the target.

    fsearch closes the running trial as FAIL on SIGINT and exits 130; that is expected here.
    Any other non-zero exit ends the benchmark.
    """
    stopped: set[str] = set()
    while True:
        running = {arm: p for arm, p in procs.items() if p.poll() is None}
        for arm, proc in running.items():
            if arm not in stopped and dbs[arm].exists():
                try:
                    reached = time_to_target(dbs[arm], target)[0] is not None
                except Exception:  # the study is not created yet, or the db is busy
                    reached = False
                if reached:
                    proc.send_signal(signal.SIGINT)
                    stopped.add(arm)
        if not running:
            break
        time.sleep(poll)
    for arm, proc in procs.items():
        ok = (0, 130) if arm in stopped else (0,)
        if proc.returncode not in ok:
            sys.exit(f"{arm}: fsearch run exited {proc.returncode}")


def _wait(procs, dbs, args) -> None:
    if args.full_budget:
        for arm, proc in procs.items():
            if proc.wait() != 0:
                sys.exit(f"{arm}: fsearch run exited {proc.returncode}")
    else:
        wait_for_target(procs, dbs, args.target)


def summarize(results: dict[str, list[tuple]], args: argparse.Namespace, share: int) -> str:
    """The BENCHMARKS.md text: per arm, the time to target per seed, median and ratio."""
    medians = {arm: median_time(runs, args.budget) for arm, runs in results.items()}
    rs, rs_ok = medians[RANDOM_ARM]
    rows = []
    for arm, runs in results.items():
        med, ok = medians[arm]
        rows.append(
            [
                arm,
                ", ".join(
                    f"{r[0] / 60:.1f} min" if r[0] is not None else f"> {args.budget / 60:.0f} min"
                    for r in runs
                ),
                f"{med / 60:.1f} min" if ok else f"> {med / 60:.1f} min",
                "1" if arm == RANDOM_ARM else ratio_text(med, ok, rs, rs_ok),
                ", ".join(str(r[1]) for r in runs),
                ", ".join(f"{r[2]:.4f}" for r in runs),
            ]
        )
    fs, fs_ok = medians[DEFAULT_ARM]
    body = (
        f"Budget {args.budget / 60:.0f} min per arm and seed, {args.seeds} seed(s), target "
        f"validation accuracy {args.target}; "
        + (
            f"the arms of a seed ran side by side, {share} core(s) and TF thread(s) each. "
            if args.side_by_side
            else f"the arms ran one after the other, {share} cores each. "
        )
        + "Median time to target: fsearch "
        f"{fs / 60:.1f} min{'' if fs_ok else ' (not reached)'}, random without pruning "
        f"{rs / 60:.1f} min{'' if rs_ok else ' (not reached: budget used as a lower bound)'}; "
        f"ratio fsearch / random **{ratio_text(fs, fs_ok, rs, rs_ok)}**. Every arm of a seed "
        "starts from the same configurations: TPE's first start-up trials are random draws "
        "with the same seed as the random arm's, so a lucky early draw serves every arm, unless "
        "Hyperband stops it first; more seeds separate luck from method. "
        + WHAT_REACHES_COUNTS
        + "\n\n"
        + markdown_table(
            [
                "arm",
                "time to target per seed",
                "median",
                "median / random's",
                "finished trials" + (" (whole budget)" if args.full_budget else " (until target)"),
                "best val acc",
            ],
            rows,
        )
    )
    return body


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=float, default=900, help="seconds per arm and seed")
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--target", type=float, default=0.89)
    ap.add_argument(
        "--side-by-side",
        action="store_true",
        help="run the arms at once, a share of the cores each",
    )
    ap.add_argument(
        "--full-budget", action="store_true", help="run each arm to its budget, target or not"
    )
    ap.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="one more arm: the default study with this [study] key changed "
        "(e.g. bootstrap_count=3); repeatable",
    )
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()

    exe = Path(sys.executable).parent / "fsearch"
    # Split this process's cores between the arms; each arm's TF uses exactly its share.
    mine = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    tmp_dir = tempfile.TemporaryDirectory()
    tmp = tmp_dir.name
    arms = dict(ARMS)
    for i, spec in enumerate(args.variant):
        name, path = variant_config(spec, Path(tmp) / f"variant{i}.toml")
        arms[name] = ["--config", str(path), "--sampler", "tpe", "--pruner", "hyperband"]
    if args.side_by_side and len(arms) > cores():
        sys.exit(f"--side-by-side needs a core per arm: {len(arms)} arms, {cores()} cores")
    share = max(1, cores() // len(arms)) if args.side_by_side else cores()
    results: dict[str, list] = {arm: [] for arm in arms}
    with tmp_dir:
        for seed in range(args.seeds):
            procs, dbs = {}, {}
            t0 = time.perf_counter()
            for i, (arm, flags) in enumerate(arms.items()):
                dbs[arm] = db = Path(tmp) / f"arm{i}-{seed}.db"
                cmd = [
                    str(exe),
                    "run",
                    "--study",
                    "tta",
                    "--storage",
                    f"sqlite:///{db}",
                    "--artifacts",
                    str(Path(tmp) / f"art{i}"),
                    "--trials",
                    "100000",
                    "--timeout",
                    str(args.budget),
                    "--seed",
                    str(seed),
                    "--no-export",
                    *flags,
                ]
                cpus = (
                    set(mine[i * share : (i + 1) * share])
                    if args.side_by_side and len(mine) >= 2
                    else None
                )
                print("$", " ".join(cmd), f"# cores {sorted(cpus) if cpus else 'all'}", flush=True)
                procs[arm] = subprocess.Popen(
                    cmd,
                    stdout=subprocess.DEVNULL,
                    env=child_env(seed, share) if args.side_by_side else None,
                    preexec_fn=(lambda c=cpus: os.sched_setaffinity(0, c)) if cpus else None,
                )
                if not args.side_by_side:
                    _wait({arm: procs[arm]}, dbs, args)
            if args.side_by_side:
                _wait(procs, dbs, args)
            for arm in procs:
                results[arm].append(time_to_target(dbs[arm], args.target))
                print(arm, seed, results[arm][-1], flush=True)
            print(f"seed {seed}: {time.perf_counter() - t0:.0f} s", flush=True)

    body = summarize(results, args, share)
    print(body)
    if not args.no_write:
        write_section(
            "time-to-accuracy",
            body,
            f"python -m benchmarks.time_to_accuracy --budget {args.budget:g} --seeds {args.seeds}"
            + (" --side-by-side" if args.side_by_side else "")
            + (" --full-budget" if args.full_budget else "")
            + "".join(f" --variant {v}" for v in args.variant),
        )


if __name__ == "__main__":
    main()
