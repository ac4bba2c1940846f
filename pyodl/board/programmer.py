"""Writing the firmware into a NUCLEO-L496ZG's flash through its on-board ST-LINK, with OpenOCD (its
``board/st_nucleo_l4.cfg``, which covers every STM32L4 Nucleo) or pyOCD (target ``stm32l496zgtx``, from ST's
device pack). Both program, verify and reset the board; a missing tool or a failure is a :class:`BoardError`
that says what to install or check, never a raw traceback.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Final

from pyodl.board.base import BoardError

TOOLS: Final = ("openocd", "pyocd")
PYOCD_TARGET: Final = "stm32l496zgtx"
INSTALL: Final = {
    "openocd": "the Debian package `openocd` (sudo apt install openocd)",
    "pyocd": f"pyOCD (pip install pyocd, then once: pyocd pack install {PYOCD_TARGET})",
}
BOARD_HINT: Final = ("is the NUCLEO-L496ZG plugged in by its ST-LINK USB connector (CN1), with its COM LED on, "
                     "and may you use USB devices (Debian: the udev rules of the openocd package)?")


def choose_tool(requested: str | None = None) -> str:
    """``requested`` if it is installed, else the first of TOOLS that is; BoardError naming what to install."""
    if requested is not None:
        if requested not in TOOLS:
            raise ValueError(f"the programmer must be one of {', '.join(TOOLS)}, got {requested!r}")
        if shutil.which(requested) is None:
            raise BoardError(f"`{requested}` is not installed: install {INSTALL[requested]}")
        return requested
    for tool in TOOLS:
        if shutil.which(tool) is not None:
            return tool
    raise BoardError("no programmer found: install " + ", or ".join(INSTALL[t] for t in TOOLS))


def programmer_command(tool: str, elf: Path) -> list[str]:
    """The command that programs ``elf``, verifies it and resets the board."""
    if tool == "openocd":
        # Braces keep a path with spaces one Tcl word.
        return ["openocd", "-f", "board/st_nucleo_l4.cfg", "-c", f"program {{{elf.resolve()}}} verify reset exit"]
    if tool == "pyocd":
        return ["pyocd", "flash", "--target", PYOCD_TARGET, str(elf.resolve())]
    raise ValueError(f"the programmer must be one of {', '.join(TOOLS)}, got {tool!r}")


def program(elf: Path, tool: str, timeout: float = 180.0) -> str:
    """Program, verify and reset; returns the tool's output."""
    if not elf.is_file():
        raise BoardError(f"no firmware at {elf}")
    command = programmer_command(tool, elf)
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise BoardError(f"`{tool}` did not finish within {timeout:.0f} s: {BOARD_HINT}") from exc
    output = (result.stdout or "") + (result.stderr or "")
    if result.returncode != 0:
        tail = "\n".join(output.strip().splitlines()[-8:])
        raise BoardError(f"`{' '.join(command)}` failed with exit status {result.returncode}:\n{tail}\n"
                         f"{BOARD_HINT}")
    return output
