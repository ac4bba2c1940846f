"""Running the build tools, with errors that say what to install."""

from __future__ import annotations

import shutil
import subprocess

ARM_INSTALL_HINT = (
    "install the Debian packages gcc-arm-none-eabi and libnewlib-arm-none-eabi "
    "(sudo apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi, or run ./scripts/setup.sh)"
)


class ToolchainError(RuntimeError):
    """A build tool is missing or the build failed."""


def require(*tools: str) -> None:
    """ToolchainError naming the Debian packages when one of ``tools`` is not on the PATH."""
    packages = {"cmake": "cmake", "cc": "gcc"}
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if "arm-none-eabi-gcc" in missing:
        raise ToolchainError(f"arm-none-eabi-gcc not found: {ARM_INSTALL_HINT}")
    if missing:
        raise ToolchainError(
            f"{', '.join(missing)} not found: install them with "
            f"`sudo apt-get install {' '.join(packages.get(t, t) for t in missing)}` (or run ./scripts/setup.sh)"
        )


def run(args: list[str]) -> str:
    """Run a build command; its output, or ToolchainError with the output when it fails."""
    proc = subprocess.run(args, capture_output=True, text=True)
    log = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise ToolchainError(f"`{' '.join(args)}` failed:\n{log}")
    return log
