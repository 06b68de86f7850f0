"""Own data: fsearch against scikit-learn baselines on the same split, and a 1M-row CSV.

    python -m benchmarks.own_data compare [--trials 40]   # digits (NPZ) and diabetes (Parquet)
    python -m benchmarks.own_data scale [--rows 1000000]  # a generated 1M x 30 CSV

compare: for each data set an fsearch study (the config `fsearch init` writes for it, with
--trials), exported, its test metric measured once; beside it scikit-learn's
HistGradientBoosting and MLP (defaults; the MLP behind a StandardScaler, as scikit-learn's
guide advises) trained on the same training part (fsearch's train + validation rows, which
fsearch splits to select; the baselines use all of them) and scored on the same test rows.
Wall time of each. Whichever wins is written down.

scale: writes a CSV of `--rows` rows x 30 columns (25 numbers, 4 text columns of 5-50
categories, a binary target), then in fresh processes: (1) load and encode it
(datasets.load_split) with the time and peak RSS, (2) `fsearch run` one trial of one epoch.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import markdown_table, write_section

ROOT = Path(__file__).resolve().parent.parent
# Other work on the machine stretches the times in these tables: say how busy it was.
LOAD_AT_START = ", ".join(f"{x:.1f}" for x in os.getloadavg())


def _fsearch(args: list[str], cwd: Path) -> tuple[float, str]:
    t0 = time.perf_counter()
    r = subprocess.run(
        [str(Path(sys.executable).parent / "fsearch"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
    )
    if r.returncode != 0:
        raise SystemExit(f"fsearch {' '.join(args)} failed:\n{r.stdout[-2000:]}{r.stderr[-2000:]}")
    return time.perf_counter() - t0, r.stdout


def _baselines(task: str, x_fit, y_fit, x_test, y_test, seed: int) -> list[tuple]:
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if task == "classification":
        models = {
            "scikit-learn HistGradientBoostingClassifier": HistGradientBoostingClassifier(
                random_state=seed
            ),
            "scikit-learn StandardScaler + MLPClassifier": make_pipeline(
                StandardScaler(), MLPClassifier(random_state=seed)
            ),
        }
    else:
        models = {
            "scikit-learn HistGradientBoostingRegressor": HistGradientBoostingRegressor(
                random_state=seed
            ),
            "scikit-learn StandardScaler + MLPRegressor": make_pipeline(
                StandardScaler(), MLPRegressor(random_state=seed)
            ),
        }
    rows = []
    for name, model in models.items():
        t0 = time.perf_counter()
        model.fit(x_fit, y_fit)
        pred = model.predict(x_test)
        seconds = time.perf_counter() - t0
        rows.append((name, _score(task, pred, y_test), seconds))
    return rows


def _score(task: str, pred, y) -> float:
    pred, y = np.asarray(pred), np.asarray(y)
    if task == "classification":
        return float(np.mean(pred == y))
    return float(np.sqrt(np.mean((pred.astype(float) - y) ** 2)))


def compare(args) -> None:
    from search import datasets
    from search.config import load_config
    from tests import datafiles

    work = Path(tempfile.mkdtemp(prefix="fsearch-own-"))
    datafiles.write_digits_npz(work / "digits.npz")
    datafiles.write_table(datafiles.diabetes_columns(), work / "diabetes.parquet")
    cases = [
        ("digits.npz", "", "digits (NPZ, 10 classes)"),
        ("diabetes.parquet", "progression", "diabetes (Parquet, regression)"),
    ]
    table = []
    os.chdir(work)
    for source, target, label in cases:
        _, toml = _fsearch(
            ["init", "--data", source, *(["--target", target] if target else [])], work
        )
        cfg_path = work / f"{Path(source).stem}.toml"
        cfg_path.write_text(toml[toml.index("# A study of") :])
        cfg = load_config(cfg_path)
        seconds, out = _fsearch(
            ["run", "--config", str(cfg_path), "--trials", str(args.trials), "--jobs", "1"], work
        )
        card = json.loads(
            (work / "studies" / cfg.study.name / "best" / "model-card.json").read_text()
        )
        metric = "test_accuracy" if card["task"] == "classification" else "test_rmse"
        task = card["task"]
        table.append(
            [
                label,
                f"fsearch, {args.trials} trials, export: {card['export']['mode']}",
                f"{card[metric]:.4f}",
                f"{seconds:.0f}",
            ]
        )
        # The same rows for the baselines: raw features, training part = train + validation.
        if source.endswith(".npz"):
            z = np.load(source)
            x_fit = z["x_train"].reshape(len(z["x_train"]), -1).astype(float)
            y_fit, x_test = z["y_train"], z["x_test"].reshape(len(z["x_test"]), -1).astype(float)
            y_test = z["y_test"]
        else:
            import pyarrow.parquet as pq

            t = pq.read_table(source).to_pydict()
            feats = [k for k in t if k != target]
            x = np.column_stack([np.asarray(t[k], dtype=float) for k in feats])
            y = np.asarray(t[target], dtype=float)
            test = datasets.held_out_rows(cfg.data)
            fit = np.setdiff1d(np.arange(len(y)), test)
            x_fit, y_fit, x_test, y_test = x[fit], y[fit], x[test], y[test]
        for name, score, secs in _baselines(task, x_fit, y_fit, x_test, y_test, seed=0):
            table.append([label, name, f"{score:.4f}", f"{secs:.1f}"])
        print(table[-3:], flush=True)
    body = (
        f"Load average at the start: {LOAD_AT_START}. "
        "Test metric (accuracy for digits, RMSE for diabetes: lower is better) of the model each "
        "tool produces from the same training part, scored on the same test rows (digits: the "
        "NPZ's own 297 test images; diabetes: fsearch's seeded 20% hold-out). fsearch selects "
        "on 20% of its training part and trains its exported model on the other 80%; the "
        "baselines train on all of it with their defaults. Seconds: fsearch's whole study and "
        "export (2 cores, one worker); the baselines' fit and predict.\n\n"
        + markdown_table(["data", "model", "test metric", "seconds"], table)
    )
    write_section("own-data", body, f"python -m benchmarks.own_data compare --trials {args.trials}")
    print(body)


def write_big_csv(path: Path, rows: int, seed: int = 0) -> None:
    import pyarrow as pa
    import pyarrow.csv as pcsv

    rng = np.random.default_rng(seed)
    cols, logit = {}, np.zeros(rows)
    for i in range(25):
        v = rng.normal(size=rows)
        cols[f"x{i}"] = v
        logit += v * (0.5 if i < 5 else 0.0)
    for i, k in enumerate((5, 10, 20, 50)):
        codes = rng.integers(0, k, size=rows)
        cols[f"c{i}"] = pa.array(np.array([f"v{j}" for j in range(k)])[codes])
        logit += (codes % 2) * 0.3
    cols["y"] = (logit + rng.logistic(size=rows) > 0).astype(np.int64)
    pcsv.write_csv(pa.table(cols), path)


_LOAD = """
import resource, sys, time, json
t0 = time.perf_counter()
from search import datasets
from search.config import DataSettings
s = datasets.load_split(DataSettings(source=sys.argv[1], target="y", validation_fraction=0.2))
print(json.dumps({"seconds": time.perf_counter() - t0, "train": len(s.y_train),
    "inputs": s.input_dim, "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "x_mb": (s.x_train.nbytes + s.x_val.nbytes) / 2**20}))
"""


def scale(args) -> None:
    work = Path(tempfile.mkdtemp(prefix="fsearch-scale-"))
    csv = work / "big.csv"
    t0 = time.perf_counter()
    write_big_csv(csv, args.rows)
    write_s = time.perf_counter() - t0
    size_mb = csv.stat().st_size / 2**20
    r = subprocess.run(
        [sys.executable, "-c", _LOAD, str(csv)], capture_output=True, text=True, cwd=work
    )
    if r.returncode:
        raise SystemExit(r.stderr[-3000:])
    load = json.loads(r.stdout.strip().splitlines()[-1])
    _, toml = _fsearch(["init", "--data", "big.csv", "--target", "y"], work)
    text = toml[toml.index("# A study of") :]
    text = re.sub(r"(?m)^epochs = .*$", "epochs = 1", text)
    text = re.sub(r"(?m)^batch_size = .*$", "batch_size = 512", text)
    (work / "big.toml").write_text(text)
    seconds, out = _fsearch(
        [
            "run",
            "--config",
            "big.toml",
            "--trials",
            "1",
            "--pruner",
            "none",
            "--storage",
            f"sqlite:///{work}/big.db",
            "--jobs",
            "1",
            "--no-refit",  # the measurement is reading, encoding and one trial, not a refit
            "--ensemble",
            "1",
        ],
        work,
    )
    import optuna

    study = optuna.load_study(study_name="big-mlp", storage=f"sqlite:///{work}/big.db")
    t = study.trials[0]
    rows = [
        [
            "CSV written (pyarrow)",
            f"{args.rows:,} rows x 30 columns, {size_mb:.0f} MiB",
            f"{write_s:.1f} s",
        ],
        [
            "read + encode + split (datasets.load_split, fresh process)",
            f"{load['train']:,} training rows x {load['inputs']} inputs "
            f"({load['x_mb']:.0f} MiB float32); peak RSS {load['maxrss_mb']:.0f} MiB",
            f"{load['seconds']:.1f} s",
        ],
        [
            "`fsearch run` 1 trial, 1 epoch, batch 512, then export",
            f"{t.user_attrs.get('architecture')}, val_accuracy {t.value:.4f}, epoch "
            f"{t.user_attrs.get('sec_per_epoch')} s, RSS after the trial "
            f"{t.user_attrs.get('rss_mb')} MB",
            f"{seconds:.0f} s in all",
        ],
    ]
    body = f"Load average at the start: {LOAD_AT_START}.\n\n" + markdown_table(
        ["step", "what", "time"], rows
    )
    write_section("own-data-scale", body, f"python -m benchmarks.own_data scale --rows {args.rows}")
    print(body)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("compare")
    c.add_argument("--trials", type=int, default=40)
    s = sub.add_parser("scale")
    s.add_argument("--rows", type=int, default=1_000_000)
    args = p.parse_args()
    sys.path.insert(0, str(ROOT))
    compare(args) if args.cmd == "compare" else scale(args)


if __name__ == "__main__":
    main()
