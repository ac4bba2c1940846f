"""Resource estimate of on-device training, before anything is built (the seed paper's Section III-B).

RAM comes from the same memory plan the exporter uses (:mod:`pyodl.model.memory_plan`) plus the
application's own buffers, whose sizes are read from ``firmware/app/app.h``; flash and instructions come
from a cost model of the C kernels. ``pyodl bench`` checks both against the linked firmware and the simulated board.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from pyodl.board.protocol import DATA_MIN_FLOATS, FIELDS_BYTES, MAILBOX_HEADER_BYTES
from pyodl.model.architecture import Architecture, Kind, Layer
from pyodl.model.memory_plan import FLOAT_BYTES, MemoryPlan, plan_memory
from pyodl.model.optimizer import SGD, Optimizer
from pyodl.resources.energy import RUN_MODES
from pyodl.toolchain.firmware import DEFAULT_STACK_BYTES
from pyodl.toolchain.memory_map import FLASH_SIZE, SRAM_SIZE

# Application buffers besides the protocol's (firmware/app/app.h, commands.c, frames.c): a frame's CRC-32.
FRAME_CRC_BYTES = 4
# .data and .bss of the application and newlib (odl_model, the frame parser and its last reply, the stream's
# policy and replay ring state (172 bytes), libc's state):
# the same for every model. Measured: `arm-none-eabi-size -A build-arm/pyodl.elf`; .data is odl_model (84
# bytes, its optimizer and parameter bound included; 80 since it names the int8 copy that shares its gradients'
# RAM and no longer the two error buffers, which the arena replaced), odl_model_int8 (104 bytes), odl_clock_hz,
# newlib's impure_data and libm's version byte.
FIRMWARE_DATA_BYTES = 292
FIRMWARE_BSS_BYTES = 252
# Flash besides the model: vector table, startup, the odl library, the application, libm: .isr_vector +
# .text minus the model's layer table and frozen parameters.
# benchmarks/calibrate.py gave 32,572 to 32,676 over 74 builds (newlib's powf for Adam: ~3 KB) before the int8
# code; the int8 kernels, quantizer and commands (adaptive inference included) add 19,160 bytes to the .text
# (with libgcc's soft double arithmetic, which QUANTIZE and the Dense requantization use, and newlib's tanhf and
# expf for the activation tables): measured on the paper's model at T=20 and 100 and 6 random architectures,
# -0.01% to +0.02% off; GlobalMaxPool1D's kernels (float forward and backward, int8) and their dispatch add 568
# bytes (the paper's model's ELF with and without them); the optimizer-state accessors with GET_OPTIM and
# SET_OPTIM add 712 and the command files' shared helpers in records.c save 232 (measured the same way);
# the Cortex-M4 int8 kernels (SMLAD tiles, the integer Dense rounding, SHADD8 pools) add 7,640 (the paper's
# model at T=20 to 100, Full and TL: 7,632 to 7,648);
# tests/resources/test_estimate.py holds the flash total to 2%.
CODE_FLASH_BYTES = 60_472
LAYER_TABLE_ENTRY_BYTES = 80  # sizeof(odl_layer_t) on the Cortex-M4
INT8_TABLE_ENTRY_BYTES = 24  # sizeof(odl_int8_buffers_t) on the Cortex-M4: six pointers


@dataclass
class Ops:
    """Arithmetic of one pass over one layer, per sample."""

    macs: int = 0  # multiply-accumulates
    adds: int = 0  # additions, subtractions, comparisons (ReLU), copies of a gradient
    divs: int = 0
    exps: int = 0  # exp and log

    def __add__(self, other: Ops) -> Ops:
        return Ops(self.macs + other.macs, self.adds + other.adds, self.divs + other.divs, self.exps + other.exps)


@dataclass
class LayerOps:
    name: str
    kind: str
    trained: bool
    forward: Ops
    backward: Ops  # input and parameter gradients
    update: Ops  # the SGD step, per batch


# Cost model: instructions = sum over kernels of coefficient x feature, per sample. Fitted by
# `.venv/bin/python benchmarks/calibrate.py` (the paper's model at every T and mode plus 32 random
# architectures and 32 with the layers users bring; worst error of the fit 6.35%, every coefficient >= 0) on
# the firmware as built by pyodl.toolchain.firmware (-O3, -ffp-contract=off, arm-none-eabi-gcc 12.2), counting
# instructions on the Unicorn board.
COEFFICIENTS: dict[str, float] = {
    "conv_fwd_mac": 2.415,  # Conv1D MACs in whole 4 x 4 tiles (the assembly inner loops)
    "conv_bwd_param_mac": 2.092,
    "conv_bwd_input_mac": 2.448,
    "conv_fwd_edge_mac": 3.523,  # ... in the narrower tiles of the remainders (C)
    "conv_bwd_param_edge_mac": 4.054,
    "conv_bwd_input_edge_mac": 2.733,
    "dense_mac": 3.503,
    "accumulator": 10.359,  # per output element of an inner product: loop setup, the store
    "dense_param_mac": 7.959,
    "pool2_output": 8.798,  # per output of an AvgPool1D(2), each way
    "division": 0.000,  # per VDIV: AvgPool1D of a window not a power of two, GlobalAvgPool1D
    "relu_element": 2.075,  # per element of a plain ReLU, each way
    "element": 9.415,  # per element of pooling, ReLU, softmax and the input check
    "general_fwd_mac": 7.334,  # the general (strided, dilated, padded) Conv1D kernels, per MAC
    "general_bwd_param_mac": 9.732,
    "general_bwd_input_mac": 5.166,
    "general_tap": 10.374,  # ... per tap loop of an output (forward) or of an input channel (dx)
    "general_element": 10.032,  # strided or padded Avg/MaxPool1D (and GlobalMaxPool1D) per element read, and dx
    # cleared
    "tanh": 92.640,  # per element: newlib's tanhf, whose cost depends on the input's range
    "sigmoid": 59.184,  # per element: expf and a division
    "depthwise_mac": 9.962,  # DepthwiseConv1D, every kernel, per MAC
    "sample": 2741.883,  # per TRAIN_SAMPLE: the command, the layer walk, the loss
}
# The same features' cost in Cortex-M4 core cycles, as the Unicorn board's cycle model counts them (TRM
# instruction timings, 4 flash wait states with the ART cache and prefetch at 80 MHz), fitted by the same run
# of calibrate.py (worst error of the fit 7.32%).
CYCLE_COEFFICIENTS: dict[str, float] = {
    "conv_fwd_mac": 3.010,
    "conv_bwd_param_mac": 2.555,
    "conv_bwd_input_mac": 2.940,
    "conv_fwd_edge_mac": 4.188,
    "conv_bwd_param_edge_mac": 6.178,
    "conv_bwd_input_edge_mac": 4.272,
    "dense_mac": 4.797,
    "accumulator": 13.702,
    "dense_param_mac": 12.621,
    "pool2_output": 10.830,
    "division": 0.000,
    "relu_element": 3.828,
    "element": 12.906,
    "general_fwd_mac": 10.509,
    "general_bwd_param_mac": 12.051,
    "general_bwd_input_mac": 7.788,
    "general_tap": 9.944,
    "general_element": 15.445,
    "tanh": 185.342,
    "sigmoid": 128.973,
    "depthwise_mac": 13.008,
    "sample": 8131.674,
}
# Per training step, by optimizer (odl_optimizer_kind_t): instructions per trained parameter (finiteness
# check; the update computed twice, once to check it against the bound and once to commit it; zeroing the
# gradient) and per step (the command; Adam's powf and sqrtf).
STEP_COEFFICIENTS: dict[str, tuple[float, float]] = {
    "ODL_OPT_SGD": (29.917, 446.8),
    "ODL_OPT_MOMENTUM": (42.925, 472.3),
    "ODL_OPT_NESTEROV": (46.925, 472.3),
    "ODL_OPT_ADAM": (75.927, 580.7),
}
STEP_CYCLE_COEFFICIENTS: dict[str, tuple[float, float]] = {
    "ODL_OPT_SGD": (45.268, 1160.1),
    "ODL_OPT_MOMENTUM": (59.107, 0.0),
    "ODL_OPT_NESTEROV": (70.278, 1262.2),
    "ODL_OPT_ADAM": (153.281, 1602.2),
}


def _plain(layer: Layer) -> bool:
    """Computed by the paper's kernels (firmware/odl/network.c plain_conv / plain_pool)."""
    if layer.kind is Kind.CONV1D:
        return layer.stride == 1 and layer.dilation == 1 and layer.pad == 0 and \
            layer.out_len == layer.in_len - layer.size + 1
    return layer.kind is Kind.AVGPOOL1D and layer.stride == layer.size and layer.pad == 0 and \
        layer.out_len == layer.in_len // layer.size


def _by4(n: int) -> int:
    """The part of n that whole 4-wide tiles cover."""
    return n - n % 4


def window_rows(layer: Layer) -> int:
    """Input rows read by all of a window layer's outputs together, padding excluded (taps of a conv)."""
    return sum(len(layer.rows_read(m)) for m in range(layer.out_len))


def _features(arch: Architecture, first: int) -> tuple[dict[str, float], list[LayerOps]]:
    """Per-sample features of the cost model, and per-layer operation counts."""
    f = dict.fromkeys(COEFFICIENTS, 0.0)  # the cost models' features, CYCLE_COEFFICIENTS's too
    f["sample"] = 1.0
    f["element"] += arch.input_size  # the input is checked for NaN
    layers = []
    for i, layer in enumerate(arch.layers):
        trained = layer.has_params and i >= first
        back = i >= first  # the backward pass reaches this layer
        need_dx = i > first
        fwd, bwd, upd = Ops(), Ops(), Ops()
        if layer.kind is Kind.CONV1D and not _plain(layer):
            # The general kernels loop over the taps whose rows exist: MACs skip the padding.
            m_out, k, c, nf = layer.out_len, layer.size, layer.in_ch, layer.out_ch
            rows = window_rows(layer)
            macs = rows * c * nf
            fwd += Ops(macs=macs, adds=m_out * nf)
            f["general_fwd_mac"] += macs
            f["general_tap"] += rows * nf
            f["accumulator"] += m_out * nf
            if trained:
                bwd += Ops(macs=macs, adds=m_out * nf)
                f["general_bwd_param_mac"] += macs + m_out * nf
                f["accumulator"] += k * c * nf + nf
            if need_dx:
                bwd += Ops(macs=macs)
                f["general_bwd_input_mac"] += macs
                f["general_tap"] += rows * c
                f["general_element"] += layer.in_size
        elif layer.kind is Kind.CONV1D:
            m_out, k, c, nf = layer.out_len, layer.size, layer.in_ch, layer.out_ch
            macs = m_out * nf * k * c
            fwd += Ops(macs=macs, adds=m_out * nf)
            # The kernels' 4 x 4 tiles (assembly on the Cortex-M4F) and the narrower tiles of the remainders
            # cost differently per MAC: each pass's MACs are split by the tile that computes them.
            tiled = _by4(m_out) * _by4(nf) * k * c
            f["conv_fwd_mac"] += tiled
            f["conv_fwd_edge_mac"] += macs - tiled
            f["accumulator"] += m_out * nf
            if trained:
                bwd += Ops(macs=macs, adds=m_out * nf)
                tiled = _by4(k * c) * _by4(nf) * m_out
                f["conv_bwd_param_mac"] += tiled
                f["conv_bwd_param_edge_mac"] += macs - tiled + m_out * nf
                f["accumulator"] += k * c * nf + nf
            if need_dx:
                bwd += Ops(macs=macs)
                tiled = _by4(max(m_out - k + 1, 0)) * _by4(c) * k * nf  # positions that read all k taps
                f["conv_bwd_input_mac"] += tiled
                f["conv_bwd_input_edge_mac"] += macs - tiled
                f["accumulator"] += layer.in_len * c * (1 + k)
        elif layer.kind is Kind.DENSE:
            macs = layer.in_size * layer.out_ch
            fwd += Ops(macs=macs, adds=layer.out_ch)
            f["dense_mac"] += macs
            f["accumulator"] += layer.out_ch
            if trained:
                bwd += Ops(macs=macs, adds=layer.out_ch)
                f["dense_param_mac"] += macs  # an outer product into the gradient: a load and a store per MAC
                f["accumulator"] += layer.in_size + layer.out_ch
            if need_dx:
                bwd += Ops(macs=macs)
                f["dense_mac"] += macs
                f["accumulator"] += layer.in_size
        elif layer.kind in (Kind.AVGPOOL1D, Kind.MAXPOOL1D) and not _plain(layer):
            reads = window_rows(layer) * layer.in_ch
            avg = layer.kind is Kind.AVGPOOL1D
            fwd += Ops(adds=reads, divs=layer.out_size if avg else 0)
            f["general_element"] += reads + layer.out_size
            if need_dx:
                bwd += Ops(adds=(reads if avg else layer.out_size) + layer.in_size, divs=layer.out_size if avg else 0)
                f["general_element"] += (reads if avg else layer.out_size) + layer.out_size + layer.in_size
        elif layer.kind is Kind.AVGPOOL1D:
            fwd += Ops(adds=layer.out_size * layer.size, divs=layer.out_size)
            passes = 2 if need_dx else 1
            if layer.size == 2:  # the kernels' loop-free window of 2
                f["pool2_output"] += passes * layer.out_size
            else:
                f["element"] += layer.out_size * (layer.size + 1) + (layer.in_size + layer.out_size if need_dx else 0)
                if layer.size & (layer.size - 1):  # not a power of two: a VDIV per output, not a multiply
                    f["division"] += passes * layer.out_size
            if need_dx:
                bwd += Ops(adds=layer.in_size, divs=layer.out_size)
        elif layer.kind is Kind.DEPTHWISE1D:  # one tap loop per output channel; MACs skip the padding
            rows, n_out = window_rows(layer), layer.out_ch
            macs = rows * n_out
            fwd += Ops(macs=macs, adds=layer.out_size)
            f["depthwise_mac"] += macs
            f["accumulator"] += layer.out_size
            if trained:
                bwd += Ops(macs=macs, adds=layer.out_size)
                f["depthwise_mac"] += macs + layer.out_size
                f["accumulator"] += layer.size * n_out + n_out
            if need_dx:
                bwd += Ops(macs=macs)
                f["depthwise_mac"] += macs
                f["general_tap"] += rows * layer.in_ch
                f["general_element"] += layer.in_size
        elif layer.kind is Kind.BATCHNORM:  # a multiply-add per element each way, (x - mean) for gamma's
            n = layer.out_size
            fwd += Ops(macs=n)
            f["element"] += n
            if trained:
                bwd += Ops(macs=2 * n, adds=2 * n)
                f["element"] += 2 * n
            if need_dx:
                bwd += Ops(macs=n)
                f["element"] += n
        elif layer.kind is Kind.GMP1D:  # a compare per element, and one more where the tie mask is kept
            fwd += Ops(adds=layer.in_size)
            f["general_element"] += layer.in_size + layer.out_ch + (layer.in_size if back else 0)
            if need_dx:  # the maxima counted, then dx written, channel by channel
                bwd += Ops(adds=2 * layer.in_size, divs=layer.out_ch)
                f["general_element"] += 2 * layer.in_size
        elif layer.kind is Kind.GAP1D:
            fwd += Ops(adds=layer.in_size, divs=layer.out_ch)
            f["element"] += layer.in_size
            f["division"] += layer.out_ch
            if need_dx:
                bwd += Ops(adds=layer.in_size, divs=layer.out_ch)
                f["element"] += layer.in_size
                f["division"] += layer.out_ch
        if layer.masked:  # ReLU, ReLU6, LeakyReLU: a compare (and a multiply) per element each way
            fwd += Ops(adds=layer.out_size)
            # plain ReLU has its own kernels (one compare per element forward, cleared bits only backward)
            key = "relu_element" if layer.activation == "relu" else "element"
            f[key] += layer.out_size
            if back:
                bwd += Ops(adds=layer.out_size)
                f[key] += layer.out_size
        if layer.saves_output:  # tanh, sigmoid: a libm call per element, then y-based slopes backward
            fwd += Ops(exps=layer.out_size, divs=layer.out_size if layer.activation == "sigmoid" else 0)
            f[layer.activation] += layer.out_size  # tanh or sigmoid
            if back:
                bwd += Ops(macs=layer.out_size, adds=layer.out_size)
                f["element"] += layer.out_size
        if layer.activation == "softmax" or layer.kind is Kind.SOFTMAX:
            n = arch.num_classes
            fwd += Ops(adds=2 * n, divs=n, exps=n)
            bwd += Ops(adds=n, exps=n + 1)  # the loss: log-sum-exp over the logits, then p - t
            f["element"] += 8 * n
        if trained:
            upd = Ops(macs=layer.param_count, divs=layer.param_count)
        layers.append(LayerOps(layer.name, layer.kind.value, trained, fwd, bwd, upd))
    return f, layers


@dataclass
class Estimate:
    model: str
    input_len: int
    input_ch: int
    mode: str
    trainable_layers: int
    batch: int
    ram: dict[str, int]  # bytes per item; their sum is the SRAM the firmware links
    flash: dict[str, int]
    layers: list[LayerOps]
    instructions_per_sample: int
    instructions_per_step: int  # the SGD update
    cycles_per_sample: int  # Cortex-M4 core cycles at 80 MHz (4 wait states, ART on)
    cycles_per_step: int
    training_macs_per_sample: int
    sram_bytes: int = SRAM_SIZE
    flash_bytes: int = FLASH_SIZE // 2  # bank 1: code and constants
    slot_bytes: int = 0  # the persistence slots A and B, in bank 2
    notes: list[str] = field(default_factory=list)

    @property
    def ram_total(self) -> int:
        return sum(self.ram.values())

    @property
    def flash_total(self) -> int:
        return sum(self.flash.values())

    @property
    def ram_margin(self) -> int:
        return self.sram_bytes - self.ram_total

    @property
    def flash_margin(self) -> int:
        return self.flash_bytes - self.flash_total

    @property
    def fits(self) -> bool:
        return self.ram_margin >= 0 and self.flash_margin >= 0 and self.slot_bytes <= FLASH_SIZE // 2

    @property
    def instructions_per_batch(self) -> int:
        return self.batch * self.instructions_per_sample + self.instructions_per_step

    @property
    def cycles_per_batch(self) -> int:
        return self.batch * self.cycles_per_sample + self.cycles_per_step

    def time_and_energy(self) -> dict[str, dict[str, float]]:
        """Seconds and millijoules per sample and per batch at each clock the firmware offers (the cycle
        count is the 80 MHz one: at 4 MHz the flash needs no wait states, so it is an upper bound there)."""
        return {
            mode.clock: {"clock_hz": mode.clock_hz,
                         "seconds_per_sample": mode.seconds(self.cycles_per_sample),
                         "millijoules_per_sample": mode.millijoules(self.cycles_per_sample),
                         "seconds_per_batch": mode.seconds(self.cycles_per_batch),
                         "millijoules_per_batch": mode.millijoules(self.cycles_per_batch)}
            for mode in RUN_MODES.values()
        }

    def to_json(self) -> dict[str, object]:
        out = asdict(self)
        out.update(ram_total=self.ram_total, flash_total=self.flash_total, ram_margin=self.ram_margin,
                   flash_margin=self.flash_margin, fits=self.fits, instructions_per_batch=self.instructions_per_batch,
                   cycles_per_batch=self.cycles_per_batch, time_and_energy=self.time_and_energy())
        return out


def data_floats(arch: Architecture) -> int:
    return max(arch.input_size, DATA_MIN_FLOATS)


def estimate(arch: Architecture, trainable_layers: int | None = None, batch: int = 32, model: str = "model",
             stack_bytes: int = DEFAULT_STACK_BYTES, optimizer: Optimizer = SGD, dataset_windows: int = 0) -> Estimate:
    """The estimate for training the last ``trainable_layers`` parameter layers (None: all, Full mode) with
    ``optimizer``, in a build whose dataset region holds ``dataset_windows`` records."""
    if batch < 1:
        raise ValueError("--batch must be >= 1")
    plan: MemoryPlan = plan_memory(arch, trainable_layers, optimizer, dataset_windows)
    sections = plan.section_bytes()
    data_bytes = data_floats(arch) * FLOAT_BYTES
    window = arch.input_size * FLOAT_BYTES
    ram = {
        "parameters (trained, RAM)": sections[".odl_params"],
        "gradients": sections[".odl_grads"],
        "optimizer state": sections[".odl_optim"],
        "masks, argmax, tanh/sigmoid outputs": sections[".odl_saved"],
        # One arena: the activations, the inputs the backward pass needs, and the errors where they were.
        "activations and errors (arena)": sections[".odl_scratch"],
        "logits and probabilities": sections[".odl_io"],
        # The int8 copy shares the gradients' RAM (memory_plan.py): only what is longer than them costs more.
        "int8 copy (beyond the gradients' RAM)": sections[".odl_int8"] - plan.shared_bytes(),
        "input window": window,
        # The UART parser keeps a frame's fields and CRC; its data goes straight into the mailbox's.
        "transport (mailbox, UART frame)": MAILBOX_HEADER_BYTES + data_bytes + FIELDS_BYTES + FRAME_CRC_BYTES,
        "firmware variables": FIRMWARE_DATA_BYTES + FIRMWARE_BSS_BYTES,
        "stack": stack_bytes,
    }
    if dataset_windows:
        ram[f"dataset region ({dataset_windows} windows and labels)"] = sections[".odl_dataset"]
    frozen = plan.flash_param_bytes()
    flash = {
        "code and constants": CODE_FLASH_BYTES,
        "layer table": LAYER_TABLE_ENTRY_BYTES * len(arch.layers),
        "int8 buffer table": INT8_TABLE_ENTRY_BYTES * len(arch.layers),
        "parameters (frozen, flash)": frozen,
        "BatchNormalization statistics": sum(2 * FLOAT_BYTES * layer.out_ch for layer in arch.layers
                                             if layer.kind is Kind.BATCHNORM),
        "zero biases of use_bias=False layers": FLOAT_BYTES * max(
            [layer.out_ch for layer in arch.layers if layer.has_params and not layer.use_bias], default=0),
        "initial values of trained parameters": sections[".odl_params"],
        "initial values of firmware variables": FIRMWARE_DATA_BYTES,
    }
    features, layers = _features(arch, plan.first_trainable)
    per_sample = sum(COEFFICIENTS[k] * v for k, v in features.items())
    trained_params = sum(layer.param_count for layer, lo in zip(arch.layers, layers, strict=True) if lo.trained)
    per_param, per_update = STEP_COEFFICIENTS[optimizer.c_kind]
    per_step = per_param * trained_params + per_update
    cycles_per_sample = sum(CYCLE_COEFFICIENTS[k] * v for k, v in features.items())
    cycle_per_param, cycle_per_update = STEP_CYCLE_COEFFICIENTS[optimizer.c_kind]
    cycles_per_step = cycle_per_param * trained_params + cycle_per_update
    macs = sum(lo.forward.macs + lo.backward.macs for lo in layers)
    mode = "full" if plan.trainable_layers == len(arch.param_layers) else "tl"
    notes = ["batch samples are streamed one at a time and their gradients accumulated, so RAM does not "
             "grow with the batch"]
    return Estimate(model, arch.input_len, arch.input_ch, mode, plan.trainable_layers, batch, ram, flash, layers,
                    round(per_sample), round(per_step), round(cycles_per_sample), round(cycles_per_step), macs,
                    slot_bytes=2 * plan.slot_bytes(), notes=notes)


def features(arch: Architecture, trainable_layers: int | None = None) -> dict[str, float]:
    """The cost model's per-sample features (for calibration)."""
    return _features(arch, plan_memory(arch, trainable_layers).first_trainable)[0]
