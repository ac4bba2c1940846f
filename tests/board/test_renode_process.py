"""Renode started as a program for host tools (it cannot be installed here, so stand-ins play it)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pyodl.board.base import BoardError
from pyodl.board.renode_process import RESC, RenodeProcess


def test_command_runs_the_resc_headless_with_the_console_on_a_pty(tmp_path: Path) -> None:
    cmd = RenodeProcess(tmp_path / "fw.elf").command(tmp_path / "console.pty")
    script = cmd[-1]
    # No --console: with stdin at /dev/null Renode's console reads end-of-input and quits.
    assert cmd[0] == "renode" and "--console" not in cmd and "--disable-gui" in cmd and cmd[-2] == "-e"
    assert f"$elf=@{tmp_path / 'fw.elf'}" in script and f'$uart_pty="{tmp_path / "console.pty"}"' in script
    assert f"include @{RESC}" in script and script.index("runMacro $uart_pty") < script.index("start")
    resc = RESC.read_text()
    assert "emulation CreateUartPtyTerminal" in resc
    assert not any(line.startswith("showAnalyzer") for line in resc.splitlines())  # no analyzer headless


def _fake_renode(tmp_path: Path, body: str) -> Path:
    fake = tmp_path / "renode"
    fake.write_text("#!/bin/sh\n" + body)
    os.chmod(fake, 0o755)
    return fake


# A stand-in Renode in Python: it opens a pseudo-terminal and links it where the script's $uart_pty says, as
# `emulation CreateUartPtyTerminal` does, then runs BEHAVIOUR.
PTY_STANDIN = """#!{python}
import os, re, signal, subprocess, sys, time
path = re.search(r'\\$uart_pty="([^"]*)"', sys.argv[4]).group(1)
master, slave = os.openpty()
os.symlink(os.ttyname(slave), path)
{behaviour}
"""


def _pty_renode(tmp_path: Path, behaviour: str) -> Path:
    fake = tmp_path / "renode"
    fake.write_text(PTY_STANDIN.format(python=sys.executable, behaviour=behaviour))
    os.chmod(fake, 0o755)
    return fake


def test_a_renode_that_exits_is_reported(tmp_path: Path) -> None:
    fake = _fake_renode(tmp_path, "exit 3\n")
    with pytest.raises(BoardError, match="exited with status 3"), RenodeProcess(tmp_path / "fw.elf", renode=str(fake)):
        pass


def test_missing_renode_says_how_to_install(tmp_path: Path) -> None:
    with pytest.raises(BoardError, match="renode/releases"), RenodeProcess(tmp_path / "x.elf",
                                                                           renode="no-such-renode-here"):
        pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill 0: ask ps for its state
    state = subprocess.run(["ps", "-o", "stat=", "-p", str(pid)], capture_output=True, text=True).stdout.strip()
    return bool(state) and not state.startswith("Z")


def test_stopping_stops_the_emulator_under_the_launcher_too(tmp_path: Path) -> None:
    """The `renode` launcher is a script with the emulator as its child: stopping must end both. The stand-in
    starts a child that ignores SIGTERM (as a busy emulator may) and waits for it."""
    child_pid = tmp_path / "child.pid"
    fake = _pty_renode(tmp_path, f"""
child = subprocess.Popen(["sh", "-c", 'trap "" TERM; echo $$ > {child_pid}; while true; do sleep 1; done'])
child.wait()
""")
    with RenodeProcess(tmp_path / "fw.elf", renode=str(fake), timeout=10):
        for _ in range(50):
            if child_pid.exists() and child_pid.read_text().strip():
                break
            time.sleep(0.1)
        pid = int(child_pid.read_text())
        assert _alive(pid)
    assert not _alive(pid), "the emulator under the launcher outlived RenodeProcess"


def test_the_emulator_gets_sigterm_first(tmp_path: Path) -> None:
    """A well-behaved emulator is asked to quit (SIGTERM to the group) before anything is killed."""
    marker = tmp_path / "terminated"
    fake = _pty_renode(tmp_path, f"""
def quit(*_):
    open("{marker}", "w").write("term")
    sys.exit(0)
signal.signal(signal.SIGTERM, quit)
while True:
    time.sleep(0.1)
""")
    with RenodeProcess(tmp_path / "fw.elf", renode=str(fake), timeout=10):
        pass
    assert marker.read_text().strip() == "term"
