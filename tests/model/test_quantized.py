"""The int8 image's Python side (pyodl/model/quantized.py): packing, weight widths, and images that do not
belong to the architecture refused with what is wrong."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from pyodl.model.architecture import Architecture, Kind, LayerSpec, paper_architecture
from pyodl.model.quantized import ImageError, check_bits_spec, pack, packed_bytes, parse_image, unpack, weight_bits


@pytest.mark.parametrize("bits", [8, 4, 2])
@pytest.mark.parametrize("count", [1, 3, 8, 17, 100])
def test_pack_and_unpack_are_inverse(bits: int, count: int) -> None:
    q = 2 ** (bits - 1) - 1
    values = np.random.default_rng(count).integers(-q, q + 1, size=count)
    data = pack(values, bits)
    assert len(data) == packed_bytes(count, bits) and len(data) % 4 == 0
    np.testing.assert_array_equal(unpack(data, count, bits), values)


def test_packing_is_low_bits_first() -> None:
    assert pack(np.array([1, -1]), 4)[:1] == bytes([0xF1])  # element 0 in the low nibble
    assert pack(np.array([1, -1, 0, 1]), 2)[:1] == bytes([0b01_00_11_01])


def test_weight_bits() -> None:
    arch = paper_architecture()
    assert weight_bits(arch, "4") == [4, 4, 4, 4]
    assert weight_bits(arch, "8,4,2,8") == [8, 4, 2, 8]
    with pytest.raises(ValueError, match="2 widths for 4 parameter layers"):
        weight_bits(arch, "8,4")
    for bad in ("3", "8,16,8,8", "", "x"):
        with pytest.raises(ValueError, match="give 8, 4 or 2"):
            check_bits_spec(bad)
    bn = Architecture.build("bn", 20, 2, [LayerSpec(Kind.CONV1D, "c", units=4, size=3),
                                          LayerSpec(Kind.BATCHNORM, "bn", stats=((0.0,) * 4, (1.0,) * 4)),
                                          LayerSpec(Kind.GAP1D, "g"), LayerSpec(Kind.DENSE, "d", units=3,
                                                                                 activation="softmax")])
    assert weight_bits(bn, "2") == [2, 8, 2]  # BatchNormalization's scale stays 8-bit
    with pytest.raises(ValueError, match="BatchNormalization 'bn' takes 8 bits only"):
        weight_bits(bn, "8,4,8")


def _image(arch: Architecture, bits: int = 8) -> bytearray:
    """A well-formed image of zeros with scale-1 parameters."""
    qp = struct.pack("<fi", 1.0, 0)
    out = bytearray(qp + qp)
    for layer in arch.layers:
        out += qp + qp + struct.pack("<ii", -128, 127)
        if layer.has_params:
            count = layer.out_ch if layer.kind is Kind.BATCHNORM else int(np.prod(layer.weight_shape))
            out += struct.pack("<I", bits) + struct.pack("<f", 1.0) * layer.out_ch + bytes(4 * layer.out_ch)
            out += bytes(packed_bytes(count, bits))
    return out


def test_images_that_do_not_fit_the_architecture_are_refused() -> None:
    arch = paper_architecture()
    qm = parse_image(arch, bytes(_image(arch, 4)))
    assert qm.bits == (4, 4, 4, 4) and qm.layers[0].weights.shape == (32, 3, 3)
    good = _image(arch)
    with pytest.raises(ImageError, match="ends at byte"):
        parse_image(arch, bytes(good[:-1]))
    with pytest.raises(ImageError, match="4 bytes more"):
        parse_image(arch, bytes(good + bytes(4)))
    bad_scale = bytearray(good)
    bad_scale[0:4] = struct.pack("<f", float("nan"))
    with pytest.raises(ImageError, match="impossible quantization parameters"):
        parse_image(arch, bytes(bad_scale))
    bad_bits = bytearray(good)
    at = 16 + 24  # input, softmax, then the first layer's out, pre and clamp
    bad_bits[at:at + 4] = struct.pack("<I", 3)
    with pytest.raises(ImageError, match="3-bit weights"):
        parse_image(arch, bytes(bad_bits))
