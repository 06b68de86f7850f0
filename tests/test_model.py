from __future__ import annotations

import numpy as np
import pytest

from search.model import build_model, count_params
from search.space import Hyperparams


@pytest.mark.parametrize(
    ("hp", "kinds"),
    [
        (Hyperparams(widths=(64, 64), optimizer="sgd", momentum=0.5), ["Dense", "Dense", "Dense"]),
        (
            Hyperparams(
                widths=(32,), optimizer="adam", dropout=0.26, regularizer="l2", reg_strength=1e-4
            ),
            ["Dense", "Dropout", "Dense"],
        ),
        (
            Hyperparams(
                widths=(16, 16, 16), optimizer="rmsprop", regularizer="l1", reg_strength=1e-5
            ),
            ["Dense"] * 4,
        ),
    ],
)
def test_build_model(hp, kinds):
    import keras

    m = build_model(hp)
    assert [type(layer).__name__ for layer in m.layers[1:]] == kinds
    assert m.count_params() == count_params(hp)
    assert m.output_shape == (None, 10)
    assert type(m.optimizer).__name__.lower() == hp.optimizer
    if hp.optimizer == "sgd":
        assert float(m.optimizer.momentum) == pytest.approx(hp.momentum)
    hidden = [layer for layer in m.layers if isinstance(layer, keras.layers.Dense)][:-1]
    for layer in hidden:
        reg = layer.kernel_regularizer
        if hp.regularizer == "none":
            assert reg is None
        else:
            assert type(reg).__name__ == hp.regularizer.upper()
    probs = m.predict(np.zeros((3, 784), np.float32), verbose=0)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
