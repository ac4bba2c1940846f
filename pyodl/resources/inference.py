"""What int8 inference of a model costs on the device: estimated (a cost model over the int8 kernels' work,
like the training estimate's) and measured (PREDICT_Q on the simulated board), next to float inference.

The memory is exact: the ``.odl_int8`` section (firmware/odl/odl_int8.h: the quantized weights with room for
8 bits each, biases, scales, multipliers, activation tables, calibration ranges, two int8 activation
buffers), which the memory plan sizes. The model's own bytes, packed at their widths, are the image a flash
copy would take (GET_QIMAGE's, whose per-layer headers aside).

Instructions and cycles come from coefficients fitted by ``benchmarks/calibrate.py --int8`` on random
architectures and widths (the per-feature costs of the kernels: an SMLAD inner product's MAC, a padded or
dilated tap's, a weight widened to int16, a requantization, a Dense output's integer rounding, ...).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pyodl.model.architecture import Architecture, Kind, Layer, Model
from pyodl.model.memory_plan import INT8, has_int8_table, int8_buffers, int8_weight_count
from pyodl.model.quantized import packed_bytes, weight_bits
from pyodl.resources.energy import RUN_MODES
from pyodl.resources.estimate import window_rows

FLOAT_BYTES = 4

# Instructions per unit of each feature, fitted by benchmarks/calibrate.py --int8 (see INT8_FIT below).
INT8_COEFFICIENTS: dict[str, float] = {
    "window": 11769.392,  # per PREDICT_Q: dispatch, softmax set-up, argmax
    "input": 58.145,  # an input value quantized (float division, rounding)
    "conv_fast_mac": 1.061,  # a Conv1D MAC of a window inside the input (SMLAD, 2 channels x 2 windows)
    "conv_tail_mac": 3.733,  # ... of the last k c % 4 taps (one by one)
    "conv_tile": 0.000,  # a block of 2 channels x 2 windows
    "conv_slow_mac": 15.660,  # a MAC of a window reaching into the padding, or dilated (tap by tap)
    "row_weight": 4.645,  # a Conv1D weight widened to int16 (once per window and channel pair)
    "unpacked_weight": 2.809,  # a sub-byte Conv1D weight unpacked as it is widened
    "conv_output": 27.444,  # a Conv1D output requantized (SMMULR when |acc| < 2^30)
    "requant_output": 79.624,  # another output requantized by a fixed-point multiplier (depthwise, GAP)
    "dw_mac": 19.321,  # a DepthwiseConv1D or BatchNorm MAC
    "dw_subbyte_mac": 25.282,  # ... of sub-byte weights
    "dense_mac": 1.684,  # a Dense MAC of 8-bit weights (SXTAB16/SXTB16/SMLAD)
    "dense_subbyte_mac": 7.629,  # ... of sub-byte weights, widened into a row first
    "dense_output": 69.864,  # a Dense output, rounded in integers (odl_dense_round)
    "avgpool_word": 93.815,  # four AvgPool1D outputs of two rows (SHADD8)
    "pool_read": 14.394,  # another pool's input read
    "pool_output": 14.344,  # another pool output
    "gap_read": 0.000,  # a GlobalAveragePooling1D input read
    "element": 6.066,  # a ReLU/ReLU6 clamp or a tanh/sigmoid/LeakyReLU table lookup
    "class": 0.000,  # a class of the softmax
}
INT8_CYCLE_COEFFICIENTS: dict[str, float] = {
    "window": 21705.588,
    "input": 100.676,
    "conv_fast_mac": 1.040,
    "conv_tail_mac": 4.309,
    "conv_tile": 0.000,
    "conv_slow_mac": 17.307,
    "row_weight": 8.190,
    "unpacked_weight": 3.573,
    "conv_output": 36.369,
    "requant_output": 91.128,
    "dw_mac": 32.796,
    "dw_subbyte_mac": 36.041,
    "dense_mac": 1.473,
    "dense_subbyte_mac": 8.471,
    "dense_output": 54.157,
    "avgpool_word": 176.718,
    "pool_read": 28.305,
    "pool_output": 0.000,
    "gap_read": 0.000,
    "element": 8.053,
    "class": 0.000,
}
# Worst relative error of the fits on their calibration set: `.venv/bin/python benchmarks/calibrate.py --int8
# --random 10 --wide 10 --seed 200` (the paper's model at every T and 20 random architectures, 8-bit and mixed).
INT8_FIT = {"instructions": 0.0304, "cycles": 0.0579}  # 50 points, mean errors 0.95% and 1.57%


def _interior(layer: Layer) -> int:
    """Outputs of a Conv1D whose window lies wholly inside the input with taps one row apart (the SMLAD path)."""
    if layer.dilation != 1:
        return 0
    return sum(1 for m in range(layer.out_len)
               if m * layer.stride - layer.pad >= 0 and m * layer.stride - layer.pad + layer.size <= layer.in_len)


def int8_features(arch: Architecture, bits: list[int]) -> dict[str, float]:
    """The int8 cost model's features for one window (PREDICT_Q) with weight widths ``bits``: the work of the
    kernels in firmware/odl/*_int8.c (Conv1D: two output channels at a time, their weights widened to int16
    once per window, two windows at a time, four taps per SMLAD pair; Dense: SXTAB16 inner products and the
    integer rounding of odl_dense_round; AvgPool1D of two rows: four channels per SHADD8)."""
    f = dict.fromkeys(INT8_COEFFICIENTS, 0.0)
    f["window"] = 1.0
    f["input"] = arch.input_size
    f["class"] = arch.num_classes
    widths = iter(bits)
    for layer in arch.layers:
        b = next(widths) if layer.has_params else 8
        if layer.kind is Kind.CONV1D:
            taps = layer.size * layer.in_ch
            inside = _interior(layer)
            pairs = (layer.out_ch + 1) // 2  # an odd last channel fills both slots
            f["conv_fast_mac"] += inside * 2 * pairs * (taps - taps % 4)
            f["conv_tail_mac"] += inside * 2 * pairs * (taps % 4)
            f["conv_tile"] += pairs * ((inside + 1) // 2)
            f["conv_slow_mac"] += (window_rows(layer) * layer.in_ch * layer.out_ch
                                   - inside * layer.out_ch * taps)
            f["row_weight"] += 2 * pairs * taps
            f["unpacked_weight"] += 2 * pairs * taps if b < 8 else 0
            f["conv_output"] += layer.out_size
        elif layer.kind in (Kind.DEPTHWISE1D, Kind.BATCHNORM):
            macs = (window_rows(layer) if layer.kind is Kind.DEPTHWISE1D else layer.in_len) * layer.out_ch
            f["dw_subbyte_mac" if b < 8 else "dw_mac"] += macs
            f["requant_output"] += layer.out_size
        elif layer.kind is Kind.DENSE:
            f["dense_mac" if b == 8 else "dense_subbyte_mac"] += layer.in_size * layer.out_ch
            f["dense_output"] += layer.out_ch
        elif layer.kind is Kind.AVGPOOL1D:
            two = sum(1 for m in range(layer.out_len) if len(layer.rows_read(m)) == 2)
            wide = layer.in_ch - layer.in_ch % 4
            f["avgpool_word"] += two * wide // 4
            f["pool_read"] += window_rows(layer) * layer.in_ch - 2 * two * wide
            f["pool_output"] += layer.out_size - two * wide
        elif layer.kind is Kind.MAXPOOL1D:
            f["pool_read"] += window_rows(layer) * layer.in_ch
            f["pool_output"] += layer.out_size
        elif layer.kind is Kind.GMP1D:
            f["pool_read"] += layer.in_size
            f["pool_output"] += layer.out_ch
        elif layer.kind is Kind.GAP1D:
            f["gap_read"] += layer.in_size
            f["requant_output"] += layer.out_ch
        elif layer.kind in (Kind.RELU, Kind.ACTIVATION):
            f["element"] += layer.out_size
        if layer.has_params and (has_int8_table(layer) or layer.activation in ("relu", "relu6")):
            f["element"] += layer.out_size if has_int8_table(layer) else 0
    return f


def model_bytes(arch: Architecture, bits: list[int]) -> dict[str, int]:
    """The quantized model's own bytes: packed weights, and per output channel an int32 bias, a float scale and
    a multiplier (8 bytes; Dense: a double); a table of 256 bytes per tanh, sigmoid or LeakyReLU."""
    widths = iter(bits)
    weights = per_channel = tables = 0
    for layer in arch.layers:
        if layer.has_params:
            weights += packed_bytes(int8_weight_count(layer), next(widths))
            per_channel += layer.out_ch * (4 + 4 + 8)
        if has_int8_table(layer):
            tables += 256
    return {"weights": weights, "biases, scales, multipliers": per_channel, "activation tables": tables}


@dataclass(frozen=True)
class InferenceEstimate:
    bits: list[int]
    ram_bytes: int  # the .odl_int8 section
    model_bytes: dict[str, int]
    float_param_bytes: int
    instructions: float  # per window, PREDICT_Q
    cycles: float  # Cortex-M4 cycles at 80 MHz (the board's cycle model)

    @property
    def millijoules(self) -> float:
        return RUN_MODES["pll80"].millijoules(self.cycles)

    @property
    def milliseconds(self) -> float:
        return RUN_MODES["pll80"].seconds(self.cycles) * 1e3


def estimate_inference(arch: Architecture, spec: str = "8") -> InferenceEstimate:
    """The estimate of int8 inference with weights of ``spec`` (pyodl.model.quantized.weight_bits)."""
    bits = weight_bits(arch, spec)
    f = int8_features(arch, bits)
    ram = sum(buf.bytes for buf in int8_buffers(arch) if buf.section == INT8)
    return InferenceEstimate(bits, ram, model_bytes(arch, bits), arch.param_count * FLOAT_BYTES,
                             sum(INT8_COEFFICIENTS[k] * v for k, v in f.items()),
                             sum(INT8_CYCLE_COEFFICIENTS[k] * v for k, v in f.items()))


@dataclass(frozen=True)
class InferenceMeasurement:
    bits: list[int]
    int8_section_bytes: int  # .odl_int8 in the linked firmware
    image_bytes: int  # GET_QIMAGE's size
    float_instructions: float  # per window: PREDICT of a loaded window
    float_cycles: float
    int8_instructions: float  # per window: PREDICT_Q
    int8_cycles: float
    agreement: float  # share of the windows where int8 and float pick the same class


def measure_inference(model: Model, specs: list[str], builder: object, work_dir: Path, windows: int = 8,
                      seed: int = 0) -> list[InferenceMeasurement]:
    """Float PREDICT and int8 PREDICT_Q of ``windows`` random windows on the simulated board, after calibrating
    on 16 others, for each weight-bits spec: instructions and modelled cycles per window."""
    from pyodl.board.mailbox import MailboxTransport
    from pyodl.board.unicorn import UnicornBoard
    from pyodl.network.board import BoardNetwork

    firmware = builder.export_and_build(model, work_dir, dataset_windows=16)  # type: ignore[attr-defined]
    rng = np.random.default_rng(seed)
    arch = model.arch
    calibration = rng.standard_normal((16, arch.input_len, arch.input_ch)).astype(np.float32)
    xs = rng.standard_normal((windows, arch.input_len, arch.input_ch)).astype(np.float32)
    out = []
    with UnicornBoard(firmware.elf) as board:
        net = BoardNetwork(MailboxTransport(board), arch)

        def cost(call: object) -> tuple[float, float]:
            i0, c0 = board.executed_instructions(), board.modelled_cycles()
            call()  # type: ignore[operator]
            return board.executed_instructions() - i0, board.modelled_cycles() - c0

        float_costs, float_classes = [], []
        for x in xs:  # PREDICT of a loaded window: predict() less its LOAD_SAMPLE
            box: list[int] = []
            both = np.subtract(cost(lambda box=box, x=x: box.append(net.predict(x)[0])),
                               cost(lambda x=x: net.load_sample(x)))
            float_costs.append(both)
            float_classes.append(box[0])
        net.int8_calibrate(calibration, reset=True)
        section = firmware.ram_sections().get(INT8, 0)
        for spec in specs:
            bits = weight_bits(arch, spec)
            size = net.int8_quantize(bits)
            costs, classes = [], []
            for x in xs:
                box: list[int] = []
                costs.append(cost(lambda box=box, x=x: box.append(net.int8_predict(x)[0])))
                classes.append(box[0])
            fi, fc = np.mean(float_costs, axis=0)
            qi, qc = np.mean(costs, axis=0)
            out.append(InferenceMeasurement(bits, section, size, float(fi), float(fc), float(qi), float(qc),
                                            float(np.mean(np.array(classes) == np.array(float_classes)))))
    return out
