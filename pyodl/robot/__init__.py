"""Robot Framework keyword library driving the pyodl firmware on a board backend.

Import it in a suite as ``Library    pyodl.robot.BoardKeywords    backend=${BACKEND}``; see robot/README.md.
"""

from pyodl.robot.keywords import BoardKeywords

__all__ = ["BoardKeywords"]
