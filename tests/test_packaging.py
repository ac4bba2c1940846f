"""An installed wheel, not the checkout, exports and builds firmware: the C sources, linker script,
toolchain file, Unicorn counter and templates ship as package data. And pyodl installs beside Renode's test
requirements (renode-test runs in the same Python: the GitHub Renode job installs pyodl, then
antmicro/renode-test-action installs Renode's tests/requirements.txt), its ELF readers working at the lowest
pyelftools the project declares.

The wheel is built from the files git would commit (tracked or new, not ignored) copied out of the
checkout, installed into a fresh virtualenv, and run from a folder outside the checkout. Its third-party
dependencies (TensorFlow alone is 1.6 GB) are borrowed from the project's environment through a path
file; pyodl itself comes only from the wheel, which the test checks.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from pyodl.toolchain.firmware import Firmware

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(
    shutil.which("arm-none-eabi-gcc") is None or shutil.which("git") is None or not (REPO / ".git").exists(),
    reason="needs a git checkout and the arm-none-eabi toolchain",
)


def _run(args: list[str], cwd: Path) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, f"`{' '.join(args)}` failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv holding pyodl from its wheel; returns its python."""
    tmp = tmp_path_factory.mktemp("wheel")
    files = _run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], REPO).split("\0")
    source = tmp / "source"
    for name in filter(None, files):
        if (REPO / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp / "dist"),
          str(source)], tmp)
    (wheel,) = (tmp / "dist").glob("pyodl-*.whl")
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp)
    python = venv / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q", str(wheel)], tmp)
    purelib = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], tmp).strip()
    (Path(purelib) / "_borrowed_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    shutil.rmtree(source)  # nothing may still point into a source tree
    return python


def test_pyodl_comes_from_the_wheel_with_its_sources(installed: Path, tmp_path: Path) -> None:
    out = _run([str(installed), "-c", "import pyodl.toolchain.sources as s, pyodl.board.unicorn as u; "
                "print(s.source_root()); print(u.COUNTER_SOURCE)"], tmp_path).split()
    venv = installed.parent.parent
    assert all(Path(p).is_relative_to(venv) for p in out), out
    assert Path(out[0]).name == "_sources" and (Path(out[0]) / "firmware" / "app" / "stm32l496.ld").is_file()


def test_the_wheel_exports_builds_and_trains_on_the_simulated_board(installed: Path, tmp_path: Path) -> None:
    pyodl = installed.parent / "pyodl"
    _run([str(pyodl), "export", "--input", "20", "--out", str(tmp_path / "model")], tmp_path)
    assert (tmp_path / "model" / "model.h").is_file()
    out = _run([str(pyodl), "golden-check", "--input", "20", "--steps", "2", "--batch", "4", "--backend", "unicorn"],
               tmp_path)
    assert out.rstrip().endswith("PASS"), out


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
