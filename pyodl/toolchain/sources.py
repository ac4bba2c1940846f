"""Where the C sources live: the one place that knows the repository's (or the wheel's) layout.

In a checkout (an editable install) they are the repository's own ``CMakeLists.txt``, ``cmake/``,
``firmware/`` and ``renode/``. A wheel carries a copy of the same tree as package data in
``pyodl/_sources`` (see setup.py), so an installed pyodl can export and build firmware with no checkout.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parents[1]


def source_root() -> Path:
    """The directory holding ``CMakeLists.txt``, ``cmake/``, ``firmware/`` and ``renode/``."""
    for root in (_PACKAGE / "_sources", _PACKAGE.parent):
        if (root / "CMakeLists.txt").is_file() and (root / "firmware" / "odl" / "odl.h").is_file():
            return root
    raise FileNotFoundError(
        f"pyodl's C sources are neither in {_PACKAGE / '_sources'} (an installed wheel) nor in "
        f"{_PACKAGE.parent} (a checkout): reinstall pyodl"
    )


def firmware_file(relative: str) -> Path:
    """A file under ``firmware/``, e.g. ``app/app.h``."""
    return source_root() / "firmware" / relative


def toolchain_file() -> Path:
    return source_root() / "cmake" / "arm-none-eabi.cmake"


def renode_file(name: str) -> Path:
    """``stm32l496.repl`` or ``pyodl.resc``."""
    return source_root() / "renode" / name


def git_commit() -> str:
    """``git describe`` of a checkout (``-dirty`` when changed), or ``unknown`` outside one."""
    import subprocess

    try:
        proc = subprocess.run(["git", "-C", str(source_root()), "describe", "--always", "--dirty"],
                              capture_output=True, text=True)
    except OSError:
        return "unknown"
    return proc.stdout.strip() or "unknown"
