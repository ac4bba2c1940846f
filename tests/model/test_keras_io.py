import os
import subprocess
import sys
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


def test_global_max_pooling_is_imported_and_exported_as_keras_computes_it(tmp_path: Path) -> None:
    km = _seq(L.Conv1D(6, 3, activation="relu"), L.GlobalMaxPooling1D(), L.Dense(3, activation="softmax"))
    model = from_keras(km)
    assert [la.kind for la in model.arch.layers] == [Kind.CONV1D, Kind.GMP1D, Kind.DENSE]
    path = tmp_path / "gmp.keras"
    to_keras(model).save(path)
    back = load(path)
    assert back.arch.layers == model.arch.layers
    x = np.random.default_rng(0).standard_normal((4, 20, 3)).astype(np.float32)
    np.testing.assert_array_equal(to_keras(back).predict(x, verbose=0), km.predict(x, verbose=0))
    with pytest.raises(ModelError, match="keepdims=True is not supported"):
        from_keras(_seq(L.Conv1D(6, 3), L.GlobalMaxPooling1D(keepdims=True), L.Flatten(),
                        L.Dense(3, activation="softmax")))


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
    assert lines[0] == "3 problems keep this model off the device:" and len(lines) == 4
    # By layer type: BatchNormalization's before the two Conv1D's.
    assert "scale=False" in lines[1] and "activation 'elu'" in lines[2] and "kernel_regularizer" in lines[3]


def test_a_conv2d_model_is_told_why_with_every_problem() -> None:
    """It used to get 'the model input must have a fixed shape', naming neither Conv2D nor the reason, and a
    missing softmax was reported only when it was the only problem."""
    km = keras.Sequential([keras.Input((28, 28, 1)), L.Conv2D(4, 3, name="c2d"), L.Flatten(), L.Dense(3)])
    with pytest.raises(ModelError) as err:
        from_keras(km)
    lines = [line.strip() for line in str(err.value).splitlines()]
    assert lines[0] == "3 problems keep this model off the device:", lines
    assert lines[1].startswith("input: shape (28, 28, 1)") and "Conv2D and other 2-D models" in lines[1]
    assert lines[2].startswith("layer 'c2d' (Conv2D): this layer type is not supported")
    assert "must end in softmax" in lines[3]


def test_layer_names_tensorflow_refuses_are_renamed_and_noted(tmp_path: Path) -> None:
    """'my-conv 1' built and trained on the board, then failed in TensorFlow ("not a valid scope name")."""
    from pyodl.reference.golden import KerasReference

    km = keras.Sequential([keras.Input((20, 3)), L.Conv1D(4, 3, activation="relu", name="my-conv 1"),
                           L.Conv1D(4, 3, activation="relu", name="my-conv_1"), L.Flatten(name="flat"),
                           L.Dense(3, activation="softmax", name="head (out)")])
    km.save(tmp_path / "spaced.keras")
    model = load(tmp_path / "spaced.keras")
    assert [la.name for la in model.arch.layers] == ["my-conv_1_2", "my-conv_1", "flat", "head__out_"]
    assert any("'my-conv 1' is named 'my-conv_1_2' here" in note for note in model.notes)
    x = np.random.default_rng(0).standard_normal((2, 20, 3)).astype(np.float32)
    reference = KerasReference(model)
    reference.train_step(x, np.array([0, 2]), 0.01)  # TensorFlow takes the names (Keras's own model does not run)
    for (w, b), layer in zip(model.params, [km.layers[0], km.layers[1], km.layers[3]], strict=True):
        np.testing.assert_array_equal(w, layer.get_weights()[0])
        np.testing.assert_array_equal(b, layer.get_weights()[1])


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
    with pytest.raises(ModelError, match="the window length and the channels must be fixed"):
        from_keras(km)


def test_missing_and_wrong_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such model file"):
        load(tmp_path / "nope.keras")
    h5 = tmp_path / "model.h5"
    h5.write_bytes(b"")
    with pytest.raises(ModelError, match=r"'\.keras' file"):
        load(h5)


def test_tensorflow_start_up_lines_and_retracing_warnings_do_not_reach_the_user() -> None:
    """absl's and oneDNN's start-up lines went to the terminal of every command that loads TensorFlow, and a
    retracing warning to every run that predicts batches of several sizes."""
    code = ("import numpy as np; from pyodl.model.architecture import paper_model; "
            "from pyodl.model.keras_io import to_keras; km = to_keras(paper_model(20, 0)); "
            "[km.predict(np.zeros((n, 20, 3), np.float32), verbose=0) for n in range(1, 9)]")
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert proc.stderr == ""
