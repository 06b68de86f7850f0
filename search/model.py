"""Hyperparams -> compiled Keras MLP. No I/O.

784 inputs -> [Dense(width, activation, kernel_regularizer) -> Dropout]* -> Dense(10, softmax)
for Fashion-MNIST; for other data the input width and the number of classes follow the data,
and a regression net ends in one linear unit trained on mean squared error.
Stock Keras layers, regularizers and optimizers, so a saved `.keras` file loads with plain
`keras.saving.load_model`, except what a table's search may choose and Keras lacks (robust
scaling, periodic embeddings of numbers, embeddings of one-hot categories, label smoothing on
class indices): those are
fsearch's own, registered in search/layers.py (import it before loading such a model).
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import TYPE_CHECKING

from search.space import Hyperparams

if TYPE_CHECKING:
    import keras

INPUT_DIM = 784
N_CLASSES = 10
# The periodic embedding's size per number column (embedding = "periodic"): 16 frequencies,
# 8 values out (8 is also the piecewise-linear embedding's output). Fixed, not searched: the
# "lite" scale of the PLR embeddings' paper for small tables; the search tunes the
# frequencies' initial scale (embedding_scale), which that paper found to matter most.
PERIODIC_FREQUENCIES = 16
PERIODIC_DIM = 8
# The embedding's size per wide category column (categories = "embed"): RealMLP-TD's 8.
CATEGORY_DIM = 8


# precision = "auto": the CPU flags under which the hidden layers train in mixed_bfloat16. AMX
# (matrix units) only: on a 2-core Xeon with it the default study's 30-minute pair favoured
# bfloat16 on both seeds (BENCHMARKS.md `precision-pair`). On a 2-core AMD EPYC with only
# AVX-512 bfloat16 instructions it passed the same pair with a smaller gain
# (`precision-pair-amd`). The hour-long pair on the Xeon (`precision-hour`, seed 3) did not
# favour bfloat16, so `auto` is no default and avx512_bf16 has not joined.
BF16_CPU_FLAGS = frozenset({"amx_bf16"})


@functools.cache
def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The first CPU's feature flags in /proc/cpuinfo (empty where there is none: not Linux)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return frozenset()


def trains_on_cpu() -> bool:
    """Whether Keras trains here on the CPU: `list_devices()` gives the GPUs or TPUs when the
    backend sees any (CUDA_VISIBLE_DEVICES, each worker's share, applies), else the CPU."""
    import keras

    return all(d.lower().startswith("cpu") for d in keras.distribution.list_devices())


def resolve_precision(precision: str, *, flags: frozenset[str] | None = None) -> str:
    """The dtype policy of the hidden layers: `precision` itself, except "auto", which is
    mixed_bfloat16 when training runs on a CPU with BF16_CPU_FLAGS and float32 otherwise (a
    GPU's bfloat16 or float16 is unmeasured here). Resolved where the net is built, so a study
    resumed or exported on another machine asks that machine; the trial records what it got
    (user attribute `precision`)."""
    if precision != "auto":
        return precision
    flags = cpu_flags() if flags is None else flags
    if not BF16_CPU_FLAGS & flags or not trains_on_cpu():
        return "float32"
    return "mixed_bfloat16"


def _regularizer(hp: Hyperparams):
    from keras import regularizers

    if hp.regularizer == "l1" and hp.reg_strength > 0:
        return regularizers.L1(hp.reg_strength)
    if hp.regularizer == "l2" and hp.reg_strength > 0:
        return regularizers.L2(hp.reg_strength)
    return None


def _learning_rate(hp: Hyperparams, train_size: int | None):
    """The sampled rate, or a stock Keras schedule that starts at it (saves and loads as is)."""
    from keras.optimizers import schedules

    if hp.lr_schedule == "constant":
        return hp.learning_rate
    if hp.lr_schedule == "cosine":
        if not train_size:
            raise ValueError("a cosine learning-rate schedule needs the training set size")
        steps = hp.epochs * math.ceil(train_size / hp.batch_size)
        # Decays to 0 at the trial's last epoch (the space's `epochs`): a trial that trains to
        # the end gets the low-rate finish; one pruned early was compared at the same rate as
        # every other trial at that epoch.
        return schedules.CosineDecay(hp.learning_rate, decay_steps=steps)
    raise ValueError(f"unknown lr_schedule {hp.lr_schedule!r}")


def _optimizer(hp: Hyperparams, train_size: int | None = None):
    from keras import optimizers

    lr = _learning_rate(hp, train_size)
    if hp.optimizer == "sgd":
        return optimizers.SGD(learning_rate=lr, momentum=hp.momentum)
    if hp.optimizer == "adam":
        return optimizers.Adam(learning_rate=lr)
    if hp.optimizer == "rmsprop":
        return optimizers.RMSprop(learning_rate=lr)
    if hp.optimizer == "adamw":
        return optimizers.AdamW(learning_rate=lr, weight_decay=hp.weight_decay)
    raise ValueError(f"unknown optimizer {hp.optimizer!r}")


def _table_layers(hp: Hyperparams, x, table):
    """The network's first layers for a table's columns, as the space chose them: the
    piecewise-linear embeddings of the standardized numbers (appended after x), the numbers'
    robust scaling or quantile transform in place, their periodic embeddings (appended), then
    the wide categories' one-hot blocks replaced by embeddings (their positions in x are
    unchanged by the layers before). x itself where the space chose none."""
    on_numbers = hp.numeric != "standardize" or hp.embedding != "none"
    if on_numbers and (not table or not table.columns or len(table.columns) != hp.numbers):
        raise ValueError(
            f"numeric = {hp.numeric!r} and embedding = {hp.embedding!r} act on a table's "
            "number columns; this data has none (use them with --data on a table)"
        )
    if hp.categories != "onehot" and (
        not table or not table.categories or table.category_widths != hp.wide_categories
    ):
        raise ValueError(
            f"categories = {hp.categories!r} acts on a table's category columns with 20 or "
            "more values; this data has none"
        )
    from search.layers import (
        CategoryEmbedding,
        PeriodicEmbedding,
        PiecewiseLinearEmbedding,
        QuantileNormal,
        RobustScaleClip,
    )

    width = hp.inputs
    if hp.embedding == "piecewise":
        # On the standardized values, before `numeric` changes them: its bins are quantiles
        # of those (tables.Feature.bins). Appended after x, so no column moves.
        x = PiecewiseLinearEmbedding(
            table.columns, table.bins, dim=PERIODIC_DIM, name="piecewise_numbers"
        )(x)
        width += hp.numbers * PERIODIC_DIM
    if hp.numeric == "robust":
        x = RobustScaleClip(table.columns, table.scale, table.offset, width, name="robust_numbers")(
            x
        )
    if hp.numeric == "quantile":
        x = QuantileNormal(
            table.columns, table.knots, table.levels, width, name="quantile_numbers"
        )(x)
    if hp.embedding == "periodic":  # on the numbers as `numeric` made them
        x = PeriodicEmbedding(
            table.columns,
            frequencies=PERIODIC_FREQUENCIES,
            dim=PERIODIC_DIM,
            sigma=hp.embedding_scale,
            name="periodic_numbers",
        )(x)
    if hp.categories == "embed":
        x = CategoryEmbedding(table.categories, dim=CATEGORY_DIM, name="category_embeddings")(x)
    return x


def build_model(
    hp: Hyperparams,
    *,
    task: str = "classification",
    steps_per_execution: int = 1,
    train_size: int | None = None,
    name: str | None = None,
    table=None,
) -> keras.Model:
    """A compiled MLP for the given hyperparameters.

    `train_size` (training examples per epoch) is needed by learning-rate schedules only;
    `table` (data.TableColumns: where a table's columns sit in x) by `numeric = "robust"`,
    `embedding = "periodic"` and `categories = "embed"`, the network's first layers then.
    """
    import keras

    inputs = keras.Input(shape=(hp.inputs,), name="pixels" if hp.inputs == INPUT_DIM else "x")
    x = _table_layers(hp, inputs, table)
    # precision: the hidden layers compute under Keras' dtype policy (mixed_bfloat16: bfloat16
    # matmuls on float32 weights); the table layers before them and the output layer after
    # them stay float32, so the loss and the probabilities are float32. A float32 net is
    # built exactly as before (no dtype argument: its saved file is unchanged).
    policy = resolve_precision(hp.precision)
    hidden, out = (None, None) if policy == "float32" else (policy, "float32")
    for i, width in enumerate(hp.widths, start=1):
        # The regularizer goes on every hidden kernel, as in the lab report (bias unregularized).
        x = keras.layers.Dense(
            width,
            activation=hp.activation,
            kernel_regularizer=_regularizer(hp),
            name=f"dense_{i}",
            dtype=hidden,
        )(x)
        if hp.dropout > 0:
            x = keras.layers.Dropout(hp.dropout, name=f"dropout_{i}", dtype=hidden)(x)
    if task == "regression":  # on a standardized target (search/datasets.py)
        outputs = keras.layers.Dense(1, name="target", dtype=out)(x)
        loss, metrics = "mse", [keras.metrics.RootMeanSquaredError(name="rmse")]
    else:
        outputs = keras.layers.Dense(hp.outputs, activation="softmax", name="classes", dtype=out)(x)
        loss, metrics = "sparse_categorical_crossentropy", ["accuracy"]
        if hp.label_smoothing:
            from search.layers import SparseSmoothedCrossentropy

            loss = SparseSmoothedCrossentropy(hp.label_smoothing)
    model = keras.Model(inputs, outputs, name=name or "mlp_" + hp.architecture)
    model.compile(
        optimizer=_optimizer(hp, train_size),
        loss=loss,
        metrics=metrics,
        # XLA is off: every trial compiles a new model, and no committed benchmark shows XLA
        # paying for that on CPU; steps_per_execution removes most per-step overhead instead.
        jit_compile=False,
        # Keras' torch backend runs one step per call only.
        steps_per_execution=1 if keras.backend.backend() == "torch" else steps_per_execution,
    )
    return model


def count_params(hp: Hyperparams) -> int:
    """Trainable parameter count, computed without building the model."""
    first, extra = hp.inputs, 0
    if hp.embedding == "periodic":  # layers.PeriodicEmbedding: frequencies, kernel, bias
        k, d = PERIODIC_FREQUENCIES, PERIODIC_DIM
        extra = hp.numbers * (k + 2 * k * d + d)
        first += hp.numbers * d
    if hp.embedding == "piecewise":  # layers.PiecewiseLinearEmbedding: kernel, bias
        from search.data.tables import PIECEWISE_BINS

        extra = hp.numbers * (PIECEWISE_BINS * PERIODIC_DIM + PERIODIC_DIM)
        first += hp.numbers * PERIODIC_DIM
    if hp.categories == "embed":  # layers.CategoryEmbedding: one (width, dim) table each
        extra += sum(hp.wide_categories) * CATEGORY_DIM
        first += len(hp.wide_categories) * CATEGORY_DIM - sum(hp.wide_categories)
    sizes = (first, *hp.widths, hp.outputs)
    return extra + sum((a + 1) * b for a, b in zip(sizes[:-1], sizes[1:], strict=True))
