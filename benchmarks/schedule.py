"""Epoch budget and learning-rate schedule: what the default study's 12 cosine epochs cost and buy.

Trains the best network of a 24-epoch constant-rate study (784x709x709x709x709x10, Adam,
L2 2.6e-5, dropout 0.2; BENCHMARKS.md `study`) through fsearch's trainer, under the old default
(constant rate, 24 epochs, batch 128) and under cosine decay over 12 epochs at batch 128, 256
and 512 (the rate scaled with the batch). Prints the best validation accuracy, the epoch it
came at, seconds per epoch and the whole fit's time, and writes its section of BENCHMARKS.md.

    .venv/bin/python -m benchmarks.schedule          # its table's `fit minutes`, and more
"""

from __future__ import annotations

import argparse
import os
import statistics

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from benchmarks.common import fsearch_fit, markdown_table, write_section  # noqa: E402
from search.config import load_config  # noqa: E402
from search.data import load_split  # noqa: E402
from search.space import Hyperparams  # noqa: E402
from search.training import Rows  # noqa: E402

BASE = dict(widths=(709,) * 4, optimizer="adam", regularizer="l2", reg_strength=2.6e-5, dropout=0.2)
# (schedule, epochs, batch size, learning rate)
ARMS = [
    ("constant", 24, 128, 2e-4),
    ("cosine", 12, 128, 2e-4),
    ("cosine", 12, 256, 5e-4),
    ("cosine", 12, 512, 1e-3),
]


def train(hp: Hyperparams, cfg, split, tensors) -> tuple[list[float], list[float]]:
    """(validation accuracy per epoch, seconds per epoch) from fsearch's own fit."""
    h, secs = fsearch_fit(hp, cfg, tensors, seed=1)
    return [float(a) for a in h.history["val_accuracy"]], secs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()

    cfg = load_config()
    split = load_split(cfg.data)
    tensors = Rows.search(split).as_tensors()
    rows = []
    for schedule, epochs, batch, lr in ARMS:
        hp = Hyperparams(
            **BASE, learning_rate=lr, batch_size=batch, epochs=epochs, lr_schedule=schedule
        )
        accs, secs = train(hp, cfg, split, tensors)
        best = max(accs)
        rows.append(
            [
                f"{schedule}, {epochs} epochs",
                batch,
                f"{lr:g}",
                f"**{best:.4f}**",
                accs.index(best) + 1,
                f"{accs[11]:.4f}" if len(accs) >= 12 else "",
                f"{statistics.median(secs[1:]):.1f}",
                f"{sum(secs) / 60:.1f}",
            ]
        )
        print(rows[-1], flush=True)
    body = (
        "784x709x709x709x709x10, Adam, L2 2.6e-5, dropout 0.2, seed 1, trained by fsearch's "
        "trainer on the 50,000-image training split, scored on the 10,000-image validation "
        "split. The first row is the old default (constant rate, 24 epochs, batch 128); the "
        "others the default study's cosine decay over 12 epochs.\n\n"
        + markdown_table(
            [
                "schedule",
                "batch",
                "learning rate",
                "best val acc",
                "at epoch",
                "val acc at epoch 12",
                "s/epoch",
                "fit minutes",
            ],
            rows,
        )
    )
    print(body)
    if not args.no_write:
        write_section("schedule", body, "python -m benchmarks.schedule")


if __name__ == "__main__":
    main()
