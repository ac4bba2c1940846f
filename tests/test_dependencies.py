"""pyodl installs beside Renode's test requirements (renode-test runs in the same Python: the GitHub Renode
job installs pyodl, then antmicro/renode-test-action installs Renode's tests/requirements.txt), and its ELF
readers work at the lowest pyelftools the project declares."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from pyodl.toolchain.firmware import Firmware

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

REPO = Path(__file__).resolve().parents[1]
# What Renode 1.16.1's tests/requirements.txt (with the tool requirements it includes) pins, for the packages
# pyodl depends on too. A pin outside pyodl's range makes pip downgrade under pyodl (CI's order) or refuse
# (one command).
RENODE_1_16_1_PINS = {"robotframework": "6.1", "pyelftools": "0.30"}


def _dependencies() -> dict[str, Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return {Requirement(r).name.lower(): Requirement(r) for r in project["dependencies"]}


def test_renodes_pinned_versions_are_inside_pyodls_ranges() -> None:
    dependencies = _dependencies()
    for name, version in RENODE_1_16_1_PINS.items():
        assert version in dependencies[name].specifier, f"{name}=={version} is outside pyodl's {dependencies[name]}"


def _lower_bound(name: str) -> str:
    (bound,) = [s.version for s in _dependencies()[name].specifier if s.operator == ">="]
    return bound


def test_the_elf_readers_work_at_the_lowest_declared_pyelftools(paper_firmware: Firmware, tmp_path: Path) -> None:
    """A virtualenv with pyelftools at the declared lower bound, everything else borrowed from this one (after
    the venv's own packages on the path, so the old pyelftools wins), loads and boots the paper's firmware
    and reads its sections."""
    version = _lower_bound("pyelftools")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    install = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
                              f"pyelftools=={version}"], capture_output=True, text=True)
    if install.returncode != 0 and re.search(r"No matching distribution|Could not find a version", install.stderr):
        pytest.fail(f"pyelftools=={version} is not installable, so the declared lower bound is wrong:\n"
                    f"{install.stderr}")
    assert install.returncode == 0, install.stderr
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                             capture_output=True, text=True, check=True).stdout.strip()
    (Path(purelib) / "_borrowed.pth").write_text(f"{REPO}\n{sysconfig.get_path('purelib')}\n")
    script = f"""
import elftools
from pathlib import Path
from pyodl.board.mailbox import MailboxTransport
from pyodl.board.unicorn import UnicornBoard
from pyodl.toolchain.firmware import Firmware
assert elftools.__version__ == {version!r}, elftools.__file__
elf = Path({str(paper_firmware.elf)!r})
firmware = Firmware(elf, Path({str(paper_firmware.map_file)!r}))
print(firmware.ram_bytes(), firmware.flash_bytes())
with UnicornBoard(elf) as board:
    MailboxTransport(board)
    print(board.executed_instructions())
"""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    run = subprocess.run([str(python), "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    ram, flash, boot = (int(v) for v in run.stdout.split())
    assert (ram, flash) == (paper_firmware.ram_bytes(), paper_firmware.flash_bytes()) and boot > 0
