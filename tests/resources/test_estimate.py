"""The estimator against the firmware that is actually linked and run (DESIGN: numbers anyone can rerun).

Tolerances are the issues': RAM within 2% of the linker's, instructions within 10% of the Unicorn count, cycles
within 10% of the Unicorn board's cycle model.
The random architectures use another seed than benchmarks/calibrate.py, so they validate the cost model
rather than re-check its fit."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from pyodl.model.architecture import (
    PAPER_INPUT_LENGTHS,
    Architecture,
    Kind,
    Model,
    glorot_params,
    paper_architecture,
    paper_model,
    random_architecture,
)
from pyodl.resources.bench import measure
from pyodl.resources.estimate import estimate
from pyodl.toolchain.firmware import FirmwareBuilder
from pyodl.toolchain.memory_map import SRAM_SIZE

INSTRUCTION_TOLERANCE = 0.10


def _check(model: Model, trainable: int | None, builder: FirmwareBuilder, work: Path) -> None:
    est = estimate(model.arch, trainable)
    got = measure(model, trainable, builder, work, batch=2)
    assert est.ram_total == got.ram_bytes, (est.ram, got.ram_sections)  # every buffer's size is known: exact
    assert abs(est.instructions_per_sample - got.instructions_per_sample) <= (
        INSTRUCTION_TOLERANCE * got.instructions_per_sample)
    step_error = abs(est.instructions_per_step - got.instructions_per_step)
    assert step_error <= INSTRUCTION_TOLERANCE * got.instructions_per_step
    assert abs(est.cycles_per_sample - got.cycles_per_sample) <= INSTRUCTION_TOLERANCE * got.cycles_per_sample
    assert abs(est.cycles_per_step - got.cycles_per_step) <= INSTRUCTION_TOLERANCE * got.cycles_per_step
    assert abs(est.flash_total - got.flash_bytes) <= 0.02 * got.flash_bytes


@pytest.mark.parametrize("mode", ["full", "tl"])
@pytest.mark.parametrize("t", PAPER_INPUT_LENGTHS)
def test_paper_model(t: int, mode: str, firmware_builder: FirmwareBuilder, tmp_path: Path) -> None:
    _check(paper_model(t, 0), None if mode == "full" else 2, firmware_builder, tmp_path)


@pytest.mark.parametrize("seed", range(6))
def test_random_architectures(seed: int, firmware_builder: FirmwareBuilder, tmp_path: Path) -> None:
    rng = np.random.default_rng(1000 + seed)
    while True:
        arch = random_architecture(rng, f"validation{seed}")
        trainable = None if seed % 2 else int(rng.integers(1, len(arch.param_layers) + 1))
        if estimate(arch, trainable).fits:
            break
    _check(Model(arch, glorot_params(arch, seed)), trainable, firmware_builder, tmp_path)


@pytest.mark.parametrize("seed", range(4))
def test_random_window_architectures(seed: int, firmware_builder: FirmwareBuilder, tmp_path: Path) -> None:
    """Strided, dilated and padded Conv1D, strided and padded Avg/MaxPool1D: the general kernels' costs and
    the argmax buffers, on architectures the calibration never saw."""
    rng = np.random.default_rng(2000 + seed)
    while True:
        arch = random_architecture(rng, f"windows{seed}", wide=True)
        trainable = None if seed % 2 else int(rng.integers(1, len(arch.param_layers) + 1))
        if estimate(arch, trainable).fits:
            break
    _check(Model(arch, glorot_params(arch, seed)), trainable, firmware_builder, tmp_path)


@pytest.mark.parametrize("trainable", [None, 2])
def test_a_global_max_pool_model(trainable: int | None, firmware_builder: FirmwareBuilder, tmp_path: Path) -> None:
    """The paper's model with GlobalMaxPool1D for its GAP: the tie mask (a bit per input element, Full only: in
    TL the pool is below the trained layers) counted exactly, the kernels' cost within the tolerance."""
    specs = [replace(layer.spec(), kind=Kind.GMP1D) if layer.kind is Kind.GAP1D else layer.spec()
             for layer in paper_architecture(40).layers]
    arch = Architecture.build("paper_gmp", 40, 3, specs)
    _check(Model(arch, glorot_params(arch, 0)), trainable, firmware_builder, tmp_path)


def test_paper_training_macs_match_the_measured_facts() -> None:
    # shared/notes/measured-facts.md: training MACs per sample of the paper's model.
    want = {20: 149_892, 40: 345_732, 60: 541_572, 80: 737_412, 100: 933_252}
    for t, macs in want.items():
        assert estimate(paper_architecture(t)).training_macs_per_sample == macs


def test_a_model_that_cannot_fit_is_flagged_before_any_build() -> None:
    est = estimate(paper_architecture(4000))
    assert not est.fits and est.ram_margin < 0 and est.ram_total > SRAM_SIZE


def test_batch_does_not_change_ram_but_scales_instructions() -> None:
    small, big = estimate(paper_architecture(40), batch=1), estimate(paper_architecture(40), batch=64)
    assert small.ram == big.ram
    assert big.instructions_per_batch == 64 * big.instructions_per_sample + big.instructions_per_step
    with pytest.raises(ValueError, match="batch"):
        estimate(paper_architecture(40), batch=0)


@pytest.mark.parametrize(("t", "windows"), [(20, 1), (100, 32), (40, 100)])
def test_the_dataset_region_is_counted_exactly(t: int, windows: int, firmware_builder: FirmwareBuilder,
                                               tmp_path: Path) -> None:
    """The region is windows x (window + label word) bytes: the estimate's RAM total stays exact to the linker."""
    model = paper_model(t, 0)
    firmware = firmware_builder.export_and_build(model, tmp_path, dataset_windows=windows)
    est = estimate(model.arch, dataset_windows=windows)
    assert firmware.ram_sections()[".odl_dataset"] == windows * (t * 3 + 1) * 4
    assert est.ram_total == firmware.ram_bytes(), (est.ram, firmware.ram_sections())
    assert est.ram_total - estimate(model.arch).ram_total == windows * (t * 3 + 1) * 4
