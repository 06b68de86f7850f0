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


def test_cosine_schedule_decays_to_zero_over_the_trials_epochs(tmp_path):
    import keras

    hp = Hyperparams(
        widths=(8,),
        optimizer="adam",
        learning_rate=0.01,
        batch_size=10,
        epochs=3,
        lr_schedule="cosine",
    )
    with pytest.raises(ValueError, match="training set size"):
        build_model(hp)
    m = build_model(hp, train_size=50)  # 5 steps per epoch, 15 in all
    sched = m.optimizer._learning_rate
    assert isinstance(sched, keras.optimizers.schedules.CosineDecay)
    assert float(sched(0)) == pytest.approx(0.01)
    assert float(sched(15)) == pytest.approx(0.0, abs=1e-9)
    x = np.random.default_rng(0).random((50, 784), dtype=np.float32)
    y = np.arange(50) % 10
    m.fit(x, y, batch_size=10, epochs=3, verbose=0)
    assert int(m.optimizer.iterations) == 15
    assert float(m.optimizer.learning_rate) == pytest.approx(0.0, abs=1e-9)
    # A stock schedule: the saved model loads without custom objects, schedule included.
    path = tmp_path / "m.keras"
    m.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded.optimizer._learning_rate, keras.optimizers.schedules.CosineDecay)


def test_mixed_bfloat16_net_computes_hidden_layers_in_bfloat16_keeps_float32_weights_and_output(
    tmp_path,
):
    import keras

    hp = Hyperparams(
        widths=(32, 16),
        optimizer="adam",
        learning_rate=0.01,
        dropout=0.1,
        regularizer="l2",
        reg_strength=1e-4,
        precision="mixed_bfloat16",
    )
    m = build_model(hp)
    layers = {layer.name: layer for layer in m.layers[1:]}
    assert {n: layer.compute_dtype for n, layer in layers.items()} == {
        "dense_1": "bfloat16",
        "dropout_1": "bfloat16",
        "dense_2": "bfloat16",
        "dropout_2": "bfloat16",
        "classes": "float32",
    }
    assert {w.dtype for w in m.weights} == {"float32"}
    assert m.count_params() == count_params(hp)
    rng = np.random.default_rng(0)
    x = rng.random((40, 784), dtype=np.float32)
    y = np.arange(40) % 10
    history = m.fit(x, y, batch_size=10, epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    probs = m.predict(x, verbose=0)
    assert probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    # A stock Keras file: it loads without fsearch, with its layers' precision.
    path = tmp_path / "m.keras"
    m.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.get_layer("dense_1").compute_dtype == "bfloat16"
    np.testing.assert_allclose(loaded.predict(x, verbose=0), probs, rtol=1e-6)


def test_resolve_precision_auto_is_bfloat16_on_an_amx_cpu_only_and_other_values_pass_through(
    tmp_path,
):
    from search.model import cpu_flags, resolve_precision

    amx, avx = frozenset({"avx512_bf16", "amx_bf16"}), frozenset({"avx512_bf16", "avx2"})
    assert resolve_precision("auto", flags=amx) == "mixed_bfloat16"  # this test runs on the CPU
    assert resolve_precision("auto", flags=avx) == "float32"
    assert resolve_precision("auto", flags=frozenset()) == "float32"
    assert resolve_precision("mixed_bfloat16", flags=frozenset()) == "mixed_bfloat16"
    assert resolve_precision("float32", flags=amx) == "float32"
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse2 amx_bf16 avx512_bf16\n\nprocessor\t: 1\n")
    assert cpu_flags(info) == {"fpu", "sse2", "amx_bf16", "avx512_bf16"}
    assert cpu_flags(tmp_path / "absent") == frozenset()


def test_precision_auto_net_on_a_cpu_without_amx_is_built_as_float32(monkeypatch):
    import search.model

    monkeypatch.setattr(search.model, "cpu_flags", lambda: frozenset({"avx2"}))
    hp = Hyperparams(widths=(8,), precision="auto")
    assert {layer.compute_dtype for layer in build_model(hp).layers[1:]} == {"float32"}
    monkeypatch.setattr(search.model, "cpu_flags", lambda: frozenset({"amx_bf16"}))
    assert build_model(hp).get_layer("dense_1").compute_dtype == "bfloat16"
