"""The model users get: the trained network with the data's preprocessing in front, in Keras
layers, so the exported `model.keras` takes raw values (a table's columns, a flat array).

One `Preprocessing` type per kind of input says how raw inputs become the rows trials train
on: its Keras layers (`layers`, for the exported model) and what the model card says about
them (`card`). The loaders set it on the `Split` (`Split.preprocessing`): Fashion-MNIST's
pixels are scaled before the network (`FashionPixels`, no layers); arrays are divided by 255
(`Rescale`) or standardized (`Standardize`); a table's columns each have their own steps
(`Columns`, from `tables.Feature`)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from search.data.split import Split
    from search.data.tables import Feature

# Layer names of the exported model begin with this; no input (column) may, so a column named
# like one of the model's own layers ("features", "scale_age") cannot collide with it.
RESERVED_PREFIX = "fsearch_"


# A category column with this many values or more (in the training rows) may be embedded
# (space key categories = "embed") rather than one-hot encoded into the first Dense layer: the
# issue's threshold (#22); RealMLP-TD embeds from 9 values on.
EMBED_CATEGORIES_FROM = 20


@dataclass(frozen=True)
class TableColumns:
    """Where a table's columns sit in the network's x, for the network's own first layers
    (model.py; layers.RobustScaleClip, PeriodicEmbedding, CategoryEmbedding).

    Number columns (`columns`) are each standardized, z = (v - mean) / std, and RealMLP's
    robust scaling of each is (v - median) * factor = z * scale + offset: what the space keys
    `numeric` and `embedding` need. `categories`: (start, width) of the one-hot block of each
    category column with EMBED_CATEGORIES_FROM values or more, what `categories = "embed"`
    turns into a learned embedding."""

    columns: tuple[int, ...] = ()
    scale: tuple[float, ...] = ()
    offset: tuple[float, ...] = ()
    categories: tuple[tuple[int, int], ...] = ()
    # Per number column, its training quantiles in z units (tables.Feature.knots / levels),
    # for `numeric = "quantile"`.
    knots: tuple[tuple[float, ...], ...] = ()
    levels: tuple[tuple[tuple[float, float], ...], ...] = ()
    # Per number column, its quantile bins' edges (z units) for `embedding = "piecewise"`.
    bins: tuple[tuple[float, ...], ...] = ()

    @property
    def category_widths(self) -> tuple[int, ...]:
        return tuple(w for _, w in self.categories)


class Preprocessing:
    """How raw inputs become the network's x. `in_model`: the exported model does it in Keras
    layers (False: the network takes x as the data gives it). `table`: where a table's
    number and wide category columns sit in x (None for other data)."""

    in_model = True
    table: TableColumns | None = None

    def layers(self, keras, ns: str) -> tuple[Any, Any]:
        """(the model's inputs, the network's x from them), layers named ns + something."""
        raise NotImplementedError

    def card(self) -> dict[str, Any]:
        """The model card's data entries about the inputs ("inputs", "features")."""
        raise NotImplementedError


@dataclass(frozen=True, eq=False)
class FashionPixels(Preprocessing):
    """Fashion-MNIST: pixel / 255 before the network (fashion.py); the model is the network."""

    in_model = False

    def layers(self, keras, ns: str) -> tuple[Any, Any]:
        raise TypeError("Fashion-MNIST's model takes scaled pixels: no layers in front")

    def card(self) -> dict[str, Any]:
        return {"inputs": "784 floats in [0, 1] (pixel / 255), input 'pixels'"}


FASHION_PIXELS = FashionPixels()


@dataclass(frozen=True, eq=False)
class Rescale(Preprocessing):
    """Arrays of uint8 (images): one flat input, divided by 255 inside the model."""

    input_dim: int

    def layers(self, keras, ns: str) -> tuple[Any, Any]:
        inp = keras.Input(shape=(self.input_dim,), name="x", dtype="float32")
        return inp, keras.layers.Rescaling(1.0 / 255.0, name=f"{ns}scale")(inp)

    def card(self) -> dict[str, Any]:
        return {
            "inputs": f"{self.input_dim} values per row (the row flattened), "
            "raw 0-255 (divided by 255 inside the model)"
        }


@dataclass(frozen=True, eq=False)
class Standardize(Preprocessing):
    """Arrays of other numbers: one flat input, standardized per feature with the training
    rows' mean and std inside the model."""

    mean: np.ndarray
    std: np.ndarray

    def layers(self, keras, ns: str) -> tuple[Any, Any]:
        inp = keras.Input(shape=(len(self.mean),), name="x", dtype="float32")
        layer = keras.layers.Normalization(
            mean=self.mean, variance=np.square(self.std), name=f"{ns}scale"
        )
        return inp, layer(inp)

    def card(self) -> dict[str, Any]:
        return {
            "inputs": f"{len(self.mean)} values per row (the row flattened), "
            "raw numbers (standardized inside the model with the training rows' statistics)"
        }


@dataclass(frozen=True, eq=False)
class Columns(Preprocessing):
    """A table: one named input per column (tables.Feature), in x's column order."""

    features: tuple[Feature, ...]

    # Cached: every trial reads it (Split.dims, the model's first layers), and it carries each
    # number column's quantile knots.
    @functools.cached_property
    def table(self) -> TableColumns:
        cols, scale, offset, wide, at = [], [], [], [], 0
        knots, levels, bins = [], [], []
        for f in self.features:
            if f.kind == "number":
                cols.append(at)
                scale.append(f.robust_factor * f.std)
                offset.append(f.robust_factor * (f.mean - f.median))
                knots.append(f.knots)
                levels.append(f.levels)
                bins.append(f.bins)
            elif len(f.vocabulary) >= EMBED_CATEGORIES_FROM:
                wide.append((at, f.width))
            at += f.width
        return TableColumns(
            tuple(cols),
            tuple(scale),
            tuple(offset),
            tuple(wide),
            tuple(knots),
            tuple(levels),
            tuple(bins),
        )

    def layers(self, keras, ns: str) -> tuple[Any, Any]:
        inputs, parts = {}, []
        for f in self.features:
            layer = f.input_name
            if f.kind == "number":
                inp = keras.Input(shape=(1,), name=layer, dtype="float32")
                value = inp
                if f.fill:  # blanks: the training mean, inside the model
                    from search.layers import FillMissing, MissingIndicator

                    value = FillMissing(f.mean, name=f"{ns}fill_{layer}")(inp)
                parts.append(
                    keras.layers.Normalization(
                        mean=f.mean, variance=f.std**2, name=f"{ns}scale_{layer}"
                    )(value)
                )
                if f.indicator:  # right after its column, as in training's x
                    parts.append(MissingIndicator(name=f"{ns}missing_{layer}")(inp))
            else:
                inp = keras.Input(shape=(1,), name=layer, dtype="string")
                parts.append(
                    keras.layers.StringLookup(
                        vocabulary=list(f.vocabulary),
                        num_oov_indices=1,
                        output_mode="one_hot",
                        name=f"{ns}onehot_{layer}",
                    )(inp)
                )
            inputs[layer] = inp
        x = keras.layers.Concatenate(name=f"{ns}features")(parts) if len(parts) > 1 else parts[0]
        return inputs, x

    def card(self) -> dict[str, Any]:
        inputs = (
            "one input per column, by its name in `features[].input`: numbers as float32 "
            "(standardized inside the model with the training rows' mean and std), text as "
            "strings (one-hot encoded inside the model; a value the training rows lacked "
            "shares one slot)"
        )
        filled = [f.name for f in self.features if f.fill]
        if filled:
            inputs += (
                f"; blank numbers (NaN) in {', '.join(filled)} are filled inside the model "
                "(`features[].missing`), and missing text is passed as ''. fsearch's own "
                "layers do the filling: load the model after `import search.layers` (or use "
                "`fsearch predict`)"
            )
        return {"features": [f.describe() for f in self.features], "inputs": inputs}


def inference_model(core, split: Split):
    """The trained network with the data's preprocessing in front (and, for regression, the
    target's units behind), in stock Keras layers: `model.keras` takes raw values and loads
    with plain `keras.saving.load_model`; where a number column can be blank, fsearch's own
    layers fill it (search/layers.py: import it before loading). Fashion-MNIST's model is
    returned as it is.

    Keras wants every layer name in a model unique, inputs included. The inputs are named
    after the columns, so the model's own layers (the network too) are named RESERVED_PREFIX
    + something, which no column may begin with (`tables._load_table`): a column called
    "features", "scale_age" or "ensemble_of_3" cannot collide with them."""
    import keras

    if not split.preprocessing.in_model:
        return core
    ns = RESERVED_PREFIX
    # The network under a reserved name (a copy: the caller's model keeps its own name).
    net = keras.Model.from_config({**core.get_config(), "name": f"{ns}network"})
    net.set_weights(core.get_weights())
    inputs, x = split.preprocessing.layers(keras, ns)
    y = net(x)
    if split.task == "regression":
        y = keras.layers.Rescaling(split.y_std, offset=split.y_mean, name=f"{ns}target_units")(y)
        if split.y_log:  # target_transform = "log": the network fitted log(1 + y)
            y = keras.layers.Activation("exponential", name=f"{ns}exp")(y)
            y = keras.layers.Rescaling(1.0, offset=-1.0, name=f"{ns}minus_one")(y)
    return keras.Model(inputs, y, name=core.name)
