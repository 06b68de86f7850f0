"""Precision benchmark: the hidden layers in float32 against Keras' mixed_bfloat16, side by side.

The `precision` key of [space] (search/model.py) changes the hidden layers' arithmetic. This
measures, on this machine, what it buys and what it costs:

- speed: configurations drawn from the default study's space (RandomSampler seed 0), each
  trained a few epochs in float32 and in mixed_bfloat16 one after the other in the same
  process, seconds per epoch after the first (which traces the graph);
- accuracy: the default study's queued first trials (search/first_trials.py, the nets the
  default study trains first), trained their full epochs in each precision over seeds, the
  study's value (best epoch's validation accuracy) compared. Validation only: no test image
  is read.

Like `fsearch run --jobs auto`: one process per worker, each with its share of the cores
(FSEARCH_TF_THREADS, FSEARCH_CPUS, as search/workers.py starts them), the work dealt out
configuration by configuration, so both precisions of a configuration run on the same core.

    .venv/bin/python -m benchmarks.precision            # writes its section of BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

PRECISIONS = ("float32", "mixed_bfloat16")
SECTION = "precision"


def work_items(args) -> list[dict]:
    """Every (kind, configuration, seed) to train, each in both precisions."""
    items = [{"kind": "speed", "index": i, "seed": 0} for i in range(args.samples)]
    # Net by net, so dealing them out alternately splits each net's seeds between workers.
    items += [
        {"kind": "accuracy", "index": k, "seed": s}
        for k in range(args.known)
        for s in range(args.seeds)
    ]
    return items


def hyperparams(item: dict, cfg, dims: dict, sampled: list):
    """The item's Hyperparams (float32)."""
    import optuna

    from search.first_trials import FASHION, fitted
    from search.space import suggest

    if item["kind"] == "speed":
        return sampled[item["index"]]
    params = fitted(FASHION[item["index"]], cfg)
    return suggest(optuna.trial.FixedTrial(params), cfg, **dims)


def sample_space(cfg, dims: dict, n: int) -> list:
    import optuna

    from search.space import suggest

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    out = []
    for _ in range(n):
        trial = study.ask()
        out.append(suggest(trial, cfg, **dims))
        study.tell(trial, 0.0)
    return out


def worker(args) -> None:
    """Train this worker's share of the items; one JSON line per (item, precision)."""
    from search._tf import import_tensorflow
    from search.cpus import apply_thread_limits, pin_cpus

    pin_cpus()
    import_tensorflow()
    apply_thread_limits()
    from benchmarks.common import fsearch_fit, steady
    from search.config import load_config
    from search.data import load_split
    from search.training import Rows, trial_seed

    cfg = load_config()
    split = load_split(cfg.data)
    dims = split.dims
    rows = Rows.search(split).as_tensors()
    sampled = sample_space(cfg, dims, args.samples)
    items = work_items(args)[args.worker :: args.procs]
    for item in items:
        hp = hyperparams(item, cfg, dims, sampled)
        epochs = args.speed_epochs if item["kind"] == "speed" else None
        # The order alternates so neither precision always runs first on a warm core.
        order = PRECISIONS if (item["index"] + item["seed"]) % 2 == 0 else PRECISIONS[::-1]
        for precision in order:
            t0 = time.perf_counter()
            history, times = fsearch_fit(
                dataclasses.replace(hp, precision=precision),
                cfg,
                rows,
                seed=trial_seed(cfg.study.seed, item["seed"]),
                epochs=epochs,
            )
            val = history.history["val_accuracy"]
            print(
                json.dumps(
                    {
                        **item,
                        "precision": precision,
                        "net": f"{hp.architecture} {hp.optimizer} bs {hp.batch_size}",
                        "sec_per_epoch": steady(times),
                        "first_epoch": times[0],
                        "epochs_seconds": sum(times),
                        "seconds": time.perf_counter() - t0,
                        "best_val": max(val),
                        "epochs": len(val),
                    }
                ),
                flush=True,
            )


def run_workers(args) -> list[dict]:
    """Start args.procs workers, each on its share of the cores; their records."""
    from search.cpus import ENV_CPUS, ENV_THREADS, cpu_share, threads_per_worker

    threads = threads_per_worker(args.procs)
    procs = []
    for w in range(args.procs):
        env = {
            **os.environ,
            ENV_THREADS: str(threads),
            ENV_CPUS: ",".join(map(str, cpu_share(w, threads))),
        }
        cmd = [sys.executable, "-m", "benchmarks.precision", *sys.argv[1:], "--worker", str(w)]
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True))
    records = []
    for p in procs:
        out, _ = p.communicate()
        if p.returncode != 0:
            sys.exit(f"precision worker exited {p.returncode}")
        for line in out.splitlines():
            if line.startswith("{"):
                records.append(json.loads(line))
                print(line, flush=True)
    return records


def pair(records: list[dict], kind: str) -> list[tuple[dict, dict]]:
    """(float32, mixed_bfloat16) records of each item of this kind, in item order."""
    by = {}
    for r in records:
        if r["kind"] == kind:
            by.setdefault((r["index"], r["seed"]), {})[r["precision"]] = r
    return [(v["float32"], v["mixed_bfloat16"]) for _, v in sorted(by.items())]


def summarize(records: list[dict], args) -> str:
    from benchmarks.common import markdown_table

    speed = pair(records, "speed")
    ratios = [f["sec_per_epoch"] / b["sec_per_epoch"] for f, b in speed]
    f32_total = sum(f["sec_per_epoch"] for f, _ in speed)
    bf_total = sum(b["sec_per_epoch"] for _, b in speed)
    lines = [
        f"{args.procs} worker process(es) at once, {os.cpu_count()} cores, like `fsearch run "
        "--jobs auto`; each configuration's two precisions ran one after the other in one "
        "worker. Speed-up = float32's s/epoch over mixed_bfloat16's (median of epochs "
        f"2..{args.speed_epochs}; the first traces the graph).",
        "",
    ]
    if speed:
        lines += [
            f"{len(speed)} configurations drawn from the default study's space (RandomSampler "
            f"seed 0): speed-up median **{statistics.median(ratios):.2f}x**, lowest "
            f"{min(ratios):.2f}x, highest {max(ratios):.2f}x; their summed s/epoch "
            f"{f32_total:.1f} against {bf_total:.1f} (**{f32_total / bf_total:.2f}x**), the "
            "wide nets weighing as in a study's time.",
            "",
            markdown_table(
                [
                    "net",
                    "float32 s/epoch",
                    "mixed_bfloat16 s/epoch",
                    "speed-up",
                    "first epoch float32 / bf16 s",
                ],
                [
                    [
                        f["net"],
                        f"{f['sec_per_epoch']:.2f}",
                        f"{b['sec_per_epoch']:.2f}",
                        f"{r:.2f}x",
                        f"{f['first_epoch']:.2f} / {b['first_epoch']:.2f}",
                    ]
                    for (f, b), r in zip(speed, ratios, strict=True)
                ],
            ),
            "",
        ]
    acc = pair(records, "accuracy")
    if acc:
        from search.first_trials import FASHION

        rows = []
        for k in range(args.known):
            mine = [(f, b) for f, b in acc if f["index"] == k]
            rows.append(
                [
                    f"#{k} {mine[0][0]['net']}",
                    ", ".join(str(f["seed"]) for f, _ in mine),
                    ", ".join(f"{f['best_val']:.4f}" for f, _ in mine),
                    ", ".join(f"{b['best_val']:.4f}" for _, b in mine),
                    f"{statistics.mean(b['best_val'] - f['best_val'] for f, b in mine):+.4f}",
                    f"{statistics.mean(f['seconds'] for f, _ in mine):.0f} / "
                    f"{statistics.mean(b['seconds'] for _, b in mine):.0f}",
                    ", ".join(f"{f['first_epoch']:.1f} / {b['first_epoch']:.1f}" for f, b in mine),
                    ", ".join(
                        f"{f['sec_per_epoch']:.2f} / {b['sec_per_epoch']:.2f}" for f, b in mine
                    ),
                    ", ".join(
                        f"{f['epochs_seconds']:.0f} / {b['epochs_seconds']:.0f}" for f, b in mine
                    ),
                ]
            )
        lines += [
            f"The default study's queued first trials ({len(FASHION)} known configurations, "
            "search/first_trials.py), each trained its full epochs in both precisions with the "
            "seed of the study's trial number `seed` (training.trial_seed); the value is the "
            "study's, the best epoch's validation accuracy. Seconds: the whole training (build, "
            "epochs, validation); per seed, the first epoch (it traces the graph), the median "
            "of the later ones, and all epochs summed.",
            "",
            markdown_table(
                [
                    "first trial",
                    "seeds",
                    "float32 best val acc",
                    "mixed_bfloat16 best val acc",
                    "mean difference",
                    "seconds float32 / bf16 (mean)",
                    "first epoch s float32 / bf16",
                    "later epochs' median s float32 / bf16",
                    "all epochs s float32 / bf16",
                ],
                rows,
            ),
        ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=10, help="configs drawn from the space")
    ap.add_argument("--speed-epochs", type=int, default=3, help="epochs per drawn config (>= 2)")
    ap.add_argument("--known", type=int, default=2, help="first trials trained to the end")
    ap.add_argument("--seeds", type=int, default=3, help="seeds per first trial")
    ap.add_argument("--procs", type=int, default=0, help="workers (0: as --jobs auto)")
    ap.add_argument("--worker", type=int, default=-1, help=argparse.SUPPRESS)
    ap.add_argument("--no-write", action="store_true", help="print only")
    args = ap.parse_args()
    from search.cpus import auto_jobs
    from search.first_trials import FASHION

    args.procs = args.procs or auto_jobs(n_gpus=0)
    if args.speed_epochs < 2:
        ap.error("--speed-epochs must be >= 2 (the first epoch traces the graph)")
    if not 0 <= args.known <= len(FASHION):
        ap.error(f"--known must be between 0 and {len(FASHION)}")
    if args.worker >= 0:
        worker(args)
        return
    from benchmarks.common import write_section

    t0 = time.perf_counter()
    records = run_workers(args)
    body = summarize(records, args)
    body += f"\n\nThe whole run took {(time.perf_counter() - t0) / 60:.1f} min."
    print(body)
    if not args.no_write:
        flags = " ".join(a for a in sys.argv[1:] if a != "--no-write")
        write_section(SECTION, body, f"python -m benchmarks.precision {flags}".strip())


if __name__ == "__main__":
    main()
