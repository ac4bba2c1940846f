"""The STM32L496 firmware: cross-built with arm-none-eabi-gcc through the project's CMakeLists.txt.

:class:`FirmwareBuilder` exports a model and links ``pyodl.elf`` for it; :class:`Firmware` reads back what
the linker actually placed in SRAM and flash, section by section.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from elftools.elf.elffile import ELFFile

from pyodl.model.architecture import Model
from pyodl.model.export import export
from pyodl.model.optimizer import SGD, Optimizer
from pyodl.toolchain import tools
from pyodl.toolchain.build_cache import BuildCache
from pyodl.toolchain.memory_map import FLASH_BASE, FLASH_SIZE, SRAM1_BASE, SRAM_SIZE
from pyodl.toolchain.sources import source_root, toolchain_file
from pyodl.toolchain.tools import ToolchainError

ELF_NAME = "pyodl.elf"
MAP_NAME = "pyodl.map"
DEFAULT_STACK_BYTES = 1024
_OVERFLOW = re.compile(r"region [`']RAM' overflowed by (\d+) bytes")


class RamOverflowError(ToolchainError):
    """The model's buffers plus the firmware and its stack do not fit in the STM32L496's SRAM."""

    def __init__(self, overflow: int, log: str) -> None:
        super().__init__(
            f"the model does not fit in the STM32L496's {SRAM_SIZE // 1024} KB of SRAM: the link overflows it "
            f"by {overflow} bytes (train fewer layers, shorten the input window or shrink the model)\n{log}"
        )
        self.overflow = overflow


@dataclass(frozen=True)
class Firmware:
    elf: Path
    map_file: Path

    def sections(self) -> dict[str, tuple[int, int]]:
        """Every allocated section: name -> (address, bytes)."""
        with self.elf.open("rb") as f:
            elf = ELFFile(f)
            return {
                s.name: (s["sh_addr"], s["sh_size"])
                for s in elf.iter_sections()
                if s["sh_flags"] & 0x2 and s["sh_size"] > 0  # SHF_ALLOC
            }

    def ram_sections(self) -> dict[str, int]:
        """Bytes of SRAM per section, in address order (the stack is the `.stack` section)."""
        ram = [(a, n, s) for s, (a, n) in self.sections().items() if SRAM1_BASE <= a < SRAM1_BASE + SRAM_SIZE]
        return {name: size for _, size, name in sorted(ram)}

    def ram_bytes(self) -> int:
        """Bytes of SRAM the sections occupy: sections that share RAM (.odl_grads and .odl_int8, see
        firmware/app/stm32l496.ld) count once; alignment gaps between sections do not count."""
        spans = sorted((a, a + n) for a, n in self.sections().values() if SRAM1_BASE <= a < SRAM1_BASE + SRAM_SIZE)
        total, reached = 0, 0
        for start, end in spans:
            total += max(0, end - max(start, reached))
            reached = max(reached, end)
        return total

    def flash_sections(self) -> dict[str, int]:
        """Bytes of flash per section, in address order: what lives in flash (code, constants), then the initial
        values of each initialised SRAM section (``.data (initial values)``), which the start-up code copies."""
        with self.elf.open("rb") as f:
            elf = ELFFile(f)
            placed = sorted((s["sh_addr"], s.name, s["sh_size"], s["sh_type"]) for s in elf.iter_sections()
                            if s["sh_flags"] & 0x2 and s["sh_size"] > 0)
        out = {name: size for addr, name, size, _ in placed if FLASH_BASE <= addr < FLASH_BASE + FLASH_SIZE}
        out.update({f"{name} (initial values)": size for addr, name, size, kind in placed
                    if SRAM1_BASE <= addr < SRAM1_BASE + SRAM_SIZE and kind != "SHT_NOBITS"})
        return out

    def model_hash(self) -> int:
        """ODL_MODEL_HASH of the model.h the firmware was built from (next to the ELF, as build() leaves it)."""
        header = self.elf.with_name("model.h")
        match = re.search(r"#define ODL_MODEL_HASH (0x[0-9a-fA-F]+)u", header.read_text()) if header.is_file() else None
        if match is None:
            raise ToolchainError(f"no ODL_MODEL_HASH in {header}")
        return int(match[1], 16)

    def flash_bytes(self) -> int:
        """Bytes of flash: code, constants and the initial values of every initialised RAM section."""
        with self.elf.open("rb") as f:
            elf = ELFFile(f)
            return sum(
                seg["p_filesz"]
                for seg in elf.iter_segments()
                if seg["p_type"] == "PT_LOAD" and FLASH_BASE <= seg["p_paddr"] < FLASH_BASE + FLASH_SIZE
            )


def require_toolchain() -> None:
    tools.require("cmake", "arm-none-eabi-gcc")


CLOCKS = ("pll80", "msi4")  # CMake's ODL_CLOCK
CONSOLES = ("lpuart1", "usart2")  # CMake's ODL_CONSOLE


class FirmwareBuilder:
    """Links the firmware for one model after another in a single build directory (the library is
    compiled once). Not safe to share between processes: give each its own ``build_dir``."""

    def __init__(self, build_dir: Path | None = None, stack_bytes: int = DEFAULT_STACK_BYTES,
                 clock: str = "pll80", console: str = "lpuart1") -> None:
        """``clock``: pll80 (80 MHz, default) or msi4 (the 4 MHz reset clock); ``console``: lpuart1 (PG7/PG8,
        the NUCLEO-L496ZG's ST-LINK port, default) or usart2 (PA2/PA3)."""
        if clock not in CLOCKS:
            raise ValueError(f"clock must be one of {', '.join(CLOCKS)}, got {clock!r}")
        if console not in CONSOLES:
            raise ValueError(f"console must be one of {', '.join(CONSOLES)}, got {console!r}")
        require_toolchain()
        self._tmp = None if build_dir is not None else tempfile.TemporaryDirectory(prefix="pyodl-fw-")
        self.build_dir = build_dir if build_dir is not None else Path(self._tmp.name) / "build"
        self.stack_bytes = stack_bytes
        self.clock = clock
        self.console = console

    @staticmethod
    def _run(args: list[str]) -> str:
        try:
            return tools.run(args)
        except ToolchainError as exc:
            overflow = _OVERFLOW.search(str(exc))
            if overflow:
                raise RamOverflowError(int(overflow.group(1)), str(exc).split("\n", 1)[-1]) from None
            raise

    def build(self, model_dir: Path) -> Firmware:
        """Link the model exported in ``model_dir``; the ELF and map are copied next to it (from the build
        cache when one is set and holds this very build: :mod:`pyodl.toolchain.build_cache`)."""
        cache = BuildCache.from_environment()
        key = None if cache is None else cache.key(
            model_dir, ["firmware", "Release", str(self.stack_bytes), self.clock, self.console], "arm-none-eabi-gcc")
        if cache is not None and key is not None:
            log = cache.fetch(key, (ELF_NAME, MAP_NAME), model_dir)
            if log is not None:
                self.log = log
                return Firmware(model_dir / ELF_NAME, model_dir / MAP_NAME)
        self._run([
            "cmake", "-S", str(source_root()), "-B", str(self.build_dir), "-DCMAKE_BUILD_TYPE=Release",
            f"-DCMAKE_TOOLCHAIN_FILE={toolchain_file()}", f"-DODL_MODEL_DIR={model_dir.resolve()}",
            f"-DODL_STACK_SIZE={self.stack_bytes}", f"-DODL_CLOCK={self.clock}", f"-DODL_CONSOLE={self.console}",
        ])
        self.log = self._run(["cmake", "--build", str(self.build_dir), "--target", ELF_NAME])
        for name in (ELF_NAME, MAP_NAME):
            shutil.copyfile(self.build_dir / name, model_dir / name)
        if cache is not None and key is not None:
            cache.store(key, [model_dir / ELF_NAME, model_dir / MAP_NAME], self.log)
        return Firmware(model_dir / ELF_NAME, model_dir / MAP_NAME)

    def export_and_build(self, model: Model, model_dir: Path, trainable_layers: int | None = None,
                         optimizer: Optimizer = SGD, dataset_windows: int = 0) -> Firmware:
        """Export ``model`` into ``model_dir`` and link it; ``dataset_windows``: records of the dataset region
        (the batch commands' windows; 0: none)."""
        export(model, model_dir, trainable_layers, optimizer=optimizer, dataset_windows=dataset_windows)
        return self.build(model_dir)

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
