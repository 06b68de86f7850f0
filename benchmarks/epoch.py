"""Epoch benchmark: plain `model.fit` vs fsearch's trainer, side by side in one process.

Same model, same batch size, same data; "plain" is what the lab report's code does (compile
with defaults, fit NumPy arrays, validate at the training batch size), "fsearch" is
search.training.train with the default study's [train] settings.
Also prints achieved GFLOP/s against a 2048x2048 matmul measured in the same run, and the
ratio over configurations sampled from the default search space.

    .venv/bin/python -m benchmarks.epoch            # writes its section of BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import os
import statistics

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from benchmarks.common import (  # noqa: E402
    epoch_timer,
    fsearch_fit,
    markdown_table,
    matmul_gflops,
    steady,
    write_section,
)
from search.config import load_config  # noqa: E402
from search.data import load_split  # noqa: E402
from search.model import INPUT_DIM, N_CLASSES, count_params  # noqa: E402
from search.space import Hyperparams, suggest  # noqa: E402
from search.training import Rows  # noqa: E402


def plain(hp: Hyperparams, split, epochs: int):
    """The lab's way: Sequential Dense layers, compile() defaults, fit() on NumPy arrays."""
    import keras

    from search.model import _optimizer, _regularizer

    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    layers = [keras.Input((INPUT_DIM,))]
    for w in hp.widths:
        layers.append(
            keras.layers.Dense(w, activation=hp.activation, kernel_regularizer=_regularizer(hp))
        )
        if hp.dropout:
            layers.append(keras.layers.Dropout(hp.dropout))
    layers.append(keras.layers.Dense(N_CLASSES, activation="softmax"))
    model = keras.Sequential(layers)
    model.compile(
        optimizer=_optimizer(hp, len(split.y_train)),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    cb, times = epoch_timer()
    h = model.fit(
        split.x_train,
        split.y_train,
        batch_size=hp.batch_size,
        epochs=epochs,
        validation_data=(split.x_val, split.y_val),
        verbose=0,
        callbacks=[cb],
    )
    return times, h.history["val_accuracy"][-1]


def fsearch(hp: Hyperparams, split, epochs: int, cfg, tensors):
    h, times = fsearch_fit(hp, cfg, tensors, seed=0, epochs=epochs)
    return times, h.history["val_accuracy"][-1]


def epoch_flops(hp: Hyperparams, n_train: int, n_val: int) -> float:
    """Multiply-add FLOPs of one epoch: forward+backward (6/weight) on train, forward on val."""
    weights = count_params(hp)
    return 6 * weights * n_train + 2 * weights * n_val


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=20, help="configs sampled from the space")
    ap.add_argument("--epochs", type=int, default=4, help="epochs for the two headline models")
    ap.add_argument(
        "--sample-epochs", type=int, default=3, help="epochs for each sampled configuration"
    )
    ap.add_argument("--no-write", action="store_true", help="print only")
    args = ap.parse_args()

    import optuna

    from search._tf import import_tensorflow

    import_tensorflow()

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    cfg = load_config()
    split = load_split(cfg.data)
    tensors = Rows.search(split).as_tensors()
    n_train, n_val = len(split.y_train), len(split.y_val)
    rate = matmul_gflops()
    print(f"matmul 2048x2048 float32: {rate:.0f} GFLOP/s")

    head = [
        Hyperparams(widths=(64, 64), optimizer="sgd", learning_rate=0.1, batch_size=32),
        Hyperparams(widths=(256, 128), optimizer="adam", learning_rate=1e-3, batch_size=256),
    ]
    rows = []
    for hp in head:
        pt, pacc = plain(hp, split, args.epochs)
        ft, facc = fsearch(hp, split, args.epochs, cfg, tensors)
        flops = epoch_flops(hp, n_train, n_val)
        floor = flops / (rate * 1e9)
        rows.append(
            [
                f"{hp.architecture} bs {hp.batch_size} {hp.optimizer}",
                f"{steady(pt):.2f}",
                f"{steady(ft):.2f}",
                f"**{steady(pt) / steady(ft):.1f}x**",
                f"{pt[0]:.2f} / {ft[0]:.2f}",
                f"{flops / steady(ft) / 1e9:.0f}",
                f"{floor:.2f}",
                f"{steady(ft) / floor:.1f}x",
                f"{pacc:.4f} / {facc:.4f}",
            ]
        )
        print(rows[-1], flush=True)
    header = [
        "model",
        "plain s/epoch",
        "fsearch s/epoch",
        "speed-up",
        "1st epoch plain/fsearch",
        "fsearch GFLOP/s",
        "matmul floor s",
        "fsearch / floor",
        f"val acc after {args.epochs} ep plain/fsearch",
    ]
    body = (
        f"One epoch = {n_train:,} training images + validation on {n_val:,}; steady-state "
        f"epoch time is the median of epochs 2..{args.epochs} (epoch 1 includes graph tracing). "
        f"Matmul rate in the same run: {rate:.0f} GFLOP/s; the floor is the epoch's FLOPs at that "
        "rate.\n\n" + markdown_table(header, rows)
    )

    # The same comparison over configurations drawn from the default search space.
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    ratios, srows = [], []
    # Median over epochs 2..n like the headline models: one epoch alone is at the mercy of this
    # shared machine.
    n = max(args.sample_epochs, 2)
    for _ in range(args.samples):
        trial = study.ask()
        hp = suggest(trial, cfg)
        study.tell(trial, 0.0)
        pt, _ = plain(hp, split, n)
        ft, _ = fsearch(hp, split, n, cfg, tensors)
        r = steady(pt) / steady(ft)
        ratios.append(r)
        srows.append(
            [
                hp.architecture,
                hp.batch_size,
                hp.optimizer,
                f"{hp.dropout:.2f}",
                hp.regularizer,
                f"{steady(pt):.2f}",
                f"{steady(ft):.2f}",
                f"{r:.2f}x",
            ]
        )
        print(srows[-1], flush=True)
    if ratios:
        body += (
            f"\n\n{len(ratios)} configurations sampled (RandomSampler seed 0) from "
            f"`studies/fashion-mnist-mlp.toml`, median of epochs 2..{n}: speed-up median "
            f"**{statistics.median(ratios):.2f}x**, worst **{min(ratios):.2f}x**, "
            f"best {max(ratios):.2f}x.\n\n"
            + markdown_table(
                [
                    "architecture",
                    "batch",
                    "optimizer",
                    "dropout",
                    "regularizer",
                    "plain s",
                    "fsearch s",
                    "speed-up",
                ],
                srows,
            )
        )
    print(body)
    if not args.no_write:
        write_section(
            "epoch",
            body,
            f"python -m benchmarks.epoch --samples {args.samples} --epochs {args.epochs}"
            f" --sample-epochs {args.sample_epochs}",
        )


if __name__ == "__main__":
    main()
