"""The model users get: the trained network with the data's preprocessing in front, in Keras
layers, so the exported `model.keras` takes raw values (a table's columns, a flat array)."""

from __future__ import annotations

import numpy as np

from search.data.split import Split
from search.data.tables import RESERVED_PREFIX


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

    if split.kind == "fashion-mnist":
        return core
    ns = RESERVED_PREFIX
    # The network under a reserved name (a copy: the caller's model keeps its own name).
    net = keras.Model.from_config({**core.get_config(), "name": f"{ns}network"})
    net.set_weights(core.get_weights())
    if split.kind == "table":
        inputs, parts = {}, []
        for f in split.features:
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
    else:
        inp = keras.Input(shape=(split.input_dim,), name="x", dtype="float32")
        inputs = inp
        if split.x_scale == "rescale":
            x = keras.layers.Rescaling(1.0 / 255.0, name=f"{ns}scale")(inp)
        else:
            x = keras.layers.Normalization(
                mean=split.x_mean, variance=np.square(split.x_std), name=f"{ns}scale"
            )(inp)
    y = net(x)
    if split.task == "regression":
        y = keras.layers.Rescaling(split.y_std, offset=split.y_mean, name=f"{ns}target_units")(y)
    return keras.Model(inputs, y, name=core.name)
