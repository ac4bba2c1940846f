"""BatchNormalization folded into the frozen layer before it: same predictions, fewer layers."""

import numpy as np
import pytest

from pyodl.model.architecture import Architecture, Kind, LayerSpec, Model, glorot_params
from pyodl.model.fold import fold_frozen_batchnorm
from pyodl.model.keras_io import to_keras


def _bn(name: str, channels: int, rng: np.random.Generator) -> LayerSpec:
    mean = tuple(rng.uniform(-1, 1, channels).astype(np.float32).tolist())
    inv_std = tuple(rng.uniform(0.5, 2, channels).astype(np.float32).tolist())
    return LayerSpec(Kind.BATCHNORM, name, stats=(mean, inv_std))


def _model() -> Model:
    """Every foldable kind before a BN (Conv1D with and without bias, DepthwiseConv1D with 2 kernels per
    channel, Dense), one Conv1D whose ReLU sits between it and its BN, and a trained head."""
    rng = np.random.default_rng(4)
    specs = [LayerSpec(Kind.CONV1D, "conv0", units=4, size=3), _bn("bn0", 4, rng),
             LayerSpec(Kind.RELU, "relu0"),
             LayerSpec(Kind.CONV1D, "conv1", units=5, size=2, use_bias=False), _bn("bn1", 5, rng),
             LayerSpec(Kind.DEPTHWISE1D, "dw", units=2, size=2), _bn("bn2", 10, rng),
             LayerSpec(Kind.CONV1D, "conv2", units=3, size=1, activation="relu"), _bn("bn3", 3, rng),
             LayerSpec(Kind.FLATTEN, "flatten"),
             LayerSpec(Kind.DENSE, "hidden", units=6), _bn("bn4", 6, rng),
             LayerSpec(Kind.DENSE, "out", units=3, activation="softmax")]
    arch = Architecture.build("bn", 12, 2, specs)
    params = glorot_params(arch, 1)
    for k, i in enumerate(arch.param_layers):  # gamma, beta and biases away from their initial 1 and 0
        w, b = params[k]
        if arch.layers[i].kind is Kind.BATCHNORM:
            w = rng.uniform(0.5, 1.5, w.shape).astype(np.float32)
        params[k] = (w, rng.uniform(-0.5, 0.5, b.shape).astype(np.float32))
    return Model(arch, params)


def _predict(model: Model, x: np.ndarray) -> np.ndarray:
    return np.asarray(to_keras(model)(x))


def test_frozen_pairs_fold_and_predict_the_same() -> None:
    model = _model()
    folded = fold_frozen_batchnorm(model, trainable_layers=1)
    names = [layer.name for layer in folded.arch.layers]
    # bn3 follows a ReLU, not its conv directly: it stays, as do all layers without a BN after them.
    assert names == ["conv0", "relu0", "conv1", "dw", "conv2", "bn3", "flatten", "hidden", "out"]
    assert folded.arch.layers[names.index("conv1")].use_bias  # the fold gives it a bias
    assert len(folded.notes) == 4 and all("folded into" in note for note in folded.notes)
    x = np.random.default_rng(0).normal(size=(16, 12, 2)).astype(np.float32)
    # One rounding per folded weight and bias and a different association of x W s: float32's
    # relative 6e-8 per operation, through 5 layers, stays well below 1e-5.
    np.testing.assert_allclose(_predict(folded, x), _predict(model, x), rtol=1e-5, atol=1e-6)
    # The trained head is the same layer with the same parameters: TL trains the same weights.
    np.testing.assert_array_equal(folded.params[-1][0], model.params[-1][0])


def test_full_training_and_trained_bn_do_not_fold() -> None:
    model = _model()
    assert fold_frozen_batchnorm(model, None) is model
    # Trained: bn4 (and with it hidden, out); frozen bn0-bn2 fold, bn3 stays as before.
    folded = fold_frozen_batchnorm(model, trainable_layers=3)
    assert [layer.name for layer in folded.arch.layers if layer.kind is Kind.BATCHNORM] == ["bn3", "bn4"]
    for (w, b), (w0, b0) in zip(folded.params[-3:], model.params[-3:], strict=True):
        np.testing.assert_array_equal(w, w0)
        np.testing.assert_array_equal(b, b0)


def test_a_trainable_count_beyond_the_model_is_refused() -> None:
    with pytest.raises(ValueError, match="trainable layers must be between"):
        fold_frozen_batchnorm(_model(), trainable_layers=99)
