from pathlib import Path

import numpy as np
import pytest

from pyodl.model.architecture import Kind, ModelError, paper_model
from pyodl.model.keras_io import from_keras, keras, load, to_keras

L = keras.layers


def _seq(*layers: object, shape: tuple = (20, 3)) -> keras.Model:
    return keras.Sequential([keras.Input(shape), *layers])


def test_round_trip_through_keras_and_a_keras_file(tmp_path: Path) -> None:
    model = paper_model(40, seed=5)
    path = tmp_path / "paper.keras"
    to_keras(model).save(path)
    back = load(path)
    assert back.arch.layers == model.arch.layers
    for (w0, b0), (w1, b1) in zip(model.params, back.params, strict=True):
        assert np.array_equal(w0, w1) and np.array_equal(b0, b1)


def test_standalone_activation_layers_are_mapped() -> None:
    km = _seq(L.Conv1D(4, 3), L.Activation("relu"), L.ReLU(), L.Flatten(), L.Dense(5),
              L.Activation("linear"), L.Softmax())
    kinds = [la.kind for la in from_keras(km).arch.layers]
    assert kinds == [Kind.CONV1D, Kind.RELU, Kind.RELU, Kind.FLATTEN, Kind.DENSE, Kind.SOFTMAX]


@pytest.mark.parametrize(
    ("layer", "message"),
    [
        (L.SeparableConv1D(4, 3, pointwise_regularizer="l2"), "pointwise_regularizer"),
        (L.Conv1D(4, 3, kernel_regularizer="l2"), "kernel_regularizer"),
        (L.Conv1D(4, 3, activation="elu"), "activation 'elu'"),
        (L.BatchNormalization(center=False), "center=False or scale=False"),
        (L.ReLU(max_value=4.0), "not threshold or other max_value"),
    ],
)
def test_unsupported_layers_and_options_are_refused_by_name(layer: keras.layers.Layer, message: str) -> None:
    km = _seq(layer, L.Flatten(), L.Dense(3, activation="softmax"))
    with pytest.raises(ModelError, match=f"layer '{layer.name}'.*{message}"):
        from_keras(km)


def test_har_activations_fused_and_standalone() -> None:
    """ReLU6, LeakyReLU (Keras's string slope 0.2 and a layer's own), tanh and sigmoid, fused or as layers,
    and Dense(relu) -> ReLU() -> Softmax(); the round trip computes what Keras computes."""
    km = _seq(L.Conv1D(4, 3, activation="relu6"), L.LeakyReLU(0.1), L.Conv1D(5, 2, activation="leaky_relu"),
              L.ReLU(max_value=6.0), L.Conv1D(3, 2, activation="tanh"), L.Activation("sigmoid"),
              L.ReLU(negative_slope=0.05), L.Flatten(), L.Dense(4, activation="sigmoid"), L.Dense(3, activation="relu"),
              L.ReLU(), L.Softmax())
    model = from_keras(km)
    got = [(la.kind, la.activation, la.alpha) for la in model.arch.layers]
    assert got[:7] == [(Kind.CONV1D, "relu6", 0.0), (Kind.ACTIVATION, "leaky_relu", np.float32(0.1)),
                       (Kind.CONV1D, "leaky_relu", np.float32(0.2)), (Kind.ACTIVATION, "relu6", 0.0),
                       (Kind.CONV1D, "tanh", 0.0), (Kind.ACTIVATION, "sigmoid", 0.0),
                       (Kind.ACTIVATION, "leaky_relu", np.float32(0.05))]
    assert [la.kind for la in model.arch.layers[-3:]] == [Kind.DENSE, Kind.RELU, Kind.SOFTMAX]
    x = 3 * np.random.default_rng(0).standard_normal((4, 20, 3)).astype(np.float32)
    np.testing.assert_allclose(to_keras(model).predict(x, verbose=0), km.predict(x, verbose=0), rtol=1e-6,
                               atol=1e-7)


def test_an_imported_fused_leaky_relu_saves_and_loads(tmp_path: Path) -> None:
    """Keras's fused leaky_relu comes in with its slope as float32(0.2); the model pyodl makes of it must save
    (personalize --pretrain caches the general model), which a functools.partial activation cannot."""
    model = from_keras(_seq(L.Conv1D(4, 3, activation="leaky_relu"), L.GlobalAveragePooling1D(),
                            L.Dense(3, activation="softmax")))
    path = tmp_path / "leaky.keras"
    to_keras(model).save(path)
    assert load(path).arch.layers == model.arch.layers


def test_batch_normalization_runs_on_its_moving_statistics() -> None:
    """A trained BatchNormalization (moving statistics away from 0 and 1) imports as gamma/beta parameters
    and fixed statistics; the description computes what Keras computes in inference mode, and a .keras file
    written from the description (InferenceBatchNorm) reads back the same."""
    keras.utils.set_random_seed(0)
    km = _seq(L.Conv1D(6, 3), L.BatchNormalization(epsilon=1e-3), L.ReLU(), L.Flatten(), L.Dense(3),
              L.BatchNormalization(), L.Softmax())
    x = np.random.default_rng(0).standard_normal((64, 20, 3)).astype(np.float32)
    km.compile(optimizer="sgd", loss="categorical_crossentropy")
    km.fit(x, np.eye(3, dtype=np.float32)[np.arange(64) % 3], epochs=2, verbose=0)
    model = from_keras(km)
    bn = model.arch.layers[1]
    assert bn.kind is Kind.BATCHNORM and model.arch.param_layers == [0, 1, 4, 5]
    np.testing.assert_allclose(bn.stats[0], km.layers[1].moving_mean.numpy(), rtol=1e-7)
    assert np.abs(np.asarray(bn.stats[0])).max() > 1e-4 and np.abs(np.asarray(bn.stats[1]) - 1).max() > 1e-4
    np.testing.assert_allclose(to_keras(model).predict(x, verbose=0), km.predict(x, verbose=0), rtol=1e-5,
                               atol=1e-6)
    back = from_keras(to_keras(model))
    assert back.arch.layers == model.arch.layers


def test_depthwise_conv1d_is_imported_with_its_window() -> None:
    km = _seq(L.DepthwiseConv1D(5, depth_multiplier=2, padding="same", activation="relu6"), L.Conv1D(4, 1),
              L.DepthwiseConv1D(3, strides=2, padding="same"), L.Flatten(), L.Dense(3, activation="softmax"))
    model = from_keras(km)
    dw = model.arch.layers[0]
    assert (dw.kind, dw.out_ch, dw.weight_shape, dw.pad, dw.activation) == (Kind.DEPTHWISE1D, 6, (5, 3, 2), 2, "relu6")
    x = np.random.default_rng(0).standard_normal((4, 20, 3)).astype(np.float32)
    np.testing.assert_allclose(to_keras(model).predict(x, verbose=0), km.predict(x, verbose=0), rtol=1e-6, atol=1e-7)


def test_separable_conv1d_and_use_bias_false_compute_what_keras_computes() -> None:
    """A SeparableConv1D becomes its two halves (a DepthwiseConv1D without bias, a 1x1 Conv1D), announced;
    layers built with use_bias=False have a (0,) bias. The translated model predicts what the original does."""
    km = _seq(L.SeparableConv1D(8, 5, depth_multiplier=2, padding="same", activation="relu"),
              L.Conv1D(6, 3, use_bias=False), L.BatchNormalization(), L.ReLU(),
              L.SeparableConv1D(4, 3, use_bias=False), L.Flatten(), L.Dense(3, use_bias=False, activation="softmax"))
    model = from_keras(km)
    kinds = [(layer.kind, layer.size, layer.use_bias, layer.activation) for layer in model.arch.layers]
    assert kinds[:2] == [(Kind.DEPTHWISE1D, 5, False, "none"), (Kind.CONV1D, 1, True, "relu")]
    assert kinds[5:7] == [(Kind.DEPTHWISE1D, 3, False, "none"), (Kind.CONV1D, 1, False, "none")]
    assert [model.params[i][1].shape for i in (0, 1, 2, 5, 6)] == [(0,), (8,), (0,), (0,), (0,)]
    separable = model.arch.layers[0].name.removesuffix("_depthwise")
    assert sum("(SeparableConv1D): runs as" in note for note in model.notes) == 2
    assert f"runs as '{separable}_depthwise'" in model.notes[0]
    x = np.random.default_rng(0).standard_normal((4, 20, 3)).astype(np.float32)
    np.testing.assert_allclose(to_keras(model).predict(x, verbose=0), km.predict(x, verbose=0), rtol=1e-6, atol=1e-7)
    assert from_keras(to_keras(model)).digest() == model.digest()


def test_dropout_is_the_identity_and_says_so() -> None:
    km = _seq(L.Conv1D(4, 3), L.SpatialDropout1D(0.2), L.Flatten(), L.Dropout(0.5), L.Dense(3, activation="softmax"))
    model = from_keras(km)
    assert [la.kind for la in model.arch.layers] == [Kind.CONV1D, Kind.FLATTEN, Kind.DENSE]
    assert len(model.notes) == 2 and "SpatialDropout1D, rate 0.2): the identity" in model.notes[0]
    assert "Dropout, rate 0.5" in model.notes[1]
    x = np.random.default_rng(0).standard_normal((2, 20, 3)).astype(np.float32)
    np.testing.assert_array_equal(to_keras(model).predict(x, verbose=0), km.predict(x, verbose=0))


def test_every_unsupported_layer_is_reported_at_once() -> None:
    km = _seq(L.Conv1D(4, 3, activation="elu"), L.BatchNormalization(scale=False),
              L.Conv1D(4, 3, kernel_regularizer="l2"), L.Flatten(), L.Dense(3, activation="softmax"))
    with pytest.raises(ModelError) as err:
        from_keras(km)
    lines = str(err.value).splitlines()
    assert lines[0] == "3 layers cannot run on the device:" and len(lines) == 4
    assert "activation 'elu'" in lines[1] and "scale=False" in lines[2] and "kernel_regularizer" in lines[3]


def test_strides_dilation_padding_and_max_pooling_are_imported_as_keras_computes_them() -> None:
    """Shapes and outputs through the round trip Keras -> description -> Keras: the description's window
    geometry (out_len, pad) must be Keras's own for every padding mode."""
    km = _seq(L.Conv1D(5, 4, strides=3, padding="same", activation="relu"), L.MaxPooling1D(3, strides=2,
              padding="same"), L.Conv1D(6, 3, dilation_rate=2, padding="causal"), L.AveragePooling1D(
              3, strides=1, padding="same"), L.Conv1D(4, 2, dilation_rate=3), L.MaxPooling1D(2),
              L.GlobalAveragePooling1D(), L.Dense(3, activation="softmax"), shape=(41, 3))
    model = from_keras(km)
    got = [(la.kind, la.out_len, la.stride, la.dilation, la.pad) for la in model.arch.layers[:6]]
    assert [(k, n) for k, n, *_ in got] == [(k, shape[1]) for k, shape in zip(
        [Kind.CONV1D, Kind.MAXPOOL1D, Kind.CONV1D, Kind.AVGPOOL1D, Kind.CONV1D, Kind.MAXPOOL1D],
        [la.output.shape for la in km.layers[:6]], strict=True)]
    assert got[0][2:] == (3, 1, 1) and got[2][2:] == (1, 2, 4) and got[3][2:] == (1, 1, 1)
    x = np.random.default_rng(0).standard_normal((4, 41, 3)).astype(np.float32)
    np.testing.assert_array_equal(to_keras(model).predict(x, verbose=0), km.predict(x, verbose=0))


def test_branching_and_variable_length_models_are_refused() -> None:
    inp = keras.Input((20, 3))
    a = L.Conv1D(4, 3)(inp)
    b = L.Conv1D(4, 3)(inp)
    merged = L.Add()([a, b])
    out = L.Dense(3, activation="softmax")(L.Flatten()(merged))
    with pytest.raises(ModelError, match="chain"):
        from_keras(keras.Model(inp, out))
    km = _seq(L.Conv1D(4, 3), L.GlobalAveragePooling1D(), L.Dense(3, activation="softmax"), shape=(None, 3))
    with pytest.raises(ModelError, match="fixed shape"):
        from_keras(km)


def test_missing_and_wrong_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such model file"):
        load(tmp_path / "nope.keras")
    h5 = tmp_path / "model.h5"
    h5.write_bytes(b"")
    with pytest.raises(ModelError, match=r"'\.keras' file"):
        load(h5)
