"""BatchNormalization folded into the frozen Conv1D, DepthwiseConv1D or Dense before it.

In a TL build the frozen layers never change, so a frozen BatchNormalization (moving statistics and gamma/beta
all fixed) right after a frozen layer without activation is an affine map per output channel that the layer's
own weights and bias can absorb: the device then runs one layer instead of two, and stores and reads neither
the statistics nor the BN output. The folded model is the model the device trains; the golden model runs the
same folded model, so the golden check compares like with like, and :func:`fold_frozen_batchnorm`'s own
rounding (one multiply per weight) is checked against the unfolded Keras model by the fold's tests."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from pyodl.model.architecture import Architecture, Kind, Model

FOLDABLE = (Kind.CONV1D, Kind.DEPTHWISE1D, Kind.DENSE)


def foldable(arch: Architecture, trainable_layers: int | None) -> list[int]:
    """Indices of the layers that absorb the BatchNormalization after them when the last ``trainable_layers``
    parameter layers train: a Conv1D, DepthwiseConv1D or Dense without activation, directly followed by a BN,
    both frozen. Full training (None) folds nothing: there every BN trains its gamma and beta."""
    if trainable_layers is None:
        return []
    first_trained = arch.first_trained(trainable_layers)
    return [i for i, (layer, after) in enumerate(zip(arch.layers, arch.layers[1:], strict=False)) if
            layer.kind in FOLDABLE and layer.activation == "none" and after.kind is Kind.BATCHNORM
            and i + 1 < first_trained]


def fold_frozen_batchnorm(model: Model, trainable_layers: int | None) -> Model:
    """``model`` with every :func:`foldable` pair folded into one layer, and a note for each. The trained
    layers count from the end, so the folded model trains the same last ``trainable_layers`` parameter
    layers, with the same parameters."""
    arch = model.arch
    hosts = foldable(arch, trainable_layers)
    if not hosts:
        return model
    params = dict(zip(arch.param_layers, model.params, strict=True))
    specs, new_params, notes = [], [], []
    for i, layer in enumerate(arch.layers):
        if i - 1 in hosts:  # the BN, folded into the layer before
            continue
        if i in hosts:
            bn = arch.layers[i + 1]
            specs.append(replace(layer.spec(), use_bias=True))
            new_params.append(_fold(layer.kind, *params[i], *params[i + 1], bn.stats))
            notes.append(f"{bn.name} folded into {layer.name}: both are frozen in this build, so {layer.name}'s "
                         "weights and bias carry the moving statistics and gamma/beta, and the device runs one "
                         "layer")
            continue
        specs.append(layer.spec())
        if layer.has_params:
            new_params.append(params[i])
    folded = Architecture.build(arch.name, arch.input_len, arch.input_ch, specs)
    return Model(folded, new_params, model.notes + tuple(notes))


def _fold(kind: Kind, w: np.ndarray, b: np.ndarray, gamma: np.ndarray, beta: np.ndarray,
          stats: tuple[tuple[float, ...], tuple[float, ...]] | None) -> tuple[np.ndarray, np.ndarray]:
    """BN(x W + b) = x (W s) + (b s + beta - mean s), s = gamma / sqrt(var + eps) per output channel, each
    product rounded once in float32 as the device computes BN (``inv = inv_std gamma``, ``shift = beta - mean
    inv``)."""
    assert stats is not None  # every BatchNormalization layer carries its moving statistics
    mean, inv_std = (np.asarray(v, np.float32) for v in stats)
    scale = inv_std * gamma
    shift = beta - mean * scale
    # Conv1D (K, C_in, F) and Dense (N_in, N_out) have their output channels last; DepthwiseConv1D's output
    # channel c * dm + d is kernel[:, c, d].
    w_folded = w * (scale.reshape(w.shape[1:]) if kind is Kind.DEPTHWISE1D else scale)
    bias = b if b.size else np.zeros_like(scale)
    return w_folded.astype(np.float32), (bias * scale + shift).astype(np.float32)
