"""The STM32L496 firmware build: sections, RAM accounting, the overflow message, a missing toolchain."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pyodl.model.architecture import paper_model
from pyodl.model.memory_plan import SECTIONS, plan_memory
from pyodl.model.optimizer import Optimizer
from pyodl.toolchain import firmware as fw
from pyodl.toolchain import tools
from pyodl.toolchain.firmware import Firmware, FirmwareBuilder, RamOverflowError
from pyodl.toolchain.memory_map import FLASH_BASE, SRAM1_BASE, SRAM_SIZE
from pyodl.toolchain.tools import ToolchainError


def test_every_buffer_class_has_its_section_at_the_planned_size(paper_firmware: Firmware) -> None:
    """The linker places exactly the bytes pyodl.model.memory_plan planned, per section."""
    ram = paper_firmware.ram_sections()
    planned = plan_memory(paper_model(40, 0).arch).section_bytes()
    for section in SECTIONS:
        assert ram.get(section, 0) == planned[section], section  # ld drops an empty section
    assert ram[".stack"] == fw.DEFAULT_STACK_BYTES
    assert next(iter(ram)) == ".stack", "the stack is reserved at the bottom of SRAM, so an overflow faults"


def test_sections_live_in_the_real_memory_map(paper_firmware: Firmware) -> None:
    sections = paper_firmware.sections()
    assert sections[".isr_vector"][0] == FLASH_BASE
    assert sections[".stack"][0] == SRAM1_BASE
    assert paper_firmware.ram_bytes() < SRAM_SIZE
    # Flash holds the code plus the initial values of the trainable parameters (copied at reset).
    assert paper_firmware.flash_bytes() > sections[".odl_params"][1]
    # Per section, flash sums to what the load segments hold, but for the alignment between them.
    per_section = paper_firmware.flash_sections()
    assert ".text" in per_section and per_section[".odl_params (initial values)"] == sections[".odl_params"][1]
    assert 0 <= paper_firmware.flash_bytes() - sum(per_section.values()) < 8


def test_build_prints_ram_per_section(firmware_builder: FirmwareBuilder, paper_firmware: Firmware) -> None:
    for section in (".odl_params", ".odl_grads", ".odl_saved", ".odl_scratch", ".odl_io", ".stack"):
        assert section in firmware_builder.log
    assert "RAM:" in firmware_builder.log and "320 KB" in firmware_builder.log


def test_transfer_learning_keeps_frozen_parameters_in_flash(firmware_builder: FirmwareBuilder,
                                                            tmp_path: Path, paper_firmware: Firmware) -> None:
    tl = firmware_builder.export_and_build(paper_model(40, 0), tmp_path, trainable_layers=2)
    full_params = paper_firmware.ram_sections()[".odl_params"]
    tl_params = tl.ram_sections()[".odl_params"]
    assert full_params - tl_params == plan_memory(paper_model(40, 0).arch, 2).flash_param_bytes()


def test_optimizer_state_is_linked_at_the_planned_size(firmware_builder: FirmwareBuilder, tmp_path: Path) -> None:
    model, adam = paper_model(40, 0), Optimizer.parse("adam")
    tl = firmware_builder.export_and_build(model, tmp_path, trainable_layers=2, optimizer=adam)
    planned = plan_memory(model.arch, 2, adam).section_bytes()[".odl_optim"]
    assert planned == 2 * 4 * sum(model.arch.layers[i].param_count for i in model.arch.param_layers[-2:])
    assert tl.ram_sections()[".odl_optim"] == planned


def test_a_model_that_does_not_fit_fails_to_link_with_the_overflow(firmware_builder: FirmwareBuilder,
                                                                     tmp_path: Path) -> None:
    model = paper_model(4000, 0)
    with pytest.raises(RamOverflowError) as err:
        firmware_builder.export_and_build(model, tmp_path)
    planned = plan_memory(model.arch).ram_bytes()
    # The plan excludes the firmware's own variables and the stack, so the real overflow is larger.
    assert err.value.overflow > planned - SRAM_SIZE
    assert f"overflows it by {err.value.overflow} bytes" in str(err.value)


def test_missing_cross_compiler_names_the_packages(monkeypatch: pytest.MonkeyPatch) -> None:
    real_which = shutil.which
    monkeypatch.setattr(tools.shutil, "which",
                        lambda name: None if name == "arm-none-eabi-gcc" else real_which(name))
    with pytest.raises(ToolchainError, match="gcc-arm-none-eabi and libnewlib-arm-none-eabi"):
        FirmwareBuilder()
