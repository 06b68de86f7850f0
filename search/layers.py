"""fsearch's own Keras layers: what stock Keras cannot do inside an exported model.

Keras has no layer that replaces a missing number (NaN) or marks it: every stock layer passes
NaN on. A table whose columns can be blank is exported with FillMissing and MissingIndicator
in front of the network, so `model.keras` takes raw rows, blanks included. A table's search
can also choose RealMLP's robust scaling (RobustScaleClip), the quantile transform
(QuantileNormal), periodic and piecewise-linear embeddings of numbers
(PeriodicEmbedding), embeddings of wide categories' one-hot blocks (CategoryEmbedding) and
label smoothing (SparseSmoothedCrossentropy), none of which Keras has in this form.
They are registered with Keras under the package name "fsearch": importing this module (which
`fsearch predict` and the rest of fsearch do) lets `keras.saving.load_model` load such a
model, under safe_mode too. Fashion-MNIST's and arrays' models use stock layers only.
"""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="fsearch")
class FillMissing(keras.layers.Layer):
    """x with every NaN replaced by `value` (the column's training mean)."""

    def __init__(self, value: float = 0.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.value = float(value)

    def call(self, x):
        return ops.where(ops.isnan(x), ops.cast(self.value, x.dtype), x)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "value": self.value}


@keras.saving.register_keras_serializable(package="fsearch")
class MissingIndicator(keras.layers.Layer):
    """1.0 where x is NaN, else 0.0: the column's missing-value indicator."""

    def call(self, x):
        return ops.cast(ops.isnan(x), "float32")

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package="fsearch")
class RobustScaleClip(keras.layers.Layer):
    """RealMLP's robust scaling and smooth clipping of a table's number columns, inside the
    network (space key `numeric = "robust"`). The network's x holds each number standardized,
    z = (v - mean) / std; for the columns listed, this layer computes
    r = (v - median) / IQR = z * scale + offset (the training rows' statistics, fixed), then
    r / sqrt(1 + (r / 3)^2), which is r near 0 and bounded by +-3 far out. Every other column
    (missing indicators, one-hot categories) passes unchanged. Keras has no such layer."""

    def __init__(
        self,
        columns: list[int] = (),
        scale: list[float] = (),
        offset: list[float] = (),
        width: int = 0,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        import numpy as np

        self.columns = [int(c) for c in columns]
        self.scale = [float(s) for s in scale]
        self.offset = [float(o) for o in offset]
        self.width = int(width)
        a, b, m = np.ones(self.width), np.zeros(self.width), np.zeros(self.width)
        a[self.columns], b[self.columns], m[self.columns] = self.scale, self.offset, 1.0
        self._a, self._b, self._m = (v.astype("float32") for v in (a, b, m))

    def call(self, x):
        a, b, m = (ops.convert_to_tensor(v, dtype=x.dtype) for v in (self._a, self._b, self._m))
        r = x * a + b
        clipped = r / ops.sqrt(1.0 + ops.square(r / 3.0))
        return m * clipped + (1.0 - m) * x

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "columns": self.columns,
            "scale": self.scale,
            "offset": self.offset,
            "width": self.width,
        }


# scikit-learn's QuantileTransformer clips u to [1e-7, 1 - 1e-7] (its BOUNDS_THRESHOLD).
_BOUND = 1e-7


@keras.saving.register_keras_serializable(package="fsearch")
class QuantileNormal(keras.layers.Layer):
    """The quantile transform of a table's number columns onto a normal distribution, inside
    the network (space key `numeric = "quantile"`; scikit-learn's QuantileTransformer with
    output_distribution "normal", the TabM / RTDL recipe). For each listed column of x (its
    standardized value z), u = the training rows' quantile level of z as scikit-learn
    interpolates it between the column's knots (tables._quantiles: each knot's lowest and
    highest level; from the highest to the next knot's lowest, their mean at a knot, 0 at or
    below the first and 1 at or above the last), clipped to [1e-7, 1 - 1e-7] as scikit-learn
    clips it, then the normal quantile of u, sqrt(2) erfinv(2u - 1): bounded however far out
    z is. Other columns pass unchanged. Keras has no such layer."""

    def __init__(
        self,
        columns: list[int] = (),
        knots: list[list[float]] = (),
        levels: list[list[list[float]]] = (),
        width: int = 0,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        import numpy as np

        self.columns = [int(c) for c in columns]
        self.knots = [[float(v) for v in k] for k in knots]
        self.levels = [[[float(lo), float(hi)] for lo, hi in lv] for lv in levels]
        self.width = int(width)
        mask = np.zeros(self.width, dtype="float32")
        mask[self.columns] = 1.0
        place = np.zeros((len(self.columns), self.width), dtype="float32")
        place[np.arange(len(self.columns)), self.columns] = 1.0
        self._mask, self._place = mask, place

    def _one(self, z, knots, levels):
        if len(knots) < 2:  # a constant column (or none known): its middle
            return ops.zeros_like(z)
        # float64: float32 rounds 1 - 1e-7, and erfinv near +-1 is then visibly off.
        out_dtype, z = z.dtype, ops.cast(z, "float64")
        k = ops.convert_to_tensor(knots, dtype="float64")
        low = ops.convert_to_tensor([lv[0] for lv in levels], dtype="float64")
        high = ops.convert_to_tensor([lv[1] for lv in levels], dtype="float64")
        n = len(knots)
        i = ops.clip(ops.searchsorted(k, z, side="right"), 1, n - 1)
        a, b = ops.take(k, i - 1), ops.take(k, i)
        t = ops.clip((z - a) / (b - a), 0.0, 1.0)
        u = ops.take(high, i - 1) + t * (ops.take(low, i) - ops.take(high, i - 1))
        j = ops.clip(ops.searchsorted(k, z, side="left"), 0, n - 1)
        at_knot = ops.take(k, j) == z
        u = ops.where(at_knot, 0.5 * (ops.take(low, j) + ops.take(high, j)), u)
        # scikit-learn: at or below the first knot 0, at or above the last 1 (within 1e-7).
        u = ops.where(z - _BOUND < knots[0], 0.0, ops.where(z + _BOUND > knots[-1], 1.0, u))
        u = ops.clip(u, _BOUND, 1.0 - _BOUND)
        return ops.cast(2.0**0.5 * ops.erfinv(2.0 * u - 1.0), out_dtype)

    def call(self, x):
        if not self.columns:
            return x
        # searchsorted wants contiguous values: each column's transform, then placed back.
        z = [
            self._one(ops.take(x, c, axis=1), k, lv)
            for c, k, lv in zip(self.columns, self.knots, self.levels, strict=True)
        ]
        t = ops.stack(z, axis=1)
        mask = ops.convert_to_tensor(self._mask, dtype=x.dtype)
        place = ops.convert_to_tensor(self._place, dtype=x.dtype)
        return x * (1.0 - mask) + ops.matmul(t, place)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "columns": self.columns,
            "knots": self.knots,
            "levels": self.levels,
            "width": self.width,
        }


@keras.saving.register_keras_serializable(package="fsearch")
class PeriodicEmbedding(keras.layers.Layer):
    """Periodic embeddings of a table's number columns (space key `embedding = "periodic"`),
    the PLR embedding of Gorishniy, Rubachev and Babenko, "On Embeddings for Numerical
    Features in Tabular Deep Learning" (NeurIPS 2022): each listed column v becomes
    ReLU(W_j [cos(2 pi f_j v), sin(2 pi f_j v)] + b_j), with `frequencies` trainable
    frequencies f_j per column drawn from N(0, sigma) and a per-column linear map to `dim`
    values. The output is x itself followed by every column's embedding, so the raw value,
    indicators and categories stay in front of the first Dense layer."""

    def __init__(
        self,
        columns: list[int] = (),
        frequencies: int = 16,
        dim: int = 8,
        sigma: float = 0.1,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.columns = [int(c) for c in columns]
        self.frequencies, self.dim, self.sigma = int(frequencies), int(dim), float(sigma)

    def build(self, input_shape):
        n, k, d = len(self.columns), self.frequencies, self.dim
        self.f = self.add_weight(
            name="frequencies",
            shape=(n, k),
            initializer=keras.initializers.RandomNormal(stddev=self.sigma),
        )
        # Each column's linear map initialized as a torch Linear(2k, d) is (what the PLR
        # reference code uses): U(-1/sqrt(2k), 1/sqrt(2k)) for kernel and bias. Keras' glorot
        # would count all n columns' fans together for a (n, 2k, d) kernel.
        bound = 1.0 / (2 * k) ** 0.5
        # One initializer per weight: an unseeded Keras initializer called twice repeats itself.
        self.w = self.add_weight(
            name="kernel",
            shape=(n, 2 * k, d),
            initializer=keras.initializers.RandomUniform(-bound, bound),
        )
        self.b = self.add_weight(
            name="bias", shape=(n, d), initializer=keras.initializers.RandomUniform(-bound, bound)
        )

    def call(self, x):
        import math

        v = ops.take(x, self.columns, axis=1)  # (batch, n)
        angle = 2.0 * math.pi * ops.expand_dims(v, -1) * self.f  # (batch, n, k)
        periodic = ops.concatenate([ops.cos(angle), ops.sin(angle)], axis=-1)
        e = ops.relu(ops.einsum("bnk,nkd->bnd", periodic, self.w) + self.b)
        return ops.concatenate([x, ops.reshape(e, (-1, len(self.columns) * self.dim))], axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[1] + len(self.columns) * self.dim)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "columns": self.columns,
            "frequencies": self.frequencies,
            "dim": self.dim,
            "sigma": self.sigma,
        }


@keras.saving.register_keras_serializable(package="fsearch")
class CategoryEmbedding(keras.layers.Layer):
    """Embeddings of a table's wide category columns (space key `categories = "embed"`): each
    listed one-hot block of x, (start, width), is replaced by its row of a trainable
    (width, dim) table, which is what keras.layers.Embedding does to the category's index;
    the one-hot block times the table gives the same row. Keras' Embedding wants the index,
    and the network's x holds the one-hot block (the exported model's StringLookup makes it),
    so this layer takes the block. Every other column of x passes unchanged, in order, and the
    embeddings follow it. Initialized U(-1/sqrt(dim), 1/sqrt(dim)), as the RTDL / TabM code
    initializes its category embeddings."""

    def __init__(self, blocks: list = (), dim: int = 8, **kwargs) -> None:
        super().__init__(**kwargs)
        self.blocks = [(int(start), int(width)) for start, width in blocks]
        self.dim = int(dim)

    def build(self, input_shape):
        inside = {i for start, width in self.blocks for i in range(start, start + width)}
        self._keep = [i for i in range(int(input_shape[-1])) if i not in inside]
        bound = 1.0 / self.dim**0.5
        self.tables = [
            self.add_weight(
                name=f"embedding_{j}",
                shape=(width, self.dim),
                initializer=keras.initializers.RandomUniform(-bound, bound),
            )
            for j, (_, width) in enumerate(self.blocks)
        ]

    def call(self, x):
        parts = [ops.take(x, self._keep, axis=1)]
        for (start, width), table in zip(self.blocks, self.tables, strict=True):
            parts.append(ops.matmul(x[:, start : start + width], table))
        return ops.concatenate(parts, axis=1)

    def compute_output_shape(self, input_shape):
        removed = sum(width for _, width in self.blocks)
        return (input_shape[0], input_shape[1] - removed + len(self.blocks) * self.dim)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "blocks": [list(b) for b in self.blocks],
            "dim": self.dim,
        }


@keras.saving.register_keras_serializable(package="fsearch")
class PiecewiseLinearEmbedding(keras.layers.Layer):
    """Piecewise-linear embeddings of a table's number columns (space key `embedding =
    "piecewise"`), Q-LR of Gorishniy, Rubachev and Babenko, "On Embeddings for Numerical
    Features in Tabular Deep Learning" (NeurIPS 2022): each listed column v is encoded over
    its T quantile bins (edges from the training rows, tables.Feature.bins) as
    e_t = (v - b_{t-1}) / (b_t - b_{t-1}), clipped to [0, 1] (the first bin's lower side and
    the last bin's upper side unclipped, as published), an empty bin (equal edges) giving 0;
    then ReLU(W_j e + b_j), a per-column linear map to `dim` values. The output is x itself
    followed by every column's embedding, like PeriodicEmbedding's."""

    def __init__(self, columns: list[int] = (), bins: list[list[float]] = (), dim: int = 8, **kw):
        super().__init__(**kw)
        import numpy as np

        self.columns = [int(c) for c in columns]
        self.bins = [[float(b) for b in edges] for edges in bins]
        self.dim = int(dim)
        edges = np.asarray(self.bins, dtype="float64").reshape(len(self.columns), -1)
        width = np.diff(edges, axis=1)
        self._low = edges[:, :-1].astype("float32")
        self._inv = np.divide(1.0, width, out=np.zeros_like(width), where=width > 0)
        self._inv = self._inv.astype("float32")
        t = width.shape[1]
        self._floor = np.where(np.arange(t) == 0, -np.inf, 0.0).astype("float32")
        self._ceil = np.where(np.arange(t) == t - 1, np.inf, 1.0).astype("float32")

    def build(self, input_shape):
        n, t, d = len(self.columns), self._low.shape[1], self.dim
        # Each column's linear map initialized as a torch Linear(t, d): U(-1/sqrt(t), ...).
        bound = 1.0 / t**0.5
        self.w = self.add_weight(
            name="kernel",
            shape=(n, t, d),
            initializer=keras.initializers.RandomUniform(-bound, bound),
        )
        self.b = self.add_weight(
            name="bias", shape=(n, d), initializer=keras.initializers.RandomUniform(-bound, bound)
        )

    def call(self, x):
        v = ops.expand_dims(ops.take(x, self.columns, axis=1), -1)  # (batch, n, 1)
        low, inv, floor, ceil = (
            ops.convert_to_tensor(a, dtype=x.dtype)
            for a in (self._low, self._inv, self._floor, self._ceil)
        )
        e = ops.minimum(ops.maximum((v - low) * inv, floor), ceil)  # (batch, n, t)
        e = ops.where(inv > 0, e, ops.zeros_like(e))
        out = ops.relu(ops.einsum("bnt,ntd->bnd", e, self.w) + self.b)
        return ops.concatenate([x, ops.reshape(out, (-1, len(self.columns) * self.dim))], axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[1] + len(self.columns) * self.dim)

    def get_config(self) -> dict:
        return {**super().get_config(), "columns": self.columns, "bins": self.bins, "dim": self.dim}


@keras.saving.register_keras_serializable(package="fsearch")
class SparseSmoothedCrossentropy(keras.losses.Loss):
    """Cross-entropy on class indices with label smoothing (space key `label_smoothing`):
    Keras' CategoricalCrossentropy has `label_smoothing` but wants one-hot targets, and its
    SparseCategoricalCrossentropy has none. With eps the smoothing, the target is
    (1 - eps) one-hot + eps / K, so the loss is (1 - eps) * (-log p_y) + eps * mean(-log p),
    which is what CategoricalCrossentropy(label_smoothing=eps) gives on one-hot targets."""

    def __init__(self, smoothing: float = 0.0, name: str = "smoothed_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.smoothing = float(smoothing)

    def call(self, y_true, y_pred):
        eps = keras.backend.epsilon()
        logp = ops.log(ops.clip(y_pred, eps, 1.0 - eps))
        idx = ops.expand_dims(ops.cast(ops.reshape(y_true, (-1,)), "int32"), -1)
        nll = -ops.squeeze(ops.take_along_axis(logp, idx, axis=-1), -1)
        return (1.0 - self.smoothing) * nll - self.smoothing * ops.mean(logp, axis=-1)

    def get_config(self) -> dict:
        return {**super().get_config(), "smoothing": self.smoothing}
