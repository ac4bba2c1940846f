from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path


def _as_a_terminal_starts_it() -> None:
    """Ctrl-C and SIGTERM at their defaults in the child, as in a shell's foreground job: a test runner started
    in the background (nohup, ``&``) passes its ignored SIGINT on, and pyodl leaves an ignored signal alone."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _interrupt_when(args: list[str], marker: str, sig: int, tmp_path: Path) -> tuple[int, str, float]:
    """Runs ``pyodl ARGS`` with its own temporary folder, sends ``sig`` once ``marker`` shows on its stderr,
    and returns the exit status, the stderr and the seconds from the signal to the exit."""
    env = {**os.environ, "TMPDIR": str(tmp_path / "tmp")}
    (tmp_path / "tmp").mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "pyodl.cli", *args], stderr=subprocess.PIPE, text=True,
                            env=env, cwd=tmp_path, preexec_fn=_as_a_terminal_starts_it)
    assert proc.stderr is not None
    seen: list[str] = []
    reader = threading.Thread(target=lambda: seen.extend(iter(lambda: proc.stderr.read(1), "")), daemon=True)
    reader.start()
    deadline = time.monotonic() + 120
    while marker not in "".join(seen) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, f"exited before {marker!r}: {''.join(seen)[-2000:]}"
    proc.send_signal(sig)
    t0 = time.monotonic()
    status = proc.wait(timeout=30)
    elapsed = time.monotonic() - t0
    reader.join(timeout=5)
    return status, "".join(seen), elapsed


def test_ctrl_c_during_pretraining_exits_130_with_one_line_and_writes_nothing(tmp_path: Path) -> None:
    status, err, elapsed = _interrupt_when(
        ["personalize", "--subjects", "1", "--input", "20", "--pretrain-epochs", "500", "--out", "out",
         "--cache", "cache"], "pretraining", signal.SIGINT, tmp_path)
    assert status == 130 and elapsed < 1.0, err[-2000:]
    assert err.rstrip().endswith("pyodl personalize: interrupted") and "Traceback" not in err
    assert not (tmp_path / "out").exists()
    assert not list((tmp_path / "cache").glob("*")) if (tmp_path / "cache").exists() else True
    assert not list((tmp_path / "tmp").iterdir())


def test_sigterm_during_board_training_exits_143_and_removes_the_build_folder(tmp_path: Path) -> None:
    status, err, elapsed = _interrupt_when(
        ["personalize", "--subjects", "1", "--input", "20", "--pretrain-epochs", "1", "--epochs", "500",
         "--out", "out", "--no-cache"], "subject 1 TL", signal.SIGTERM, tmp_path)
    assert status == 143 and elapsed < 1.0, err[-2000:]
    assert err.rstrip().endswith("pyodl personalize: terminated") and "Traceback" not in err
    assert not (tmp_path / "out").exists() and not list((tmp_path / "tmp").iterdir())
