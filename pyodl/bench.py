"""Measure what the estimator predicts: link the firmware for a configuration, read its sections, and run
training samples on the simulated board counting instructions."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pyodl.board.unicorn import UnicornBoard
from pyodl.device import DeviceNetwork
from pyodl.firmware import Firmware, FirmwareBuilder
from pyodl.model import Model
from pyodl.protocol import MailboxTransport


@dataclass(frozen=True)
class Measurement:
    ram_sections: dict[str, int]
    ram_bytes: int
    flash_bytes: int
    text_bytes: int  # .isr_vector + .text (code, constants, the layer table, frozen parameters)
    instructions_per_sample: float  # TRAIN_SAMPLE: forward, backward, accumulate
    instructions_per_step: int  # SGD_STEP
    protocol_per_sample: float  # LOAD_SAMPLE through the mailbox, the transport's own cost
    stack_high_water: int


def measure(model: Model, trainable_layers: int | None, builder: FirmwareBuilder, work_dir: Path,
            batch: int = 32, seed: int = 0) -> Measurement:
    firmware: Firmware = builder.export_and_build(model, work_dir, trainable_layers)
    board = UnicornBoard()
    try:
        board.load_elf(firmware.elf)
        net = DeviceNetwork(MailboxTransport(board), model.arch)
        rng = np.random.default_rng(seed)
        windows = rng.standard_normal((batch, model.arch.input_len, model.arch.input_ch)).astype(np.float32)
        labels = rng.integers(0, model.arch.num_classes, size=batch)
        train = load = 0
        for x, y in zip(windows, labels, strict=True):
            start = board.executed_instructions()
            net.load_sample(x)
            middle = board.executed_instructions()
            net.train_loaded_sample(int(y))
            load += middle - start
            train += board.executed_instructions() - middle
        start = board.executed_instructions()
        net.sgd_step(0.01)
        step = board.executed_instructions() - start
        info = net.info()
    finally:
        board.close()
    sections = firmware.sections()
    return Measurement(firmware.ram_sections(), firmware.ram_bytes(), firmware.flash_bytes(),
                       sections[".isr_vector"][1] + sections[".text"][1], train / batch, step, load / batch,
                       info.stack_high_water)
