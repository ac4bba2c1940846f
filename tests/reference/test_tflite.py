"""The C library's int8 inference against TFLite's reference kernels, on the device's own quantized model.

Tolerance: none. Both sides run the same integer arithmetic on the same int8 weights, int32 biases and
scales, so every int8 logit and probability must be equal bit for bit (the one double-precision step, the
Dense requantization, is the same IEEE product on both)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from pyodl.model.architecture import (
    Architecture,
    Kind,
    LayerSpec,
    Model,
    glorot_params,
    paper_model,
    random_architecture,
)
from pyodl.model.quantized import QuantizedModel, parse_image
from pyodl.network.host import HostNetwork, OdlError
from pyodl.reference.tflite import TFLiteModel
from pyodl.toolchain.host_library import HostBuilder


def _model(arch: Architecture, seed: int) -> Model:
    """Glorot weights and non-zero biases, so that every bias path is exercised."""
    rng = np.random.default_rng(seed)
    params = [(w, (0.1 * rng.normal(size=b.shape)).astype(np.float32)) for w, b in glorot_params(arch, seed)]
    return Model(arch, params)


def _bits(arch: Architecture, rng: np.random.Generator) -> list[int]:
    return [8 if arch.layers[i].kind is Kind.BATCHNORM else int(rng.choice([8, 8, 4, 2])) for i in arch.param_layers]


def _compare(net: HostNetwork, xs: np.ndarray) -> TFLiteModel:
    qm = parse_image(net.arch, net.int8_image())
    tfl = TFLiteModel(qm)
    for k, x in enumerate(xs):
        cls, logits, probs = net.int8_predict(x)
        run = tfl.run(x)
        np.testing.assert_array_equal(logits, run.logits, err_msg=f"window {k}: int8 logits")
        np.testing.assert_array_equal(probs, run.probs, err_msg=f"window {k}: int8 probabilities")
        assert cls == int(np.argmax(logits))
    return tfl


@pytest.fixture
def host(host_builder: HostBuilder, tmp_path: Path):
    built: list[Path] = []

    def build(model: Model) -> HostNetwork:
        # A folder per model: the dynamic loader keeps a loaded library by its path.
        built.append(tmp_path / f"model{len(built)}")
        return HostNetwork(host_builder.export_and_build(model, built[-1]), model.arch)
    return build


@pytest.mark.parametrize("seed", range(12))
def test_random_architectures_match_tflite_bit_for_bit(seed: int, host) -> None:
    """Every layer kind (strides, dilation, padding, depthwise, BatchNorm, pools, GAP, GMP, Flatten, ReLU6, LeakyReLU,
    tanh, sigmoid), with 8-, 4- and 2-bit weights mixed."""
    rng = np.random.default_rng(seed)
    arch = random_architecture(rng, f"q{seed}", wide=True)
    net = host(_model(arch, seed))
    xs = rng.normal(size=(24, arch.input_len, arch.input_ch)).astype(np.float32)
    net.int8_calibrate(xs[:16])
    net.int8_quantize(_bits(arch, rng))
    _compare(net, xs)


def test_standalone_activations_and_softmax(host) -> None:
    specs = [LayerSpec(Kind.CONV1D, "c1", units=8, size=3, padding="same"), LayerSpec(Kind.RELU, "r1"),
             LayerSpec(Kind.MAXPOOL1D, "mp", size=3, stride=2, padding="same"),
             LayerSpec(Kind.CONV1D, "c2", units=6, size=2, padding="causal", dilation=2),
             LayerSpec(Kind.ACTIVATION, "r6", activation="relu6"),
             LayerSpec(Kind.ACTIVATION, "lk", activation="leaky_relu", alpha=0.3),
             LayerSpec(Kind.CONV1D, "c3", units=5, size=3, activation="sigmoid"),
             LayerSpec(Kind.ACTIVATION, "th", activation="tanh"), LayerSpec(Kind.FLATTEN, "flat"),
             LayerSpec(Kind.DENSE, "hid", units=7, activation="tanh"),
             LayerSpec(Kind.ACTIVATION, "sg", activation="sigmoid"),
             LayerSpec(Kind.DENSE, "out", units=5), LayerSpec(Kind.SOFTMAX, "sm")]
    arch = Architecture.build("standalone", 30, 2, specs)
    net = host(_model(arch, 1))
    xs = np.random.default_rng(1).normal(size=(20, 30, 2)).astype(np.float32) * 3
    net.int8_calibrate(xs[:10])
    net.int8_quantize([8, 4, 8, 2, 8])
    _compare(net, xs)


def test_paper_model_and_its_quantization_rule(host) -> None:
    """Weights: scale max|w| / (2^(bits-1) - 1) per output channel, values rounded half away from zero."""
    model = _model(paper_model().arch, 3)
    net = host(model)
    xs = np.random.default_rng(3).normal(size=(16, 40, 3)).astype(np.float32)
    net.int8_calibrate(xs)
    bits = [8, 4, 2, 8]
    net.int8_quantize(bits)
    qm = parse_image(model.arch, net.int8_image())
    assert qm.bits == tuple(bits)
    for (w, _), q, nbits in zip(model.params, [qm.layers[i] for i in model.arch.param_layers], bits, strict=True):
        qmax = np.float32(2 ** (nbits - 1) - 1)
        per_channel = np.moveaxis(w, -1, 0).reshape(w.shape[-1], -1)  # conv (K, C, F) and dense (N, M)
        scale = (np.abs(per_channel).max(axis=1) / qmax).astype(np.float32)
        np.testing.assert_array_equal(q.w_scale, scale)
        ratio = (per_channel / scale[:, None]).astype(np.float32)
        expect = np.clip(np.sign(ratio) * np.floor(np.abs(ratio) + np.float32(0.5)), -qmax, qmax)
        np.testing.assert_array_equal(q.weights.reshape(len(scale), -1), expect)
    _compare(net, xs)


def test_edge_cases_zero_channel_huge_range_and_one_class_calibration(host) -> None:
    """An all-zero filter (scale 1, zero weights), inputs of range 1e4, and a calibration set of near-constant
    windows (as if of a single class) that the test windows then saturate."""
    arch = paper_model().arch
    model = _model(arch, 5)
    w0, b0 = model.params[0]
    w0 = w0.copy()
    w0[:, :, 3] = 0.0
    model = Model(arch, [(w0, b0), *model.params[1:]])
    net = host(model)
    rng = np.random.default_rng(5)
    big = (rng.normal(size=(12, 40, 3)) * 1e4).astype(np.float32)
    net.int8_calibrate(big)
    net.int8_quantize([8, 8, 8, 8])
    qm = parse_image(arch, net.int8_image())
    assert qm.layers[0].w_scale[3] == 1.0 and not qm.layers[0].weights[3].any()
    _compare(net, big)
    net.int8_calibrate_reset()
    still = np.full((4, 40, 3), 0.5, np.float32) + rng.normal(size=(4, 40, 3)).astype(np.float32) * 1e-3
    net.int8_calibrate(still)
    net.int8_quantize([8, 8, 8, 8])
    _compare(net, rng.normal(size=(12, 40, 3)).astype(np.float32))


def test_refusals_leave_the_int8_model_as_it_was(host) -> None:
    model = _model(paper_model().arch, 7)
    net = host(model)
    x = np.random.default_rng(7).normal(size=(4, 40, 3)).astype(np.float32)
    with pytest.raises(OdlError, match="status 16"):
        net.int8_predict(x[0])
    with pytest.raises(OdlError, match="status 15"):
        net.int8_quantize([8, 8, 8, 8])
    bad = x[0].copy()
    bad[3, 1] = np.nan
    with pytest.raises(OdlError, match="status 4"):
        net.int8_calibrate(bad[None])
    with pytest.raises(OdlError, match="status 15"):  # the refused window did not count
        net.int8_quantize([8, 8, 8, 8])
    net.int8_calibrate(x)
    net.int8_quantize([8, 8, 8, 8])
    image = net.int8_image()
    with pytest.raises(OdlError, match="status 13"):
        net.int8_quantize([8, 8, 3, 8])
    with pytest.raises(OdlError, match="status 10"):
        net.int8_quantize([8, 8, 8])
    net.int8_calibrate_reset()
    net.int8_calibrate(x * np.float32(1e-7))  # biases of ~0.1 would need more than 32 bits at that scale
    with pytest.raises(OdlError, match="status 14"):
        net.int8_quantize([8, 8, 8, 8])
    assert net.int8_image() == image




def _shorter(qm: QuantizedModel, length: int) -> QuantizedModel:
    """The same int8 model on inputs of ``length`` rows (the cheap mode of adaptive inference)."""
    arch = qm.arch
    return QuantizedModel(Architecture.build(arch.name, length, arch.input_ch, [layer.spec() for layer in arch.layers]),
                          qm.input, qm.softmax_out, qm.layers)


def test_logits_too_finely_scaled_for_the_softmax_are_refused(host) -> None:
    """TFLite's int8 softmax needs logits scaled above 2^-26 (its multiplier must exceed 1); a final layer whose
    outputs all lie within a few millionths gets QUANT_RANGE, not an undefined shift."""
    model = _model(paper_model().arch, 11)
    w, _ = model.params[-1]
    model = Model(model.arch, [*model.params[:-1], ((w * np.float32(1e-9)).astype(np.float32),
                                                    np.zeros(w.shape[1], np.float32))])
    net = host(model)
    net.int8_calibrate(np.random.default_rng(11).normal(size=(4, 40, 3)).astype(np.float32))
    with pytest.raises(OdlError, match="status 14"):
        net.int8_quantize([8, 8, 8, 8])


def _global_max(arch: Architecture) -> Architecture:
    """``arch`` with its GlobalAvgPool1D a GlobalMaxPool1D."""
    specs = [replace(layer.spec(), kind=Kind.GMP1D) if layer.kind is Kind.GAP1D else layer.spec()
             for layer in arch.layers]
    return Architecture.build(f"{arch.name}_gmp", arch.input_len, arch.input_ch, specs)


@pytest.mark.parametrize("pool", ["gap", "gmp"])
@pytest.mark.parametrize("length", [12, 20, 33])
def test_adaptive_cheap_mode_is_the_model_on_the_newest_rows(length: int, pool: str, host) -> None:
    """The cheap mode (the newest rows only) equals TFLite's run of the same int8 model at that input length,
    GAP's 1 / n folded for the shorter n (GMP's REDUCE_MAX over the n rows); the threshold decides whether the
    whole window runs."""
    arch = paper_model().arch
    model = _model(arch if pool == "gap" else _global_max(arch), 9)
    net = host(model)
    rng = np.random.default_rng(length)
    xs = rng.normal(size=(16, 40, 3)).astype(np.float32)
    net.int8_calibrate(xs[:8])
    net.int8_quantize([8, 8, 8, 8])
    qm = parse_image(model.arch, net.int8_image())
    cheap_tfl = TFLiteModel(_shorter(qm, length))
    for x in xs:
        cheap = net.int8_predict_adaptive(x, length, 0)  # threshold 0: the cheap mode always answers
        assert not cheap.full_ran and cheap.predicted_class == cheap.cheap_class
        run = cheap_tfl.run(x[-length:])
        assert cheap.cheap_class == int(np.argmax(run.logits))
        assert cheap.cheap_confidence == int(run.probs.max()) + 128
        full = net.int8_predict_adaptive(x, length, 256)  # 256: the whole window always runs
        assert full.full_ran and full.predicted_class == net.int8_predict(x)[0]
        assert (full.cheap_class, full.cheap_confidence) == (cheap.cheap_class, cheap.cheap_confidence)
        middle = net.int8_predict_adaptive(x, length, 200)
        assert middle.full_ran == (cheap.cheap_confidence < 200)


def test_adaptive_refuses_what_the_cheap_mode_cannot_take(host) -> None:
    specs = [LayerSpec(Kind.CONV1D, "c", units=4, size=3), LayerSpec(Kind.FLATTEN, "f"),
             LayerSpec(Kind.DENSE, "out", units=3, activation="softmax")]
    flat = host(_model(Architecture.build("flat", 20, 2, specs), 0))
    xs = np.random.default_rng(0).normal(size=(4, 20, 2)).astype(np.float32)
    flat.int8_calibrate(xs)
    flat.int8_quantize([8, 8])
    with pytest.raises(OdlError, match="status 13"):  # Flatten: the Dense would see another length
        flat.int8_predict_adaptive(xs[0], 10, 0)
    assert flat.int8_predict_adaptive(xs[0], 20, 0).cheap_class == flat.int8_predict(xs[0])[0]
    paper = host(_model(paper_model().arch, 0))
    ys = np.random.default_rng(1).normal(size=(4, 40, 3)).astype(np.float32)
    paper.int8_calibrate(ys)
    paper.int8_quantize([8, 8, 8, 8])
    with pytest.raises(OdlError, match="status 13"):  # 9 rows: the second Conv1D's window does not fit
        paper.int8_predict_adaptive(ys[0], 9, 0)
    with pytest.raises(OdlError, match="status 10"):
        paper.int8_predict_adaptive(ys[0], 41, 0)
