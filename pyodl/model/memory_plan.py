"""Static memory plan of a model on the device: every buffer, its size, its linker section.

The plan decides, for a build that can train the last ``trainable_layers`` parameter layers:

- where each layer writes its output. A trained Conv1D/Dense layer needs its input again in the backward
  pass, so whatever produces that input writes into a dedicated ``.odl_saved`` buffer; every other
  activation lives in one of two ``.odl_scratch`` buffers used alternately;
- ReLU/ReLU6/LeakyReLU masks (one bit per element) only for activations at or above the lowest trainable
  layer, and likewise a copy of a tanh's or sigmoid's output, a MaxPool1D's argmax (each output's
  offset in its window, in as few bits as the pool size allows) and a GlobalMaxPool1D's tie mask (a bit per
  input element: every maximum of a channel shares its gradient, as in TensorFlow);
- gradient buffers, and a stateful optimizer's slots (``.odl_optim``), only for trainable layers; frozen
  layers' parameters stay const (flash);
- the backward pass reuses the two scratch buffers for dL/da, so each is as large as the largest
  activation routed through scratch or the largest error the backward pass can hold.

Flatten and a ReLU that follows a computed activation work in place, so they take no buffer.

Every build also holds the int8 copy of the network that QUANTIZE fills (``.odl_int8``, firmware/odl/odl_int8.h):
each parameter layer's weights (room for 8 bits each), int32 biases, weight scales and multipliers, the
calibration ranges, two int8 activation buffers, and int8 logits and probabilities. Each of those arrays is
a multiple of 8 bytes, so the section holds them without padding.

A build may also hold a dataset region (``.odl_dataset``): ``dataset_windows`` records of a window and its
label that the host stores in bulk and the firmware trains on or predicts in bulk (firmware/app/records.c, dataset.c).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pyodl.model.architecture import Architecture, Kind, Layer
from pyodl.model.optimizer import SGD, Optimizer

FLOAT_BYTES = 4
MASK_WORD_BYTES = 4

INPUT = "input"  # the caller's sample buffer (the mailbox window on the board)
LOGITS = "logits"
PROBS = "probs"
SCRATCH = ("scratch_a", "scratch_b")

SECTIONS = (".odl_params", ".odl_grads", ".odl_optim", ".odl_saved", ".odl_scratch", ".odl_io", ".odl_dataset",
            ".odl_int8")
INT8 = ".odl_int8"
# Bytes per element of each C type a buffer holds; odl_qmult_t is two int32, odl_int8_layer_t two (float,
# int32) pairs and three bytes (20 with padding, on the Cortex-M4 as on the host).
CTYPE_BYTES = {"float": 4, "uint32_t": 4, "int8_t": 1, "int32_t": 4, "odl_qmult_t": 8, "double": 8,
               "odl_int8_layer_t": 20}
TABLED = ("tanh", "sigmoid", "leaky_relu")  # activations int8 computes through a 256-entry table
LABEL_BYTES = 4  # a dataset record's label word (odl_record_t)


@dataclass(frozen=True)
class Buffer:
    name: str
    section: str
    elements: int
    ctype: str = "float"

    @property
    def bytes(self) -> int:
        return self.elements * CTYPE_BYTES[self.ctype]


def index_bits(pool: int) -> int:
    """Bits per stored window offset: firmware/odl/odl_layers.h's ODL_INDEX_BITS."""
    needed = max(pool - 1, 0).bit_length()
    return next(b for b in (0, 1, 2, 4, 8, 16) if b >= needed)


def argmax_words(layer: Layer) -> int:
    """32-bit words of a MaxPool1D's argmax buffer (ODL_INDEX_WORDS), or of a GlobalMaxPool1D's tie mask
    (ODL_MASK_WORDS of its input)."""
    if layer.kind is Kind.GMP1D:
        return -(-layer.in_size // 32)
    bits = index_bits(layer.size)
    return 0 if bits == 0 else -(-layer.out_size // (32 // bits))


@dataclass(frozen=True)
class LayerPlan:
    input: str
    output: str
    mask: str | None
    trainable: bool  # parameters in RAM with gradient buffers
    argmax: str | None = None
    saved_act: str | None = None  # tanh, sigmoid: a copy of the output for the backward pass


# The persistence slots (firmware/app/persist.c): a header of 8 words, the state after 2 words of its own.
SLOT_HEADER_WORDS = 8
STATE_HEADER_WORDS = 2
FLASH_PAGE_BYTES = 2048


@dataclass(frozen=True)
class MemoryPlan:
    arch: Architecture
    trainable_layers: int
    first_trainable: int
    layers: tuple[LayerPlan, ...]
    buffers: tuple[Buffer, ...]  # activations, masks, errors; parameters and gradients are per layer
    error_capacity: int
    optimizer: Optimizer = SGD
    dataset_windows: int = 0

    def record_bytes(self) -> int:
        """One record of the dataset region: the window's floats, then its label (odl_record_t)."""
        return self.arch.input_size * FLOAT_BYTES + LABEL_BYTES

    def section_bytes(self) -> dict[str, int]:
        """RAM per linker section. Frozen parameters are in flash and counted by :meth:`flash_param_bytes`."""
        sizes = dict.fromkeys(SECTIONS, 0)
        for buf in self.buffers:
            sizes[buf.section] += buf.bytes
        for layer, plan in zip(self.arch.layers, self.layers, strict=True):
            if layer.has_params and plan.trainable:
                sizes[".odl_params"] += layer.param_count * FLOAT_BYTES
                sizes[".odl_grads"] += layer.param_count * FLOAT_BYTES
                sizes[".odl_optim"] += self.optimizer.slots * layer.param_count * FLOAT_BYTES
        sizes[".odl_dataset"] = self.dataset_windows * self.record_bytes()
        return sizes

    def flash_param_bytes(self) -> int:
        return sum(
            layer.param_count * FLOAT_BYTES
            for layer, plan in zip(self.arch.layers, self.layers, strict=True)
            if layer.has_params and not plan.trainable
        )

    def ram_bytes(self) -> int:
        return sum(self.section_bytes().values())

    def state_words(self) -> int:
        """32-bit words of what SAVE keeps in a flash slot (odl_state_words): the trained layer count, the
        step count, every parameter layer kept in RAM and its optimizer state."""
        params = sum(layer.param_count for layer, plan in zip(self.arch.layers, self.layers, strict=True)
                     if layer.has_params and plan.trainable)
        return STATE_HEADER_WORDS + params * (1 + self.optimizer.slots)

    def slot_bytes(self) -> int:
        """One persistence slot: the header, the state and a padding word, in whole 2 KB flash pages."""
        need = (SLOT_HEADER_WORDS + self.state_words() + 1) * FLOAT_BYTES
        return -(-need // FLASH_PAGE_BYTES) * FLASH_PAGE_BYTES

    def buffer(self, name: str) -> Buffer:
        for buf in self.buffers:
            if buf.name == name:
                return buf
        raise KeyError(name)


def _consumer(arch: Architecture, i: int) -> int | None:
    """The first layer after ``i`` that reads layer i's output from memory other than in place."""
    j = i + 1
    while j < len(arch.layers) and arch.layers[j].kind in (Kind.FLATTEN, Kind.RELU, Kind.ACTIVATION):
        j += 1
    return j if j < len(arch.layers) else None


def plan_memory(arch: Architecture, trainable_layers: int | None = None, optimizer: Optimizer = SGD,
                dataset_windows: int = 0) -> MemoryPlan:
    """Plan the buffers of a build that can train the last ``trainable_layers`` parameter layers
    (all of them when None: Full mode) with ``optimizer``, and hold ``dataset_windows`` records."""
    if dataset_windows < 0:
        raise ValueError(f"the dataset region holds a number of windows >= 0, not {dataset_windows}")
    n_params = len(arch.param_layers)
    trainable_layers = n_params if trainable_layers is None else trainable_layers
    first = arch.first_trained(trainable_layers)

    buffers: list[Buffer] = []
    plans: list[LayerPlan] = []
    scratch_need = 0
    cur = INPUT
    for i, layer in enumerate(arch.layers):
        mask = None
        if layer.masked and i >= first:
            mask = f"mask_{i}"
            buffers.append(Buffer(mask, ".odl_saved", (layer.out_size + 31) // 32, "uint32_t"))
        saved_act = None
        if layer.saves_output and i >= first:
            saved_act = f"act_{i}"
            buffers.append(Buffer(saved_act, ".odl_saved", layer.out_size))
        argmax = None
        if layer.kind in (Kind.MAXPOOL1D, Kind.GMP1D) and i >= first and argmax_words(layer):
            argmax = f"argmax_{i}"
            buffers.append(Buffer(argmax, ".odl_saved", argmax_words(layer), "uint32_t"))
        in_place = layer.kind is Kind.FLATTEN or (layer.kind in (Kind.RELU, Kind.ACTIVATION) and cur != INPUT)
        if in_place:
            out = cur
        elif layer.kind is Kind.SOFTMAX:
            out = PROBS
        else:
            consumer = _consumer(arch, i)
            if consumer is None or arch.layers[consumer].kind is Kind.SOFTMAX:
                out = LOGITS
            elif arch.layers[consumer].has_params and consumer >= first:
                out = f"saved_{consumer}"
                buffers.append(Buffer(out, ".odl_saved", layer.out_size))
            else:
                out = SCRATCH[1] if cur == SCRATCH[0] else SCRATCH[0]
                scratch_need = max(scratch_need, layer.out_size)
        plans.append(LayerPlan(cur, out, mask, layer.has_params and i >= first, argmax, saved_act))
        cur = out

    # dL/d(output) of every layer from the lowest trainable one up; the last is the logits' gradient.
    error_capacity = max(
        [arch.num_classes] + [layer.out_size for layer in arch.layers[first:]]
    )
    scratch_elems = max(scratch_need, error_capacity)
    buffers.extend(Buffer(name, ".odl_scratch", scratch_elems) for name in SCRATCH)
    buffers.append(Buffer(LOGITS, ".odl_io", arch.num_classes))
    buffers.append(Buffer(PROBS, ".odl_io", arch.num_classes))
    buffers.extend(int8_buffers(arch))
    return MemoryPlan(arch, trainable_layers, first, tuple(plans), tuple(buffers), error_capacity, optimizer,
                      dataset_windows)


def _whole_words(elements: int, ctype: str) -> int:
    """``elements`` rounded up so that the array is a multiple of 8 bytes."""
    per = next(n for n in range(1, 9) if n * CTYPE_BYTES[ctype] % 8 == 0)
    return max(-(-elements // per) * per, per)


def int8_weight_count(layer: Layer) -> int:
    """Weights of a parameter layer in the int8 copy: a BatchNormalization's one per channel."""
    return layer.out_ch if layer.kind is Kind.BATCHNORM else int(np.prod(layer.weight_shape))


def int8_row_bytes(arch: Architecture) -> int:
    """The int8 kernels' weight row: Conv1D two output channels' weights widened to int16 (4 k c_in bytes,
    ODL_INT8_CONV_ROW_BYTES), Dense one output's sub-byte weights widened to int16 (2 n_in,
    ODL_INT8_DENSE_ROW_BYTES)."""
    rows = [4 * layer.size * layer.in_ch for layer in arch.layers if layer.kind is Kind.CONV1D]
    rows += [2 * layer.in_size for layer in arch.layers if layer.kind is Kind.DENSE]
    return max(rows, default=0)


def has_int8_table(layer: Layer) -> bool:
    """tanh, sigmoid and LeakyReLU, fused or alone, run in int8 as a table of 256 outputs."""
    return layer.activation in TABLED and (layer.has_params or layer.kind is Kind.ACTIVATION)


def int8_buffers(arch: Architecture) -> list[Buffer]:
    """The ``.odl_int8`` arrays (firmware/odl/odl_int8.h), in the order the template declares them."""
    out: list[Buffer] = []

    def add(name: str, elements: int, ctype: str) -> None:
        out.append(Buffer(name, INT8, _whole_words(elements, ctype), ctype))

    for i, layer in enumerate(arch.layers):
        if layer.has_params:
            add(f"q{i}_weights", int8_weight_count(layer), "int8_t")
            add(f"q{i}_bias", layer.out_ch, "int32_t")
            add(f"q{i}_w_scale", layer.out_ch, "float")
            if layer.kind is Kind.DENSE:
                add(f"q{i}_real_scale", layer.out_ch, "double")
            else:
                add(f"q{i}_mult", layer.out_ch, "odl_qmult_t")
        elif layer.kind is Kind.GAP1D:  # the multiplier with 1 / length folded in, and without
            add(f"q{i}_mult", 2, "odl_qmult_t")
        if has_int8_table(layer):
            add(f"q{i}_lut", 256, "int8_t")
    add("int8_layers", len(arch.layers), "odl_int8_layer_t")
    for name in ("int8_range_min", "int8_range_max", "int8_window_min", "int8_window_max"):
        add(name, len(arch.layers) + 1, "float")
    for name in ("int8_pre_min", "int8_pre_max", "int8_pre_window_min", "int8_pre_window_max"):
        add(name, len(arch.layers), "float")
    activation = max([arch.input_size] + [layer.out_size for layer in arch.layers])
    add("int8_act_a", activation, "int8_t")
    add("int8_act_b", activation, "int8_t")
    add("int8_row", int8_row_bytes(arch), "int8_t")
    add("int8_logits", arch.num_classes, "int8_t")
    add("int8_probs", arch.num_classes, "int8_t")
    return out
