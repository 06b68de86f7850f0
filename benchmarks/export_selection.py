"""Which export should `fsearch run` make, decided without the test set (issue #21, item 4).

    python -m benchmarks.export_selection --seeds 1 --trials 60 --jobs 2 [--work DIR]

`benchmarks.export_modes` compared the four export modes on test accuracy, and the default
was set from that table: every study shares the same 10,000 test images, so the default's
test figure rested on a choice made with them. Here the choice rests on *selection* images
instead: each study is the default study with SELECTION of the 60,000 training images held
out of it (`[data] train_size` = 60,000 - validation - SELECTION), so no model trains on them
(a refit trains on train + validation only) and no trial is selected on them. Every study is
exported four ways (selected, refit, ensemble K, ensemble K + refit); each export is scored on
the selection images, and the mode with the best median selection accuracy over the studies
is the one to default to. Test accuracy is read once per export by `fsearch export` for its
card, and printed after the choice, for the record.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import time
from pathlib import Path

import numpy as np

from benchmarks.common import markdown_table, write_section
from benchmarks.export_modes import ROOT, _run, mode_flags, mode_of, study_options

SECTION = "export-selection"
SELECTION = 5000  # training images held out of every study here, for choosing the mode
DEFAULT_TOML = ROOT / "studies" / "fashion-mnist-mlp.toml"


def study_toml(name: str, selection: int) -> str:
    """The default study's TOML under another name, its training part `selection` smaller."""
    from search.config import load_config

    cfg = load_config(DEFAULT_TOML)
    train = 60000 - cfg.data.validation_size - selection
    text = DEFAULT_TOML.read_text()
    text = re.sub(r'(?m)^name = ".*?"', f'name = "{name}"', text, count=1)
    return re.sub(r"(?m)^\[data\]\n", f"[data]\ntrain_size = {train}\n", text, count=1)


def selection_rows(settings) -> tuple[np.ndarray, str]:
    """The training images no part of the study holds, and the split hash the study must
    have recorded (the same stratified draws as search.data's split, so it is checked)."""
    from search.data import read_raw, split_hash, stratified_indices

    raw = read_raw()
    rng = np.random.default_rng(settings.seed)
    n = len(raw.train_y)
    val = stratified_indices(raw.train_y, settings.validation_size, rng)
    rest = np.setdiff1d(np.arange(n), val, assume_unique=True)
    rest = rest[stratified_indices(raw.train_y[rest], settings.train_size, rng)]
    unused = np.setdiff1d(np.arange(n), np.concatenate([val, rest]))
    return unused, split_hash(raw.gz_sha256, rest, val)


def selection_accuracy(model_file: Path, rows: np.ndarray) -> float:
    import keras

    from search.data import read_raw

    raw = read_raw()
    x = raw.train_x[rows].reshape(len(rows), -1).astype(np.float32) / np.float32(255.0)
    model = keras.saving.load_model(model_file)
    pred = np.asarray(model.predict(x, batch_size=4096, verbose=0)).argmax(axis=1)
    return float(np.mean(pred == raw.train_y[rows]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    study_options(p, seeds=1, trials=60, work="/tmp/fsearch-export-selection")
    p.add_argument("--no-write", action="store_true", help="print, do not edit BENCHMARKS.md")
    args = p.parse_args()
    import optuna

    from search._tf import import_backend
    from search.config import load_config

    import_backend()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    args.work.mkdir(parents=True, exist_ok=True)
    storage = f"sqlite:///{args.work / 'selection.db'}"
    where = ["--storage", storage, "--artifacts", str(args.work / "artifacts")]
    k = args.ensemble
    modes = mode_flags(k)
    rows = []
    with open(args.work / "log.txt", "a") as log:
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            name = f"fm-selection-seed{seed}"
            toml = args.work / f"{name}.toml"
            toml.write_text(study_toml(name, SELECTION))
            cfg = load_config(toml)
            t0 = time.perf_counter()
            run = ["run", "--config", str(toml), "--seed", str(seed), "--trials", str(args.trials)]
            _run([*run, "--jobs", str(args.jobs), "--no-export", *where], log)
            minutes = (time.perf_counter() - t0) / 60
            print(f"seed {seed}: search {minutes:.1f} min (this run)", flush=True)
            rows_sel, want_sha = selection_rows(cfg.data)
            study = optuna.load_study(study_name=name, storage=storage)
            got_sha = study.user_attrs["fsearch:data_split"]["sha"]
            assert got_sha == want_sha, "the selection rows are not the ones the study left out"
            for mode, flags in modes.items():
                out = args.work / name / mode.replace(" ", "-").replace("+", "and")
                if not (out / "model-card.json").exists():
                    _run(["export", "--study", name, "--out", str(out), *flags, *where], log)
                card = json.loads((out / "model-card.json").read_text())
                assert mode_of(card, k) == mode, (out, card["export"])
                sel = selection_accuracy(out / "model.keras", rows_sel)
                rows.append([f"seed {seed}", mode, f"{sel:.4f}", f"{card['test_accuracy']:.4f}",
                             f"{card['export_seconds']:.0f}"])  # fmt: skip
                print(" | ".join(rows[-1]), flush=True)
    by_mode: dict[str, list[float]] = {}
    for r in rows:
        by_mode.setdefault(r[1], []).append(float(r[2]))
    summary = [[m, f"{statistics.median(v):.4f}", str(len(v))] for m, v in by_mode.items()]
    chosen = max(by_mode, key=lambda m: statistics.median(by_mode[m]))
    body = (
        f"Studies: the default study with {SELECTION:,} training images held out of it "
        f"(`[data] train_size = {60000 - 10000 - SELECTION}`), `--seed N`, {args.trials} "
        f"trials, `--jobs {args.jobs}`; each exported four ways. *selection*: accuracy on the "
        f"{SELECTION:,} held-out training images (no model trained on them, no trial was "
        "selected on them); *test*: the card's test accuracy, read by each export once and "
        "not used for the choice.\n\n"
        + markdown_table(["study", "export", "selection", "test", "export s"], rows)
        + "\n\nMedian selection accuracy over the studies:\n\n"
        + markdown_table(["export", "median selection", "studies"], summary)
        + f"\n\nBest on selection: **{chosen}**."
    )
    command = (
        f"python -m benchmarks.export_selection --seeds {args.seeds} --first-seed "
        f"{args.first_seed} --trials {args.trials} --jobs {args.jobs} --ensemble {k}"
    )
    if not args.no_write:
        write_section(SECTION, body, command)
    print(body)


if __name__ == "__main__":
    main()
