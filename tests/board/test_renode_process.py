"""Renode started as a program for host tools (it cannot be installed here, so a stand-in plays it)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pyodl.board.base import BoardError
from pyodl.board.renode_process import RESC, RenodeProcess


def test_command_runs_the_resc_with_the_uart_socket(tmp_path: Path) -> None:
    cmd = RenodeProcess(tmp_path / "fw.elf", port=4000).command()
    script = cmd[-1]
    assert cmd[0] == "renode" and "--console" in cmd and cmd[-2] == "-e"
    assert f"$elf=@{tmp_path / 'fw.elf'}" in script and "$uart_port=4000" in script
    assert f"include @{RESC}" in script and script.index("runMacro $uart_socket") < script.index("start")
    assert RESC.exists()


def test_a_renode_that_exits_is_reported(tmp_path: Path) -> None:
    fake = tmp_path / "renode"
    fake.write_text("#!/bin/sh\nexit 3\n")
    os.chmod(fake, 0o755)
    with pytest.raises(BoardError, match="exited with status 3"), RenodeProcess(tmp_path / "fw.elf", renode=str(fake)):
        pass


def test_missing_renode_says_how_to_install(tmp_path: Path) -> None:
    with pytest.raises(BoardError, match="renode/releases"), RenodeProcess(tmp_path / "x.elf",
                                                                           renode="no-such-renode-here"):
        pass
