"""Every numeric option of every command is bounded: zero, negative, absurd and non-finite values are refused
while the arguments are parsed, before any work, with the option named."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from pyodl.cli import main
from pyodl.cli.program import COMMANDS, build_parser
from pyodl.cli.shared import Bounded


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    (sub,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


def _numeric(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if a.option_strings and isinstance(a.type, Bounded)]


def test_no_numeric_option_takes_any_number() -> None:
    """A plain ``type=int`` takes 0 and -5 (``personalize --input 0`` once ran the whole job as T=40)."""
    unbounded = [f"{name} {action.option_strings[0]}" for name, parser in _subparsers().items()
                 for action in parser._actions
                 if action.type in (int, float) or (isinstance(action.default, (int, float))
                                                    and not isinstance(action.default, bool) and action.type is None)]
    assert unbounded == []
    assert len(_subparsers()) == len(COMMANDS)


@pytest.mark.parametrize("command", sorted(_subparsers()))
def test_every_numeric_option_refuses_values_outside_its_bounds(command: str, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)  # should a value get through, the command's default outputs land here
    parser = _subparsers()[command]
    required = [a.dest for a in parser._actions if a.required and a.option_strings]
    assert required == []  # else the command line below would need them
    for action in _numeric(parser):
        option = action.option_strings[0]
        for value in action.type.examples_outside():
            assert main([command, f"{option}={value}"]) == 2, (command, option, value)
            err = capsys.readouterr().err
            assert f"argument {option}" in err and "must be" in err, err
            assert "Traceback" not in err


def test_bounds_name_the_range() -> None:
    window = Bounded(int, 1, 4096)
    assert window("40") == 40
    for text, message in (("0", "must be >= 1 and <= 4096, got 0"), ("-3", "got -3"), ("5000", "got 5000"),
                          ("4.5", "'4.5' is not a whole number")):
        with pytest.raises(argparse.ArgumentTypeError, match=message):
            window(text)
    rate = Bounded(float, 0.0, 10.0, low_open=True)
    assert rate("0.01") == 0.01
    for text in ("0", "nan", "inf", "-1e-9", "11"):
        with pytest.raises(argparse.ArgumentTypeError):
            rate(text)


def test_a_zero_window_is_refused_at_once_not_replaced_by_the_default() -> None:
    """In a process of its own, as a user runs it: exit 2 before TensorFlow or the data is loaded (a check of
    what was imported, not of the time: a loaded machine takes seconds for either)."""
    code = ("import sys; from pyodl.cli import main; "
            "status = main(['personalize', '--input', '0', '--trainer', 'tf']); "
            "print(status, 'tensorflow' in sys.modules, 'pyodl.data.watch' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.stdout.split() == ["2", "False", "False"], proc.stdout + proc.stderr
    assert "argument --input: must be >= 1" in proc.stderr
