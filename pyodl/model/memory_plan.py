"""Static memory plan of a model on the device: every buffer, its size, its linker section.

The plan decides, for a build that can train the last ``trainable_layers`` parameter layers:

- where each layer writes its output: every activation lives in one array, the arena (``.odl_scratch``), at an
  offset the plan chooses. A trained Conv1D/Dense layer needs its input again in the backward pass, so that
  input is *saved*: it stays where it is until then. Saved tensors stack up from the arena's start in the
  order the forward pass makes them (the backward pass frees them in the reverse order); every other
  activation goes right above them, or above the tensor it is computed from when they would overlap;
- the backward pass keeps dL/d(tensor) where the forward pass kept the tensor (firmware/odl/network.c): a
  layer reads dL/d(output) at its output and writes dL/d(input) over its input, which it no longer needs
  then (a trained layer computes its parameter gradients first), so no error buffer is needed;
- Flatten, a ReLU or other activation that follows a computed activation, and an AvgPool1D whose windows tile
  its input (stride = size, no padding) work in place: their output starts where their input does, and so do
  their backward passes;
- ReLU/ReLU6/LeakyReLU masks (one bit per element) only for activations at or above the lowest trainable
  layer, and likewise a copy of a tanh's or sigmoid's output, a MaxPool1D's argmax (each output's
  offset in its window, in as few bits as the pool size allows) and a GlobalMaxPool1D's tie mask (a bit per
  input element: every maximum of a channel shares its gradient, as in TensorFlow), all in ``.odl_saved``;
- gradient buffers, and a stateful optimizer's slots (``.odl_optim``), only for trainable layers; frozen
  layers' parameters stay const (flash).

Every build also holds the int8 copy of the network that QUANTIZE fills (``.odl_int8``, firmware/odl/odl_int8.h):
each parameter layer's weights (room for 8 bits each), int32 biases, weight scales and multipliers, the
calibration ranges, two int8 activation buffers, and int8 logits and probabilities. Each of those arrays is
a multiple of 8 bytes, so the section holds them without padding. It shares its RAM with the gradient
accumulators (``.odl_grads``; firmware/app/stm32l496.ld places both at one address): those are live only within
a batch, from its first training sample to the step, and that first sample erases the int8 copy
(odl_accumulate), while calibration and quantization are refused mid-batch. So a build's RAM counts the longer
of the two sections once (:meth:`MemoryPlan.shared_bytes`).

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
ARENA = "arena"  # every activation and its error, at the offsets the plan gives (.odl_scratch)

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
    in_at: int = 0  # the input's and the output's element offsets into the arena (0 for other buffers)
    out_at: int = 0
    saved: bool = False  # the output stays in place for a trained layer's backward pass

    def pointer(self, which: str) -> str:
        """The C expression of the input's or output's address: NULL for the caller's sample."""
        name, at = (self.input, self.in_at) if which == "input" else (self.output, self.out_at)
        if name == INPUT:
            return "NULL"
        return f"{name} + {at}" if at else name


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
    buffers: tuple[Buffer, ...]  # the arena, masks, logits, the int8 copy; parameters and gradients are per layer
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

    def shared_bytes(self) -> int:
        """RAM that ``.odl_grads`` and ``.odl_int8`` share (the shorter one of them), counted once."""
        sizes = self.section_bytes()
        return min(sizes[".odl_grads"], sizes[INT8])

    def ram_bytes(self) -> int:
        return sum(self.section_bytes().values()) - self.shared_bytes()

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


def tiling_pool(layer: Layer) -> bool:
    """An AvgPool1D whose windows tile its input (firmware/odl/network.c's plain_pool): its output can be
    written over its input, as its gradient can be over its output's."""
    return (layer.kind is Kind.AVGPOOL1D and layer.stride == layer.size and layer.pad == 0
            and layer.out_len == layer.in_len // layer.size)


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
    cur, cur_at, cur_size = INPUT, 0, arch.input_size
    stacked = 0  # the saved tensors occupy arena[0:stacked)
    arena = 1  # at least one element: the section always exists
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
        consumer = _consumer(arch, i)
        ends_in_logits = consumer is None or arch.layers[consumer].kind is Kind.SOFTMAX
        saved = consumer is not None and arch.layers[consumer].has_params and consumer >= first
        in_place = layer.kind is Kind.FLATTEN or (
            cur != INPUT and (layer.kind in (Kind.RELU, Kind.ACTIVATION)
                              or (cur == ARENA and tiling_pool(layer) and not ends_in_logits)))
        if in_place:
            out, out_at = cur, cur_at
        elif layer.kind is Kind.SOFTMAX:
            out, out_at = PROBS, 0
        elif ends_in_logits:
            out, out_at = LOGITS, 0
        else:  # above the saved tensors, and above the input when it lies there
            out = ARENA
            out_at = stacked
            if cur == ARENA and out_at < cur_at + cur_size and cur_at < out_at + layer.out_size:
                out_at = cur_at + cur_size
        if out == ARENA:
            arena = max(arena, out_at + layer.out_size)
            if saved:
                stacked = max(stacked, out_at + layer.out_size)
        plans.append(LayerPlan(cur, out, mask, layer.has_params and i >= first, argmax, saved_act,
                               cur_at, out_at, saved))
        cur, cur_at, cur_size = out, out_at, layer.out_size

    buffers.append(Buffer(ARENA, ".odl_scratch", arena))
    buffers.append(Buffer(LOGITS, ".odl_io", arch.num_classes))
    buffers.append(Buffer(PROBS, ".odl_io", arch.num_classes))
    buffers.extend(int8_buffers(arch))
    return MemoryPlan(arch, trainable_layers, first, tuple(plans), tuple(buffers), optimizer, dataset_windows)


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
