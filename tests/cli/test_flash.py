from __future__ import annotations

import os
from pathlib import Path

import pytest

from pyodl.cli import main


def _fake_tool(bin_dir: Path, name: str, status: int = 0, output: str = "") -> Path:
    """A stand-in programmer that records its arguments (and that the ELF it was given exists)."""
    log = bin_dir / f"{name}.args"
    script = bin_dir / name
    script.write_text(f"#!/bin/sh\nfor a in \"$@\"; do echo \"$a\"; done > '{log}'\n"
                      f"for a in \"$@\"; do case \"$a\" in *.elf*) echo elf-present >> '{log}';; esac; done\n"
                      f"echo '{output}'\nexit {status}\n")
    script.chmod(0o755)
    return log


def test_flash_without_a_programmer_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert main(["flash", "--no-check"]) == 2
    err = capsys.readouterr().err
    assert "sudo apt install openocd" in err and "pip install pyocd" in err and "Traceback" not in err
    assert main(["flash", "--tool", "pyocd", "--no-check"]) == 2
    assert "`pyocd` is not installed" in capsys.readouterr().err


def test_flash_programs_verifies_and_resets_with_openocd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    log = _fake_tool(tmp_path, "openocd")
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    assert main(["flash", "--input", "20", "--no-check"]) == 0
    args = log.read_text().splitlines()
    assert args[:3] == ["-f", "board/st_nucleo_l4.cfg", "-c"]
    assert args[3].startswith("program {/") and args[3].endswith("/pyodl.elf} verify reset exit")
    assert args[4] == "elf-present"
    assert "programmed, verified and reset" in capsys.readouterr().err


def test_a_failing_programmer_shows_its_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    _fake_tool(tmp_path, "pyocd", status=1, output="0000123 C No connected debug probes")
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    assert main(["flash", "--tool", "pyocd", "--input", "20", "--no-check"]) == 2
    err = capsys.readouterr().err
    assert "No connected debug probes" in err and "failed with exit status 1" in err and "COM LED" in err


def test_flash_checks_the_board_runs_the_model_it_built(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       board_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    _fake_tool(tmp_path, "openocd")
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    assert main(["flash", "--port", board_url]) == 0  # the bridge's board runs the paper model at T=40
    assert "model        0x" in capsys.readouterr().out
    assert main(["flash", "--input", "60", "--port", board_url]) == 2
    assert "flash firmware built for this model" in capsys.readouterr().err
