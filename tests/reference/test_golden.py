"""The golden model itself: it must be what Keras' own training does, or comparing with it proves nothing."""

import numpy as np
import pytest

from pyodl.model.architecture import paper_model
from pyodl.model.keras_io import keras, to_keras
from pyodl.reference import golden


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
