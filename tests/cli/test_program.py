from __future__ import annotations

from pathlib import Path

import pytest

from pyodl.cli import main
from pyodl.model.keras_io import keras


def test_errors_exit_2_with_a_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    km = keras.Sequential([keras.Input((20, 3)), keras.layers.Conv1D(4, 3, kernel_regularizer="l2"),
                           keras.layers.Flatten(), keras.layers.Dense(3, activation="softmax")])
    path = tmp_path / "regularized.keras"
    km.save(path)
    assert main(["export", str(path), "--out", str(tmp_path / "out")]) == 2
    assert "kernel_regularizer is not supported" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    assert main(["export", str(tmp_path / "missing.keras")]) == 2
    assert "no such model file" in capsys.readouterr().err
    assert main(["golden-check", "--mode", "tl", "--trainable-layers", "9"]) == 2
    assert "between 1 and 4" in capsys.readouterr().err
    assert main(["golden-check", "--lr", "nan"]) == 2
    assert main(["export", str(path), "--input", "40"]) == 2
    assert "--input apply to the paper model only" in capsys.readouterr().err
    assert main(["golden-check", "--classes", "1"]) == 2
    assert "argument --classes: must be >= 2" in capsys.readouterr().err


def test_readmes_command_table_lists_every_option_of_every_command() -> None:
    """A newcomer reads README's table, not --help: an option missing there does not exist for them."""
    import argparse

    from pyodl.cli.program import build_parser

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    # A row per command, and per subcommand of one that has them (`pyodl ci init ...`).
    usages = [line.split("`")[1] for line in readme.splitlines() if line.startswith("| `pyodl ")]
    rows = {" ".join(w for w in usage.split()[1:3] if w[0].isalpha()): usage for usage in usages}

    def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
        (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)] or [None]
        return {} if sub is None else dict(sub.choices)

    commands = {}
    for name, parser in subcommands(build_parser()).items():
        nested = subcommands(parser)
        commands |= {f"{name} {n}": p for n, p in nested.items()} if nested else {name: parser}
    missing = []
    for name, parser in commands.items():
        usage = rows.get(name)
        if usage is None:
            missing.append(f"pyodl {name} (no row)")
            continue
        for action in parser._actions:
            long = [o for o in action.option_strings if o.startswith("--") and o != "--help"]
            if long and not any(f"[{o}" in usage or f" {o}" in usage for o in long):
                missing.append(f"pyodl {name} {long[0]}")
    assert "ci init" in commands and missing == []


def test_version_names_the_installed_pyodl(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib.metadata import version

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"pyodl {version('pyodl')}"
