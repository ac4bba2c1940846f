"""The int8 copy of a network that the device's QUANTIZE makes (firmware/odl/odl_int8.h), as numpy arrays.

The device reads it out as one byte image (``odl_int8_image_read``); :func:`parse_image` turns that image
back into a :class:`QuantizedModel` for the architecture it was made from. Weights come back unpacked, one
int8 per value, in TFLite's layouts: Conv1D ``(F, K, C_in)``, DepthwiseConv1D ``(K, C * dm)``, Dense
``(N_out, N_in)``, BatchNormalization ``(C,)`` (gamma / sqrt(var + eps), a depthwise kernel of one tap).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from pyodl.model.architecture import Architecture, Kind, Layer
from pyodl.model.memory_plan import int8_weight_count

WEIGHT_BITS = (8, 4, 2)  # what odl_int8_quantize takes per parameter layer (BatchNormalization: 8 only)
SOFTMAX_OUT = (1.0 / 256.0, -128)


class ImageError(ValueError):
    """An int8 image that does not belong to the architecture (wrong length, impossible values)."""


@dataclass(frozen=True)
class QParams:
    """real = scale * (q - zero_point)"""

    scale: float
    zero_point: int

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        return np.float32(self.scale) * (np.asarray(q, np.float32) - np.float32(self.zero_point))


@dataclass(frozen=True)
class QuantizedLayer:
    out: QParams
    act_min: int
    act_max: int
    bits: int = 0  # parameter layers: 8, 4 or 2
    w_scale: np.ndarray | None = None  # float32 per output channel
    bias: np.ndarray | None = None  # int32 per output channel, scale in.scale * w_scale
    weights: np.ndarray | None = None  # int8, TFLite layout (see the module's docstring)
    pre: QParams | None = None  # the output before a fused tanh, sigmoid or LeakyReLU (None: ``out``)


@dataclass(frozen=True)
class QuantizedModel:
    arch: Architecture
    input: QParams
    softmax_out: QParams
    layers: tuple[QuantizedLayer, ...]

    def input_params(self, index: int) -> QParams:
        """The scale and zero point of layer ``index``'s input."""
        return self.input if index == 0 else self.layers[index - 1].out

    @property
    def bits(self) -> tuple[int, ...]:
        return tuple(q.bits for q, layer in zip(self.layers, self.arch.layers, strict=True) if layer.has_params)

    def weight_bytes(self) -> int:
        """Packed weight bytes, as a device would keep them in flash."""
        return sum(packed_bytes(int8_weight_count(layer), q.bits)
                   for q, layer in zip(self.layers, self.arch.layers, strict=True) if layer.has_params)


def check_bits_spec(spec: str) -> None:
    """A weight width for every layer ('8', '4', '2') or one per parameter layer ('8,4,4,8'); ValueError."""
    parts = spec.split(",")
    if not all(p.strip() in ("8", "4", "2") for p in parts):
        raise ValueError(f"weight bits {spec!r}: give 8, 4 or 2, or one of them per parameter layer (e.g. 8,4,4,8)")


def weight_bits(arch: Architecture, spec: str) -> list[int]:
    """The width of each parameter layer for ``spec`` (:func:`check_bits_spec`). A single width applies to
    every layer but BatchNormalization's, whose scale stays 8-bit (its int8 kernel takes no other)."""
    check_bits_spec(spec)
    parts = [int(p) for p in spec.split(",")]
    layers = [arch.layers[i] for i in arch.param_layers]
    if len(parts) == 1:
        return [8 if layer.kind is Kind.BATCHNORM else parts[0] for layer in layers]
    if len(parts) != len(layers):
        raise ValueError(f"weight bits {spec!r}: {len(parts)} widths for {len(layers)} parameter layers")
    for layer, bits in zip(layers, parts, strict=True):
        if layer.kind is Kind.BATCHNORM and bits != 8:
            raise ValueError(f"weight bits {spec!r}: BatchNormalization '{layer.name}' takes 8 bits only")
    return parts


def packed_bytes(count: int, bits: int) -> int:
    """ODL_INT8_WEIGHT_BYTES: ``count`` values of ``bits`` bits, in whole 32-bit words."""
    return (count * bits + 31) // 32 * 4


def unpack(data: bytes, count: int, bits: int) -> np.ndarray:
    """``count`` signed ``bits``-bit values packed low bits first."""
    raw = np.frombuffer(data, np.uint8)
    if bits == 8:
        return raw[:count].view(np.int8).copy()
    per = 8 // bits
    fields = (raw[:, None] >> (np.arange(per, dtype=np.uint8) * bits)) & ((1 << bits) - 1)
    values = fields.reshape(-1)[:count].astype(np.int16)
    return np.where(values >= 1 << (bits - 1), values - (1 << bits), values).astype(np.int8)


def pack(values: np.ndarray, bits: int) -> bytes:
    """The inverse of :func:`unpack`, padded to whole words."""
    v = np.asarray(values, np.int64).reshape(-1)
    out = np.zeros(packed_bytes(v.size, bits), np.uint8)
    if bits == 8:
        out[: v.size] = v.astype(np.int8).view(np.uint8)
        return out.tobytes()
    field = (v & ((1 << bits) - 1)).astype(np.uint8)
    per = 8 // bits
    for i in range(per):
        part = field[i::per]
        out[: part.size] |= (part << (i * bits)).astype(np.uint8)
    return out.tobytes()


def weight_shape(layer: Layer) -> tuple[int, ...]:
    """A parameter layer's int8 weights, in TFLite's layout."""
    if layer.kind is Kind.CONV1D:
        return (layer.out_ch, layer.size, layer.in_ch)
    if layer.kind is Kind.DENSE:
        return (layer.out_ch, layer.in_size)
    if layer.kind is Kind.DEPTHWISE1D:
        return (layer.size, layer.out_ch)
    return (layer.out_ch,)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def take(self, n: int) -> bytes:
        if self.at + n > len(self.data):
            raise ImageError(f"the int8 image ends at byte {len(self.data)}, the architecture needs more")
        chunk = self.data[self.at:self.at + n]
        self.at += n
        return chunk

    def qparams(self) -> QParams:
        scale, zp = struct.unpack("<fi", self.take(8))
        if not (np.isfinite(scale) and scale > 0 and -128 <= zp <= 127):
            raise ImageError(f"impossible quantization parameters: scale {scale}, zero point {zp}")
        return QParams(float(scale), int(zp))

    def words(self, n: int, dtype: str) -> np.ndarray:
        return np.frombuffer(self.take(4 * n), dtype).copy()


def parse_image(arch: Architecture, data: bytes) -> QuantizedModel:
    """The :class:`QuantizedModel` in ``data``, laid out as ``odl_int8_image_read`` writes it."""
    r = _Reader(bytes(data))
    input_params = r.qparams()
    softmax_out = r.qparams()
    layers = []
    for layer in arch.layers:
        out = r.qparams()
        pre = r.qparams()
        act_min, act_max = struct.unpack("<ii", r.take(8))
        if not -128 <= act_min <= act_max <= 127:
            raise ImageError(f"layer '{layer.name}': impossible clamp [{act_min}, {act_max}]")
        if not layer.has_params:
            layers.append(QuantizedLayer(out, act_min, act_max, pre=None if pre == out else pre))
            continue
        (bits,) = struct.unpack("<I", r.take(4))
        if bits not in WEIGHT_BITS:
            raise ImageError(f"layer '{layer.name}': {bits}-bit weights")
        w_scale = r.words(layer.out_ch, "<f4").astype(np.float32)
        bias = r.words(layer.out_ch, "<i4").astype(np.int32)
        count = int8_weight_count(layer)
        weights = unpack(r.take(packed_bytes(count, bits)), count, bits).reshape(weight_shape(layer))
        layers.append(QuantizedLayer(out, act_min, act_max, bits, w_scale, bias, weights,
                                     pre=None if pre == out else pre))
    if r.at != len(r.data):
        raise ImageError(f"the int8 image has {len(r.data) - r.at} bytes more than the architecture needs")
    return QuantizedModel(arch, input_params, softmax_out, tuple(layers))
