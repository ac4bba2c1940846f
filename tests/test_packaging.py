"""An installed wheel, not the checkout, exports and builds firmware: the C sources, linker script,
toolchain file, Unicorn counter and templates ship as package data.

The wheel is built from the files git would commit (tracked or new, not ignored) copied out of the
checkout, installed into a fresh virtualenv, and run from a folder outside the checkout. Its third-party
dependencies (TensorFlow alone is 1.6 GB) are borrowed from the project's environment through a path
file; pyodl itself comes only from the wheel, which the test checks.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

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
