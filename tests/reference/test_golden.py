"""The golden model itself: it must be what Keras' own training does, or comparing with it proves nothing."""

from pathlib import Path

import numpy as np
import pytest

from pyodl.model.architecture import Architecture, Kind, LayerSpec, Model, paper_model
from pyodl.model.keras_io import keras, to_keras
from pyodl.network.host import HostNetwork
from pyodl.reference import golden
from pyodl.toolchain.host_library import HostBuilder


@pytest.mark.parametrize("trainable", [None, 2])
def test_golden_equals_keras_fit(trainable: int | None) -> None:
    model = paper_model(20, seed=1)
    x, y = golden.random_batches(model.arch, steps=5, batch=8, seed=0)
    run = golden.train(model, x, y, 0.01, trainable)

    km = to_keras(model)
    for i in model.arch.param_layers[: len(model.arch.param_layers) - (trainable or 4)]:
        km.get_layer(model.arch.layers[i].name).trainable = False
    km.compile(optimizer=keras.optimizers.SGD(0.01), loss="categorical_crossentropy")
    onehot = np.eye(6, dtype=np.float32)[y.reshape(-1)]
    km.fit(x.reshape(-1, 20, 3), onehot, batch_size=8, epochs=1, shuffle=False, verbose=0)
    fitted = [tuple(km.get_layer(model.arch.layers[i].name).get_weights()) for i in model.arch.param_layers]
    diffs = golden.compare(model, fitted, run.params)
    assert all(d.max_abs == 0.0 for d in diffs), diffs
    assert run.losses.shape == (5,) and len(run.gradients) == 5
    assert len(run.gradients[0]) == (trainable or 4)


def test_frozen_layers_do_not_move() -> None:
    model = paper_model(20, seed=2)
    x, y = golden.random_batches(model.arch, steps=3, batch=4, seed=0)
    run = golden.train(model, x, y, 0.5, trainable_layers=1)
    for (w0, b0), (w1, b1) in zip(model.params[:3], run.params[:3], strict=True):
        assert np.array_equal(w0, w1) and np.array_equal(b0, b1)
    assert not np.array_equal(model.params[3][0], run.params[3][0])


def test_bad_batches_are_refused() -> None:
    model = paper_model(20)
    x, y = golden.random_batches(model.arch, 2, 4, seed=0)
    with pytest.raises(ValueError, match=r"shape \(steps, batch, 20, 3\)"):
        golden.train(model, x[:, :, :10], y)
    with pytest.raises(ValueError, match="labels must have shape"):
        golden.train(model, x, y[:, :3])
    with pytest.raises(ValueError, match=r"classes 0\.\.5"):
        golden.train(model, x, y + 6)
    x[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        golden.train(model, x, y)


def test_compare_fails_on_nan_and_beyond_tolerance() -> None:
    model = paper_model(20)
    params = model.params
    shifted = [(w + np.float32(1e-3), b) for w, b in params]
    assert not all(d.ok for d in golden.compare(model, shifted, params))
    nan = [(np.full_like(w, np.nan), b) for w, b in params]
    assert all(not d.ok for d in golden.compare(model, nan, params))
    assert all(d.ok and d.max_abs == 0 for d in golden.compare(model, params, params))


def _dense_model(act: str, pool: bool = False, standalone: bool = False) -> Model:
    """Input (2, 1) -> [MaxPool1D(2)] -> Flatten -> Dense(2, act) -> Dense(2, softmax): the hidden
    pre-activations are x0 + x1 and x0 - x1 (max(x0, x1) and its negation with the pool); the second sets the
    layer's magnitude, against which a near miss of the first is measured. ``standalone``: the activation as
    its own layer after a linear Dense."""
    specs = [LayerSpec(Kind.MAXPOOL1D, "pool", size=2)] if pool else []
    specs += [LayerSpec(Kind.FLATTEN, "flat"),
              LayerSpec(Kind.DENSE, "hidden", units=2, activation="none" if standalone else act)]
    specs += [LayerSpec(Kind.ACTIVATION, "act", activation=act)] if standalone else []
    specs += [LayerSpec(Kind.DENSE, "out", units=2, activation="softmax")]
    arch = Architecture.build("kinks", 2, 1, specs)
    hidden = [[1.0, -1.0]] if pool else [[1.0, 1.0], [1.0, -1.0]]
    params = [(np.array(hidden, np.float32), np.zeros(2, np.float32)),
              (np.eye(2, dtype=np.float32), np.zeros(2, np.float32))]
    return Model(arch, params)


def test_kink_samples_are_the_near_misses_of_a_decision() -> None:
    """A pre-activation within rounding of 0 (or of 6 for ReLU6) is flagged; far from it, or exactly at it
    (both sides decide alike), it is not; a max pool's near tie is flagged, an exact tie is not."""
    xs = np.array([[[1.0], [-1.0 + 1e-7]], [[0.5], [0.25]], [[1.0], [-1.0]], [[-0.3], [-0.4]]], np.float32)
    assert golden.kink_samples(_dense_model("relu"), xs).tolist() == [True, False, False, False]
    near_six = np.array([[[3.0], [3.0 + 2e-6]], [[3.0], [2.0]]], np.float32)
    assert golden.kink_samples(_dense_model("relu6"), near_six).tolist() == [True, False]
    assert golden.kink_samples(_dense_model("relu6", standalone=True), near_six).tolist() == [True, False]
    ties = np.array([[[2.0], [2.0 + 1e-6]], [[2.0], [2.0]], [[2.0], [1.0]]], np.float32)
    assert golden.kink_samples(_dense_model("sigmoid", pool=True), ties).tolist() == [True, False, False]


def test_lockstep_passes_a_correct_build_and_fails_a_wrong_one(tmp_path: Path) -> None:
    model = paper_model(20, seed=2)
    x, y = golden.random_batches(model.arch, steps=3, batch=4, seed=5)
    net = HostNetwork(HostBuilder(tmp_path / "b").export_and_build(model, tmp_path / "m"), model.arch)
    ratios, left_out = golden.lockstep(net, model, x, y, 0.01)
    assert ratios.shape == (3,) and (ratios < 0.1).all() and left_out == 0

    real = net.sgd_step
    net.sgd_step = lambda lr: real(lr * 1.001)  # type: ignore[method-assign]  # a wrong update
    ratios, _ = golden.lockstep(net, model, x, y, 0.01)
    assert (ratios > 1).all()
