"""The ``pyodl`` command line: one module per command (its options, their checks, its run), the option
helpers they share (:mod:`pyodl.cli.shared`, :mod:`pyodl.cli.experiment_options`), and
:mod:`pyodl.cli.program`, which parses and ends every command the same way."""

from pyodl.cli.program import main, run

__all__ = ["main", "run"]
