"""GPU benchmark: the default study through `fsearch run` under JAX, GPU utilization sampled.

Runs studies/fashion-mnist-mlp.toml (or --config) with KERAS_BACKEND=jax for --trials
finished trials with --jobs workers on a fresh SQLite database, while
`nvidia-smi --query-gpu=... -l 1` samples every GPU's utilization and memory once a second in
the background. Prints, and writes to OUT/gpu-summary.json: trials finished (complete /
pruned / failed), wall minutes of the whole command, minutes to the first 0.89 validation
accuracy, the mean GPU utilization while trials ran (first trial's start to last trial's end),
peak memory, the best validation accuracy and the exported model's test accuracy.

Made for a machine with NVIDIA GPUs, JAX and no TensorFlow (benchmarks/README-gpu.md: how to
carry fsearch's few missing packages there). It needs no GPU to run: without nvidia-smi the
utilization fields are null (that is how it is tested on CPU).

    python3 -m benchmarks.gpu --trials 200 --jobs 8 --data-dir .data --out "$OUT"
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchmarks.common import first_reaching

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = ROOT / "studies" / "fashion-mnist-mlp.toml"
STUDY = "gpu-bench"
TARGET = 0.89  # validation accuracy: the "first 0.89" figure
# What `fsearch run` imports on the way (TensorFlow is not among them under JAX).
NEEDED = ("keras", "jax", "optuna", "sqlalchemy", "alembic", "colorlog", "typer", "rich", "numpy")
SMI_QUERY = "index,utilization.gpu,memory.used"


class GpuSampler:
    """`nvidia-smi -l 1` in the background: (time, gpu index, util %, memory MiB) rows."""

    def __init__(self, log: Path | None) -> None:
        self.rows: list[tuple[float, int, float, float]] = []
        self.log = log
        self.proc: subprocess.Popen | None = None
        self.thread: threading.Thread | None = None

    def __enter__(self) -> GpuSampler:
        smi = shutil.which("nvidia-smi")
        if smi is None:
            print("gpu-bench: no nvidia-smi here; GPU utilization is not sampled", flush=True)
            return self
        self.proc = subprocess.Popen(
            [smi, f"--query-gpu={SMI_QUERY}", "--format=csv,noheader,nounits", "-l", "1"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        return self

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        out = open(self.log, "w") if self.log else None  # closed in finally
        try:
            if out:
                out.write(f"unix_time,{SMI_QUERY}\n")
            for line in self.proc.stdout:
                parts = [p.strip() for p in line.split(",")]
                try:
                    row = (time.time(), int(parts[0]), float(parts[1]), float(parts[2]))
                except (IndexError, ValueError):
                    continue
                self.rows.append(row)
                if out:
                    out.write(",".join(map(str, row)) + "\n")
                    out.flush()
        finally:
            if out:
                out.close()

    def __exit__(self, *exc) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        if self.thread is not None:
            self.thread.join(timeout=5)


def missing_packages() -> list[str]:
    return [name for name in NEEDED if importlib.util.find_spec(name) is None]


def summarize(
    storage: str, rows: list[tuple[float, int, float, float]], started: float, ended: float
) -> dict:
    """The figures of a finished run, from its study database and the GPU samples."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=STUDY, storage=storage)
    trials = [t for t in study.trials if t.datetime_complete is not None]
    by_state: dict[str, int] = {}
    for t in trials:
        by_state[t.state.name] = by_state.get(t.state.name, 0) + 1
    out: dict = {
        "trials_finished": by_state.get("COMPLETE", 0) + by_state.get("PRUNED", 0),
        "complete": by_state.get("COMPLETE", 0),
        "pruned": by_state.get("PRUNED", 0),
        "failed": by_state.get("FAIL", 0),
        "wall_minutes": round((ended - started) / 60, 2),
    }
    best = None
    try:
        best = study.best_value
    except ValueError:  # no complete trial
        pass
    out["best_val_accuracy"] = round(best, 4) if best is not None else None
    if trials:
        first = min(t.datetime_start for t in trials).timestamp()
        last = max(t.datetime_complete for t in trials).timestamp()
        reach = first_reaching(trials, TARGET)
        out["first_trial_start_minutes"] = round((first - started) / 60, 2)
        out["training_minutes"] = round((last - first) / 60, 2)
        # With --timeout short of the whole study: 200 trials at this rate, start-up included.
        rate = out["trials_finished"] / max((last - first) / 60, 1e-9)
        out["finished_per_minute"] = round(rate, 2)
        out["projected_minutes_for_200"] = (
            round((first - started) / 60 + 200 / rate, 1) if rate > 0 else None
        )
        out[f"minutes_to_{TARGET}"] = (
            round((first - started + reach) / 60, 2) if reach is not None else None
        )
        devices = sorted({str(t.user_attrs["device"]) for t in trials if "device" in t.user_attrs})
        out["devices"] = devices
        window = [r for r in rows if first <= r[0] <= last]
    else:
        window = []
    out["gpu_samples"] = len(window)
    out["mean_gpu_util_pct"] = round(statistics.fmean(r[2] for r in window), 1) if window else None
    out["peak_gpu_memory_mib"] = max((r[3] for r in rows), default=None)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--jobs", default="8", help="workers: a number or 'auto' [8]")
    ap.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    ap.add_argument("--data-dir", type=Path, default=None, help="the four Fashion-MNIST .gz")
    ap.add_argument("--timeout", type=float, default=None, help="fsearch run --timeout SECONDS")
    ap.add_argument("--backend", default="jax", help="KERAS_BACKEND [jax]")
    ap.add_argument("--out", type=Path, default=Path("."), help="where the summary, log go")
    ap.add_argument("--workdir", type=Path, default=None, help="database, models [a temp dir]")
    ap.add_argument(
        "--fsearch-arg", action="append", default=[], help="one more `fsearch run` argument"
    )
    args = ap.parse_args(argv)

    missing = missing_packages()
    if missing:
        print(
            f"gpu-bench: missing Python packages: {', '.join(missing)}; carry them as wheels "
            "(benchmarks/README-gpu.md)",
            file=sys.stderr,
        )
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="fsearch-gpu-"))
    work.mkdir(parents=True, exist_ok=True)
    storage = f"sqlite:///{work.resolve()}/bench.db"
    cmd = [
        sys.executable, "-m", "search.cli", "run",
        "--config", str(args.config.resolve()),
        "--study", STUDY,
        "--storage", storage,
        "--artifacts", str(work.resolve() / "artifacts"),
        "--export-dir", str(work.resolve() / "best"),
        "--trials", str(args.trials),
        "--jobs", str(args.jobs),
    ]  # fmt: skip
    if args.data_dir is not None:
        cmd += ["--data-dir", str(args.data_dir.resolve())]
    if args.timeout is not None:
        cmd += ["--timeout", str(args.timeout)]
    cmd += args.fsearch_arg
    env = {**os.environ, "KERAS_BACKEND": args.backend, "PYTHONUNBUFFERED": "1"}
    # `-m search.cli` (and its --jobs workers) find fsearch from the repository, installed or not.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env.pop("FSEARCH_STORAGE", None)
    print("gpu-bench:", " ".join(cmd), flush=True)

    with (
        GpuSampler(args.out / "gpu-smi.csv") as sampler,
        open(args.out / "gpu-run.log", "w") as log,
    ):
        started = time.time()
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(line)
            log.write(line)
        code = proc.wait()
        ended = time.time()

    summary = {
        "backend": args.backend,
        "jobs": args.jobs,
        "trials_asked": args.trials,
        "exit_code": code,
        **summarize(storage, sampler.rows, started, ended),
    }
    card = work / "best" / "model-card.json"
    if card.is_file():
        summary["test_accuracy"] = json.loads(card.read_text()).get("test_accuracy")
    text = json.dumps(summary, indent=2)
    (args.out / "gpu-summary.json").write_text(text + "\n")
    print(text)
    return 0 if code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
