"""The int8 kernels one by one against TFLite's reference kernels, on quantization parameters chosen to reach
the corners a calibrated model rarely reaches: Dense outputs exactly halfway between two integers, a MEAN
whose multiplier has no room for log2(n) more bits, a REDUCE_MAX over rows at the int8 extremes, and softmax
inputs just inside and outside its radius.

Each case is a hand-made :class:`QuantizedModel` run by TFLite, and the same int8 values run through the C
kernels by ctypes. Tolerance: none (integer arithmetic on both sides)."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest

from pyodl.model.architecture import Architecture, Kind, LayerSpec, paper_model
from pyodl.model.quantized import SOFTMAX_OUT, QParams, QuantizedLayer, QuantizedModel
from pyodl.reference.tflite import TFLiteModel
from pyodl.toolchain.host_library import HostBuilder


class QMult(ctypes.Structure):
    _fields_ = [("multiplier", ctypes.c_int32), ("shift", ctypes.c_int32)]


class QParamsC(ctypes.Structure):
    _fields_ = [("scale", ctypes.c_float), ("zero_point", ctypes.c_int32)]


class IO(ctypes.Structure):
    _fields_ = [("in_zp", ctypes.c_int32), ("out_zp", ctypes.c_int32), ("act_min", ctypes.c_int32),
                ("act_max", ctypes.c_int32)]


I8 = ctypes.POINTER(ctypes.c_int8)
I32 = ctypes.POINTER(ctypes.c_int32)
F64 = ctypes.POINTER(ctypes.c_double)


@pytest.fixture(scope="module")
def lib(tmp_path_factory: pytest.TempPathFactory) -> ctypes.CDLL:
    builder = HostBuilder(tmp_path_factory.mktemp("kernels-build"))
    library = ctypes.CDLL(str(builder.export_and_build(paper_model(), tmp_path_factory.mktemp("kernels"))))
    library.odl_quantize_multiplier.argtypes = [ctypes.c_double]
    library.odl_quantize_multiplier.restype = QMult
    library.odl_mean_multiplier.argtypes = [QMult, ctypes.c_uint32]
    library.odl_mean_multiplier.restype = QMult
    library.odl_softmax_params.argtypes = [ctypes.c_float, ctypes.POINTER(QMult), I32]
    library.odl_int8_activation_table.argtypes = [ctypes.c_uint8, ctypes.c_float, QParamsC, QParamsC, I8]
    library.odl_int8_activation_table.restype = ctypes.c_int
    library.odl_softmax_forward_int8.argtypes = [I8, ctypes.c_uint, QMult, ctypes.c_int32, I8]
    library.odl_gap1d_forward_int8.argtypes = [I8, ctypes.c_uint, ctypes.c_uint, QMult, ctypes.POINTER(IO), I8]
    library.odl_gmp1d_forward_int8.argtypes = [I8, ctypes.c_uint, ctypes.c_uint, ctypes.POINTER(IO), I8]
    dense = [I8, ctypes.c_uint, I8, ctypes.c_uint, I32, F64, ctypes.c_uint, ctypes.POINTER(IO)]
    library.odl_dense_forward_int8.argtypes = [*dense, I8, I8]
    library.odl_dense_forward_int8_ref.argtypes = [*dense, I8]
    yield library
    builder.close()


def _i8(a: np.ndarray) -> ctypes._Pointer:
    return a.ctypes.data_as(I8)


def _identity_dense(n: int, p: QParams) -> QuantizedLayer:
    """A Dense layer whose int8 output is its int8 input (weights 1 at scale 1, zero bias, in = out params)."""
    return QuantizedLayer(p, -128, 127, 8, np.ones(n, np.float32), np.zeros(n, np.int32), np.eye(n, dtype=np.int8))


def _window(x: np.ndarray, p: QParams) -> np.ndarray:
    """A float window that TFLite's QUANTIZE maps back to exactly ``x``."""
    return (np.float32(p.scale) * (x.astype(np.float32) - np.float32(p.zero_point))).astype(np.float32)


def test_dense_outputs_halfway_between_integers_round_away_from_zero(lib: ctypes.CDLL) -> None:
    """in 1, weights 0.5, out 1: real scale exactly 0.5, so every odd accumulator is a tie."""
    n_in, n_out = 7, 5
    arch = Architecture.build("fc", 1, n_in, [LayerSpec(Kind.FLATTEN, "f"),
                                              LayerSpec(Kind.DENSE, "d", units=n_out, activation="softmax")])
    rng = np.random.default_rng(0)
    w = rng.integers(-127, 128, size=(n_out, n_in)).astype(np.int8)
    bias = rng.integers(-300, 300, size=n_out).astype(np.int32)
    w_scale = np.full(n_out, 0.5, np.float32)
    p_in, p_out = QParams(1.0, 3), QParams(1.0, -7)
    qm = QuantizedModel(arch, p_in, QParams(*SOFTMAX_OUT), (
        QuantizedLayer(p_in, -128, 127), QuantizedLayer(p_out, -128, 127, 8, w_scale, bias, w)))
    tfl = TFLiteModel(qm)
    real = np.full(n_out, 0.5, np.float64)
    io = IO(p_in.zero_point, p_out.zero_point, -128, 127)
    ties = 0
    for _ in range(200):
        x = rng.integers(-128, 128, size=n_in).astype(np.int8)
        acc = w.astype(np.int64) @ (x.astype(np.int64) - p_in.zero_point) + bias
        ties += int(np.sum(acc % 2 == 1))
        y, y_ref = np.zeros(n_out, np.int8), np.zeros(n_out, np.int8)
        row = np.zeros(n_in, np.int8)
        args = (_i8(x), n_in, _i8(w), 8, bias.ctypes.data_as(I32), real.ctypes.data_as(F64), n_out,
                ctypes.byref(io))
        lib.odl_dense_forward_int8(*args, _i8(row), _i8(y))
        lib.odl_dense_forward_int8_ref(*args, _i8(y_ref))
        run = tfl.run(_window(x, p_in))
        np.testing.assert_array_equal(y, run.logits)
        np.testing.assert_array_equal(y_ref, run.logits)
    assert ties > 200  # the case this test is about did occur


@pytest.mark.parametrize("n,in_scale,out_scale", [(256, 1e-7, 3.0), (200, 2e-9, 1.0), (37, 0.02, 0.01)])
def test_mean_with_little_room_in_its_multiplier(lib: ctypes.CDLL, n: int, in_scale: float, out_scale: float) -> None:
    """A tiny in/out ratio leaves the multiplier fewer than log2(n) bits to take 1/n in."""
    c = 4
    arch = Architecture.build("mean", n, c, [LayerSpec(Kind.GAP1D, "gap"),
                                             LayerSpec(Kind.DENSE, "d", units=2, activation="softmax")])
    p_in, p_out = QParams(in_scale, -5), QParams(out_scale, 2)
    dense = _identity_dense(2, p_out)
    dense = QuantizedLayer(dense.out, -128, 127, 8, dense.w_scale[:2], dense.bias[:2],
                           np.ones((2, c), np.int8))  # any Dense after it: only the MEAN is compared
    qm = QuantizedModel(arch, p_in, QParams(*SOFTMAX_OUT), (QuantizedLayer(p_out, -128, 127), dense))
    tfl = TFLiteModel(qm)
    m = lib.odl_mean_multiplier(lib.odl_quantize_multiplier(float(np.float64(np.float32(in_scale))
                                                                / np.float64(np.float32(out_scale)))), n)
    io = IO(p_in.zero_point, p_out.zero_point, -128, 127)
    # Every channel sum from -128 n to 127 n in steps of 7 (4 channels per window): a multiplier one bit
    # short rounds a few of them the other way.
    sums = np.arange(-128 * n, 127 * n + 1, 7)
    for start in range(0, len(sums) - c + 1, c):
        total = sums[start:start + c]
        base = np.floor_divide(total, n)
        x = np.repeat(base[None, :], n, axis=0)
        x += (np.arange(n)[:, None] < (total - base * n)[None, :])  # the remainder, one per row
        x = x.astype(np.int8)
        y = np.zeros(c, np.int8)
        lib.odl_gap1d_forward_int8(_i8(np.ascontiguousarray(x)), n, c, m, ctypes.byref(io), _i8(y))
        np.testing.assert_array_equal(y, tfl.run(_window(x, p_in)).layer_outputs[0])


@pytest.mark.parametrize("n", [1, 2, 37, 300])
def test_reduce_max_over_rows_at_the_int8_extremes(lib: ctypes.CDLL, n: int) -> None:
    """GlobalMaxPool1D as REDUCE_MAX (output parameters the input's): channels that are -128 throughout, that
    reach 127, whose maximum sits in the first or the last row only, or ties."""
    c = 6
    arch = Architecture.build("max", n, c, [LayerSpec(Kind.GMP1D, "gmp"),
                                            LayerSpec(Kind.DENSE, "d", units=2, activation="softmax")])
    p = QParams(0.05, -3)
    dense = QuantizedLayer(p, -128, 127, 8, np.ones(2, np.float32), np.zeros(2, np.int32),
                           np.ones((2, c), np.int8))  # any Dense after it: only the REDUCE_MAX is compared
    tfl = TFLiteModel(QuantizedModel(arch, p, QParams(*SOFTMAX_OUT), (QuantizedLayer(p, -128, 127), dense)))
    io = IO(p.zero_point, p.zero_point, -128, 127)
    rng = np.random.default_rng(n)
    for k in range(40):
        x = rng.integers(-128, 128, size=(n, c)).astype(np.int8)
        x[:, 0] = -128
        x[rng.integers(0, n), 1] = 127
        x[:, 2] = np.minimum(x[:, 2], 100)
        x[0, 2] = 101  # the first row alone
        x[:, 3] = np.minimum(x[:, 3], 100)
        x[-1, 3] = 101  # the last row alone
        x[:, 4] = rng.integers(-2, 1, size=n)  # ties at 0 (a ReLU's zeros)
        y = np.zeros(c, np.int8)
        lib.odl_gmp1d_forward_int8(_i8(np.ascontiguousarray(x)), n, c, ctypes.byref(io), _i8(y))
        np.testing.assert_array_equal(y, tfl.run(_window(x, p)).layer_outputs[0], err_msg=f"window {k}")
        np.testing.assert_array_equal(y, x.max(axis=0))  # and the maximum itself, should both be wrong alike


@pytest.mark.parametrize("scale", [1.0, 0.25, 0.0625, 1 / 300])
def test_softmax_at_the_edge_of_its_input_radius(lib: ctypes.CDLL, scale: float) -> None:
    """Logits spread so that many differences to the maximum fall just inside and outside diff_min."""
    n = 12
    arch = Architecture.build("sm", 1, n, [LayerSpec(Kind.FLATTEN, "f"), LayerSpec(Kind.DENSE, "d", units=n),
                                           LayerSpec(Kind.SOFTMAX, "sm")])
    p_in = QParams(scale, 0)
    qm = QuantizedModel(arch, p_in, QParams(*SOFTMAX_OUT), (QuantizedLayer(p_in, -128, 127), _identity_dense(n, p_in),
                                                            QuantizedLayer(QParams(*SOFTMAX_OUT), -128, 127)))
    tfl = TFLiteModel(qm)
    mult, diff_min = QMult(), ctypes.c_int32()
    lib.odl_softmax_params(np.float32(scale), ctypes.byref(mult), ctypes.byref(diff_min))
    rng = np.random.default_rng(int(1 / scale))
    for _ in range(200):
        top = int(rng.integers(0, 128))
        spread = -diff_min.value + int(rng.integers(-3, 4))
        x = np.clip(top - rng.integers(0, max(spread, 1) + 1, size=n), -128, 127).astype(np.int8)
        x[int(rng.integers(0, n))] = top
        y = np.zeros(n, np.int8)
        lib.odl_softmax_forward_int8(_i8(x), n, mult, diff_min.value, _i8(y))
        run = tfl.run(_window(x, p_in))
        np.testing.assert_array_equal(run.logits, x)  # the identity Dense passed the logits on unchanged
        np.testing.assert_array_equal(y, run.probs)


def test_quantize_multiplier_as_tflite(lib: ctypes.CDLL) -> None:
    """Mantissa rounded half away from zero, 1.0 renormalized, below 2^-31 zero (tflite::QuantizeMultiplier)."""
    import math

    for real in [0.5, 0.75, 1.0, 2.0**-31, 2.0**-32, 0.9999999999, 1234.5, 3.0e-5, 0.4999999999999999]:
        mantissa, shift = math.frexp(real)
        fixed = math.floor(mantissa * 2**31 + 0.5)
        if fixed == 2**31:
            fixed, shift = fixed // 2, shift + 1
        if shift < -31:
            fixed, shift = 0, 0
        got = lib.odl_quantize_multiplier(real)
        assert (got.multiplier, got.shift) == (fixed, shift), real



ACTIVATION_CODES = {"leaky_relu": 4, "tanh": 5, "sigmoid": 6}  # odl_activation_t


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "leaky_relu"])
def test_activation_tables_on_every_input_code(lib: ctypes.CDLL, activation: str) -> None:
    """The whole 256-entry table for 60 input scales and zero points (1e-6 to 1e3, -128 and 127 included):
    tanh and sigmoid as TFLite tabulates them in float32, LeakyReLU's multipliers from float32 ratios."""
    n = 256
    rng = np.random.default_rng(ACTIVATION_CODES[activation])
    alpha = 0.3 if activation == "leaky_relu" else 0.0
    scales = [1e-6, 1e3, 0.5, 1 / 128, *(10.0 ** rng.uniform(-4, 1.5, size=296))]
    codes = np.arange(-128, 128).astype(np.int8)
    for k, in_scale in enumerate(scales):
        p_in = QParams(float(np.float32(in_scale)), [-128, 127, 0][k % 3] if k < 12 else int(rng.integers(-128, 128)))
        if activation == "tanh":
            p_out = QParams(1 / 128, 0)
        elif activation == "sigmoid":
            p_out = QParams(1 / 256, -128)
        else:
            p_out = QParams(float(np.float32(in_scale * 10.0 ** rng.uniform(-1, 1))), int(rng.integers(-128, 128)))
        lut = np.zeros(n, np.int8)
        status = lib.odl_int8_activation_table(ACTIVATION_CODES[activation], alpha,
                                               QParamsC(p_in.scale, p_in.zero_point),
                                               QParamsC(p_out.scale, p_out.zero_point), _i8(lut))
        if status != 0:  # a LeakyReLU ratio beyond the fixed-point range: refused, nothing to compare
            continue
        arch = Architecture.build("act", 1, n, [LayerSpec(Kind.FLATTEN, "f"),
                                                LayerSpec(Kind.ACTIVATION, "a", activation=activation, alpha=alpha),
                                                LayerSpec(Kind.DENSE, "d", units=n), LayerSpec(Kind.SOFTMAX, "sm")])
        qm = QuantizedModel(arch, p_in, QParams(*SOFTMAX_OUT), (
            QuantizedLayer(p_in, -128, 127), QuantizedLayer(p_out, -128, 127), _identity_dense(n, p_out),
            QuantizedLayer(QParams(*SOFTMAX_OUT), -128, 127)))
        run = TFLiteModel(qm).run(_window(codes, p_in))
        np.testing.assert_array_equal(lut, run.layer_outputs[1], err_msg=f"in {p_in}, out {p_out}")
