"""Measure what the estimator predicts: link the firmware for a configuration, read its sections, and run
training samples on the simulated board counting instructions."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pyodl.board.mailbox import MailboxTransport
from pyodl.board.protocol import Command, CommandError, Reply, Request, Transport
from pyodl.board.unicorn import UnicornBoard
from pyodl.model.architecture import Model
from pyodl.model.optimizer import SGD, Optimizer
from pyodl.network.board import BoardNetwork
from pyodl.resources.energy import RUN_MODES
from pyodl.toolchain.firmware import Firmware, FirmwareBuilder

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@dataclass(frozen=True)
class Measurement:
    ram_sections: dict[str, int]
    ram_bytes: int
    flash_bytes: int
    text_bytes: int  # .isr_vector + .text (code, constants, the layer table, frozen parameters)
    instructions_per_sample: float  # TRAIN_SAMPLE: forward, backward, accumulate
    instructions_per_step: int  # SGD_STEP: the optimizer's update
    cycles_per_sample: float  # the same, in Cortex-M4 cycles by the board's cycle model (80 MHz, ART on)
    cycles_per_step: int
    protocol_per_sample: float  # LOAD_SAMPLE through the mailbox, the transport's own cost
    stack_high_water: int
    simulator_mips: float  # emulated instructions per wall-clock microsecond, cycle model on (samples 2..)


def measure(model: Model, trainable_layers: int | None, builder: FirmwareBuilder, work_dir: Path,
            batch: int = 32, seed: int = 0, optimizer: Optimizer = SGD) -> Measurement:
    firmware: Firmware = builder.export_and_build(model, work_dir, trainable_layers, optimizer)
    board = UnicornBoard()
    try:
        board.load_elf(firmware.elf)
        net = BoardNetwork(MailboxTransport(board), model.arch)
        rng = np.random.default_rng(seed)
        windows = rng.standard_normal((batch, model.arch.input_len, model.arch.input_ch)).astype(np.float32)
        labels = rng.integers(0, model.arch.num_classes, size=batch)
        train = load = train_cycles = 0
        warm_instructions, warm_seconds = 0, 0.0
        for k, (x, y) in enumerate(zip(windows, labels, strict=True)):
            start = board.executed_instructions()
            net.load_sample(x)
            middle, middle_cycles = board.executed_instructions(), board.modelled_cycles()
            t0 = time.perf_counter()
            net.train_loaded_sample(int(y))
            elapsed = time.perf_counter() - t0
            load += middle - start
            train += board.executed_instructions() - middle
            train_cycles += board.modelled_cycles() - middle_cycles
            if k > 0:  # the first sample also decodes every block once for the cycle model
                warm_instructions += board.executed_instructions() - middle
                warm_seconds += elapsed
        start, start_cycles = board.executed_instructions(), board.modelled_cycles()
        net.sgd_step(0.01)
        step, step_cycles = board.executed_instructions() - start, board.modelled_cycles() - start_cycles
        info = net.info()
    finally:
        board.close()
    sections = firmware.sections()
    return Measurement(firmware.ram_sections(), firmware.ram_bytes(), firmware.flash_bytes(),
                       sections[".isr_vector"][1] + sections[".text"][1], train / batch, step,
                       train_cycles / batch, step_cycles, load / batch, info.stack_high_water,
                       warm_instructions / warm_seconds / 1e6 if warm_seconds > 0 else 0.0)


# The seed paper's Table III (an STM32L496ZG; the paper does not state its clock): memory footprint in KB,
# seconds per batch of 32, and the average power during it in mW (an X-NUCLEO-LPM01A at 3.3 V).
PAPER_TABLE_III: dict[tuple[int, str], tuple[int, float, float]] = {
    (100, "tl"): (115, 14.25, 2.67), (100, "full"): (189, 48.10, 2.68),
    (80, "tl"): (102, 11.27, 2.68), (80, "full"): (165, 38.05, 2.69),
    (60, "tl"): (91, 8.29, 2.66), (60, "full"): (131, 28.00, 2.68),
    (40, "tl"): (79, 5.31, 2.64), (40, "full"): (122, 17.95, 2.67),
    (20, "tl"): (63, 2.33, 2.65), (20, "full"): (98, 7.90, 2.65),
}


@dataclass(frozen=True)
class BenchRow:
    input_len: int
    mode: str
    ram_estimated: int
    ram_linked: int
    flash_estimated: int
    flash_linked: int
    instructions_estimated: float  # per training sample
    instructions_measured: float
    cycles_estimated: float  # per training sample, Cortex-M4 cycles at 80 MHz
    cycles_measured: float  # by the Unicorn board's cycle model
    training_macs: int  # per sample, forward and backward
    step_instructions: int
    step_cycles: int
    protocol_instructions: float
    stack_high_water: int
    batch: int
    paper_ram_kb: int | None
    paper_seconds_per_batch: float | None
    paper_milliwatts: float | None
    simulator_mips: float

    @property
    def ram_error(self) -> float:
        return (self.ram_estimated - self.ram_linked) / self.ram_linked

    @property
    def instruction_error(self) -> float:
        return (self.instructions_estimated - self.instructions_measured) / self.instructions_measured

    @property
    def instructions_per_mac(self) -> float:
        return self.instructions_measured / self.training_macs

    @property
    def cycle_error(self) -> float:
        return (self.cycles_estimated - self.cycles_measured) / self.cycles_measured

    @property
    def cycles_per_mac(self) -> float:
        return self.cycles_measured / self.training_macs

    @property
    def batch_cycles(self) -> float:
        return self.batch * self.cycles_measured + self.step_cycles

    def seconds_per_batch(self, clock: str = "pll80") -> float:
        return RUN_MODES[clock].seconds(self.batch_cycles)

    def millijoules_per_batch(self, clock: str = "pll80") -> float:
        return RUN_MODES[clock].millijoules(self.batch_cycles)

    @property
    def paper_millijoules_per_batch(self) -> float | None:
        """The paper's energy per batch: its power times its time."""
        if self.paper_milliwatts is None or self.paper_seconds_per_batch is None:
            return None
        return self.paper_milliwatts * self.paper_seconds_per_batch

    def to_json(self) -> dict[str, object]:
        return self.__dict__ | {
            "ram_error": self.ram_error, "instruction_error": self.instruction_error, "cycle_error": self.cycle_error,
            "instructions_per_mac": self.instructions_per_mac, "cycles_per_mac": self.cycles_per_mac,
            "cycles_per_batch": self.batch_cycles,
            "paper_millijoules_per_batch": self.paper_millijoules_per_batch,
            **{f"seconds_per_batch_{clock}": self.seconds_per_batch(clock) for clock in RUN_MODES},
            **{f"millijoules_per_batch_{clock}": self.millijoules_per_batch(clock) for clock in RUN_MODES},
        }


# In benchmarks/RESULTS.md, what follows this line is not `pyodl bench`'s and survives its rewrite.
KEPT_MARKER = "<!-- Below: other benchmarks, each with the command that produced it; pyodl bench keeps them. -->\n"


def results_markdown(rows: list[BenchRow], command: str, commit: str, plot_file: str | None = None) -> str:
    batch = rows[0].batch if rows else 32
    fast, slow = RUN_MODES["pll80"], RUN_MODES["msi4"]
    lines = [
        "# Benchmarks: estimate vs firmware, on the simulated STM32L496",
        "",
        f"Produced by `{command}` at commit `{commit}`. RAM is the SRAM the linker placed (every section, "
        "the stack included); instructions and cycles are counted by the Unicorn board for one training sample "
        "(TRAIN_SAMPLE: forward, backward, gradient accumulation; the mailbox transfer of the window is "
        "listed apart), averaged over a batch. Cycles are the board's Cortex-M4 cycle model (the TRM's "
        "instruction timings, 4 flash wait states with the ART cache and prefetch: pyodl/board/cycle_model.py), "
        f"not a measurement on silicon. s and mJ are per batch of {batch} (samples and the SGD step) at 80 MHz, "
        "and at the 4 MHz reset clock with the same cycle count (an upper bound there: no wait states); mJ from "
        "the datasheet's 91 µA/MHz run-mode figure at 3.3 V (pyodl/resources/energy.py says how far to trust "
        "it). The paper's columns are its Table III (a real STM32L496ZG, its power measured with a power shield "
        "at 3.3 V; paper mJ = its mW x its s). The paper does not state its clock; its 2.65-2.69 mW is, at "
        "91 µA/MHz and 3.3 V, a clock of about 9 MHz (lower once the static current counts), not 80 MHz (24 mW).",
        "",
        "| T | mode | RAM est. | RAM linked | err | paper RAM | instr./sample est. | measured | err | "
        "cycles/sample est. | modelled | err | instr./MAC | cycles/MAC | SGD step cycles | mailbox instr./sample | "
        f"s/batch {fast.clock_hz / 1e6:g} MHz | mJ/batch | s/batch {slow.clock_hz / 1e6:g} MHz | mJ/batch | "
        "paper s/batch | paper mW | paper mJ/batch | stack used |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        paper_ram = f"{r.paper_ram_kb} KB" if r.paper_ram_kb else "-"
        paper_s = f"{r.paper_seconds_per_batch:.2f}" if r.paper_seconds_per_batch else "-"
        paper_mw = f"{r.paper_milliwatts:.2f}" if r.paper_milliwatts else "-"
        paper_mj = f"{r.paper_millijoules_per_batch:.1f}" if r.paper_millijoules_per_batch else "-"
        lines.append(
            f"| {r.input_len} | {r.mode} | {r.ram_estimated / 1024:.1f} KiB | {r.ram_linked / 1024:.1f} KiB | "
            f"{r.ram_error:+.2%} | {paper_ram} | {r.instructions_estimated / 1e6:.3f} M | "
            f"{r.instructions_measured / 1e6:.3f} M | {r.instruction_error:+.2%} | {r.cycles_estimated / 1e6:.3f} M | "
            f"{r.cycles_measured / 1e6:.3f} M | {r.cycle_error:+.2%} | {r.instructions_per_mac:.2f} | "
            f"{r.cycles_per_mac:.2f} | {r.step_cycles:,} | {r.protocol_instructions:,.0f} | "
            f"{r.seconds_per_batch('pll80'):.2f} | {r.millijoules_per_batch('pll80'):.1f} | "
            f"{r.seconds_per_batch('msi4'):.1f} | {r.millijoules_per_batch('msi4'):.1f} | {paper_s} | "
            f"{paper_mw} | {paper_mj} | {r.stack_high_water} B |")
    mips = [r.simulator_mips for r in rows]
    if mips:
        lines += ["", f"Simulator speed with the cycle model on: {min(mips):.0f} to {max(mips):.0f} million emulated "
                  "instructions per second (TRAIN_SAMPLE, after the first sample of each build)."]
    if plot_file is not None:  # only beside a plot that is written: a link to nothing helps no reader
        lines += ["", f"![RAM and instructions per input size]({plot_file})", ""]
    return "\n".join(lines)


def bench_figure(rows: list[BenchRow]) -> Figure:
    """bench.png: SRAM and training instructions per sample against the input length, each mode's estimate
    beside what the linker and the simulated board gave, with the paper's RAM."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # Legends at 9 pt and below the panels (at 7 pt inside them they were hard to read and covered the SRAM
    # line); constrained layout keeps them in the figure. pyodl.experiments.plots holds the same choices for the
    # experiments, a layer above this one.
    fig, (ax_ram, ax_ins) = plt.subplots(1, 2, figsize=(11, 5), layout="constrained")
    for mode, color in (("full", "tab:blue"), ("tl", "tab:orange")):
        sel = [r for r in rows if r.mode == mode]
        if not sel:
            continue
        t = [r.input_len for r in sel]
        ax_ram.plot(t, [r.ram_linked / 1024 for r in sel], "o-", color=color, label=f"{mode}: linked")
        ax_ram.plot(t, [r.ram_estimated / 1024 for r in sel], "x--", color=color, label=f"{mode}: estimated")
        paper = [(r.input_len, r.paper_ram_kb) for r in sel if r.paper_ram_kb]
        if paper:
            ax_ram.plot(*zip(*paper, strict=True), "s:", color=color, alpha=0.5, label=f"{mode}: paper's Table III")
        ax_ins.plot(t, [r.instructions_measured / 1e6 for r in sel], "o-", color=color,
                    label=f"{mode}: measured on the simulated board")
        ax_ins.plot(t, [r.instructions_estimated / 1e6 for r in sel], "x--", color=color, label=f"{mode}: estimated")
    sram = ax_ram.axhline(320, color="red", lw=1, label="the STM32L496's 320 KiB")
    ax_ram.set(xlabel="input length T (rows per window)", ylabel="SRAM (KiB)", ylim=(0, None),
               title="SRAM used for training")
    ax_ins.set(xlabel="input length T (rows per window)", ylabel="million instructions per sample", ylim=(0, None),
               title="Training instructions per sample\n(forward, backward, gradient accumulation)")
    for ax in (ax_ram, ax_ins):
        ax.grid(alpha=0.3)
        handles, labels = ax.get_legend_handles_labels()
        if sram in handles:  # after the full-mode entries: a column per mode (legends fill column by column)
            k, full = handles.index(sram), sum(label.startswith("full:") for label in labels)
            handles.insert(full, handles.pop(k))
            labels.insert(full, labels.pop(k))
        ax.legend(handles, labels, fontsize=9, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)
    return fig


def plot(rows: list[BenchRow], path: Path) -> None:
    import matplotlib.pyplot as plt

    fig = bench_figure(rows)
    fig.savefig(path, dpi=110)
    plt.close(fig)


@dataclass(frozen=True)
class BoardTiming:
    """Training on a board, as its firmware's DWT cycle counter saw it (see each backend for what that
    counter is: real cycles on silicon, instructions on the Unicorn model, virtual time in Renode)."""

    clock_hz: int
    batch: int
    cycles_per_sample: float  # TRAIN_SAMPLE: forward, backward, accumulate
    cycles_per_load: float  # LOAD_SAMPLE once the window has arrived
    cycles_per_step: int  # SGD_STEP
    wall_seconds_per_batch: float  # every round trip of the batch, the UART transfer included

    @property
    def seconds_per_batch(self) -> float:
        """On-device compute of a batch at the board's clock: its samples and the step."""
        return (self.batch * (self.cycles_per_sample + self.cycles_per_load) + self.cycles_per_step) / self.clock_hz


def time_on_board(transport: Transport, model: Model, batch: int = 32, seed: int = 0) -> BoardTiming:
    """Train one batch of random windows on the board behind ``transport`` (which must run ``model``'s
    firmware), then put its parameters back as they were."""
    net = BoardNetwork(transport, model.arch)
    info = net.info()
    before = net.get_params()
    rng = np.random.default_rng(seed)
    windows = rng.standard_normal((batch, model.arch.input_len, model.arch.input_ch)).astype(np.float32)
    labels = rng.integers(0, model.arch.num_classes, size=batch)
    load = train = 0
    t0 = time.perf_counter()
    try:
        for x, y in zip(windows, labels, strict=True):
            load += _ok(transport.execute(Request(Command.LOAD_SAMPLE, data=x.astype("<f4").tobytes()))).cycles
            train += _ok(transport.execute(Request(Command.TRAIN_SAMPLE, (int(y), 0, 0, 0)))).cycles
        step = _ok(transport.execute(Request(Command.SGD_STEP, arg_f=0.01))).cycles
        wall = time.perf_counter() - t0
    finally:
        net.zero_grads()  # a batch cut short leaves nothing behind
        net.set_params(before)
    return BoardTiming(info.clock_hz, batch, train / batch, load / batch, step, wall)


def _ok(reply: Reply) -> Reply:
    if reply.status != 0:
        raise CommandError("bench", reply.status)
    return reply
