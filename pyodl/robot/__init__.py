"""Robot Framework keyword library driving the pyodl firmware on a board backend.

Import it in a suite as ``Library    pyodl.robot.BoardKeywords    backend=${BACKEND}``; see robot/README.md.
The library (and TensorFlow, the golden model) loads when a suite asks for it, so ``pyodl ci plan`` checks the
suites' variables (:mod:`pyodl.robot.suite_model`) in a second.
"""

from __future__ import annotations

from typing import Any

__all__ = ["BoardKeywords"]


def __getattr__(name: str) -> Any:
    if name == "BoardKeywords":
        from pyodl.robot.keywords import BoardKeywords

        return BoardKeywords
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
