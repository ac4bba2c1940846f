"""The model suites with ``BACKEND:serial``: a board that `pyodl flash` programmed, reached over its serial line.
Here the board is the real firmware in a process of its own (pyodl.board.board_process), its console UART on a
socket, as a NUCLEO's is on /dev/ttyACM0. Every test a serial line can run passes (ram runs first and trains the
board, so golden shows that each test starts from the model's weights again); those that need power control
are skipped by their tag, with the reason."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from robot.api import ExecutionResult

from pyodl.board.board_process import BoardProcess
from pyodl.model.keras_io import load
from pyodl.robot.keywords import SERIAL_SKIPS
from pyodl.robot.suite_model import DATASET_WINDOWS
from pyodl.toolchain.firmware import Firmware, FirmwareBuilder

ROBOT = Path(__file__).parents[2] / "robot"


def test_the_model_suites_pass_over_a_serial_line_but_what_needs_power_control(
        tmp_path: Path, firmware_builder: FirmwareBuilder, user_models: dict[str, Path]) -> None:
    # What `pyodl flash u.keras --dataset-windows 32` builds and programs.
    model = load(user_models["fits"])
    firmware = firmware_builder.export_and_build(model, tmp_path / "flashed", dataset_windows=DATASET_WINDOWS)
    with BoardProcess(firmware.elf) as url:
        subprocess.run([sys.executable, "-m", "robot", "--outputdir", str(tmp_path), "--console", "none",
                        "--variable", "BACKEND:serial", "--variable", f"PORT:{url}",
                        "--variable", f"MODEL:{user_models['fits']}",
                        *(str(ROBOT / f"{suite}.robot") for suite in ("ram", "golden", "int8", "persist"))],
                       check=False)
    tests = {t.name: (t.status, t.message) for t in ExecutionResult(str(tmp_path / "output.xml")).suite.all_tests}
    skipped = {name: message for name, (status, message) in tests.items() if status == "SKIP"}
    assert set(skipped) == {"Saved Weights Survive A Power Cycle", "The Emulation Saves And Loads With Its Flash Slots",
                            "A Power Cut During Save Keeps The Previous Copy"}
    reason = f"skipped on BACKEND:serial (tag power-control): {SERIAL_SKIPS['power-control']}"
    assert set(skipped.values()) == {reason}
    passed = {name for name, (status, _) in tests.items() if status == "PASS"}
    assert passed == {"Your Model Fits And Trains", "Your Model Trains Like TensorFlow",
                      "Your Model: Personalization Then 8-bit Inference Matches TFLite",
                      "Your Model: Over UART Frames 4-bit Weights Match TFLite",
                      "Your Model: LOAD Brings Back The Saved Copy"}, tests


def test_a_board_running_another_model_is_refused_by_name(tmp_path: Path, paper_firmware: Firmware,
                                                           user_models: dict[str, Path]) -> None:
    with BoardProcess(paper_firmware.elf) as url:
        subprocess.run([sys.executable, "-m", "robot", "--outputdir", str(tmp_path), "--console", "none",
                        "--variable", "BACKEND:serial", "--variable", f"PORT:{url}",
                        "--variable", f"MODEL:{user_models['fits']}", str(ROBOT / "golden.robot")], check=False)
    (test,) = ExecutionResult(str(tmp_path / "output.xml")).suite.all_tests
    assert test.status == "FAIL" and "flash firmware built for this model" in test.message
    assert f"pyodl flash MODEL --dataset-windows {DATASET_WINDOWS}" in test.message
