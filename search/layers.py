"""fsearch's own Keras layers: what stock Keras cannot do inside an exported model.

Keras has no layer that replaces a missing number (NaN) or marks it: every stock layer passes
NaN on. A table whose columns can be blank is exported with these two in front of the
network, so `model.keras` takes raw rows, blanks included. They are registered with Keras
under the package name "fsearch": importing this module (which `fsearch predict` and the
rest of fsearch do) lets `keras.saving.load_model` load such a model, under safe_mode too.
Models of tables without blanks, arrays and Fashion-MNIST use stock layers only.
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
