"""The STM32L496 firmware: cross-built with arm-none-eabi-gcc through the project's CMakeLists.txt.

:class:`FirmwareBuilder` exports a model and links ``pyodl.elf`` for it; :class:`Firmware` reads back what
the linker actually placed in SRAM and flash, section by section.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from elftools.elf.elffile import ELFFile

from pyodl.board.base import FLASH_BASE, FLASH_SIZE, SRAM1_BASE, SRAM_SIZE
from pyodl.export import export
from pyodl.host import REPO_ROOT, ToolchainError
from pyodl.model import Model

TOOLCHAIN_FILE = REPO_ROOT / "cmake" / "arm-none-eabi.cmake"
ELF_NAME = "pyodl.elf"
MAP_NAME = "pyodl.map"
DEFAULT_STACK_BYTES = 2048
INSTALL_HINT = (
    "install the Debian packages gcc-arm-none-eabi and libnewlib-arm-none-eabi "
    "(sudo apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi, or run ./scripts/setup.sh)"
)
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
        return sum(self.ram_sections().values())

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
    if shutil.which("cmake") is None:
        raise ToolchainError("cmake not found: install it with `sudo apt-get install cmake`")
    if shutil.which("arm-none-eabi-gcc") is None:
        raise ToolchainError(f"arm-none-eabi-gcc not found: {INSTALL_HINT}")


class FirmwareBuilder:
    """Links the firmware for one model after another in a single build directory (the library is
    compiled once). Not safe to share between processes: give each its own ``build_dir``."""

    def __init__(self, build_dir: Path | None = None, stack_bytes: int = DEFAULT_STACK_BYTES) -> None:
        require_toolchain()
        self._tmp = None if build_dir is not None else tempfile.TemporaryDirectory(prefix="pyodl-fw-")
        self.build_dir = build_dir if build_dir is not None else Path(self._tmp.name) / "build"
        self.stack_bytes = stack_bytes

    def _run(self, args: list[str]) -> str:
        proc = subprocess.run(args, capture_output=True, text=True)
        log = proc.stdout + proc.stderr
        if proc.returncode != 0:
            overflow = _OVERFLOW.search(log)
            if overflow:
                raise RamOverflowError(int(overflow.group(1)), log)
            raise ToolchainError(f"`{' '.join(args)}` failed:\n{log}")
        return log

    def build(self, model_dir: Path) -> Firmware:
        """Link the model exported in ``model_dir``; the ELF and map are copied next to it."""
        self._run([
            "cmake", "-S", str(REPO_ROOT), "-B", str(self.build_dir), "-DCMAKE_BUILD_TYPE=Release",
            f"-DCMAKE_TOOLCHAIN_FILE={TOOLCHAIN_FILE}", f"-DODL_MODEL_DIR={model_dir.resolve()}",
            f"-DODL_STACK_SIZE={self.stack_bytes}",
        ])
        self.log = self._run(["cmake", "--build", str(self.build_dir), "--target", ELF_NAME])
        for name in (ELF_NAME, MAP_NAME):
            shutil.copyfile(self.build_dir / name, model_dir / name)
        return Firmware(model_dir / ELF_NAME, model_dir / MAP_NAME)

    def export_and_build(self, model: Model, model_dir: Path, trainable_layers: int | None = None) -> Firmware:
        export(model, model_dir, trainable_layers)
        return self.build(model_dir)

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
