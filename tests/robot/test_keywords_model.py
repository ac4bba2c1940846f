"""The suites on a user's model that cannot run (``--variable MODEL:...``, Unicorn): a model too large for the
SRAM fails ram.robot with the link's overflow in bytes, a layer the device lacks fails with export's message,
a bad variable with the variable named. (That a model that fits passes every suite is
tests/cli/test_github_ci.py's: it runs them as the caller workflow does.)"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from robot.api import ExecutionResult

ROBOT = Path(__file__).parents[2] / "robot"


def _run(tmp_path: Path, suite: str, *variables: str) -> dict[str, tuple[str, str]]:
    """Robot on one suite with ``variables``; each test's status and message."""
    args = [a for v in variables for a in ("--variable", v)]
    subprocess.run([sys.executable, "-m", "robot", "--outputdir", str(tmp_path), "--console", "none", *args,
                    str(ROBOT / f"{suite}.robot")], check=False)
    result = ExecutionResult(str(tmp_path / "output.xml"))
    return {t.name: (t.status, t.message) for t in result.suite.all_tests}


def test_a_model_that_does_not_fit_fails_ram_with_the_overflow_in_bytes(tmp_path: Path,
                                                                        user_models: dict[str, Path]) -> None:
    tests = _run(tmp_path, "ram", f"MODEL:{user_models['oversized']}")
    status, message = tests["Your Model Fits And Trains"]
    assert list(tests) == ["Your Model Fits And Trains"] and status == "FAIL"
    assert re.fullmatch(r"the model does not fit in the STM32L496's 320 KB of SRAM: the link overflows it by \d+ "
                        r"bytes \(.*\)", message), message
    log = (tmp_path / "log.html").read_text()
    assert "estimated SRAM per item (bytes)" in log and "activations and errors (arena)" in log


def test_a_layer_the_device_lacks_fails_with_exports_message(tmp_path: Path, user_models: dict[str, Path]) -> None:
    tests = _run(tmp_path, "golden", f"MODEL:{user_models['unsupported']}")
    assert tests == {"Your Model Trains Like TensorFlow": (
        "FAIL", "ModelError: layer 'lstm' (LSTM): this layer type is not supported (supported: Conv1D, "
                "DepthwiseConv1D, SeparableConv1D, Dense, AveragePooling1D, MaxPooling1D, BatchNormalization, "
                "GlobalAveragePooling1D, GlobalMaxPooling1D, Flatten, ReLU, LeakyReLU, Softmax, Activation, Dropout, "
                "SpatialDropout1D)")}


def test_a_bad_variable_fails_every_model_test_with_its_name(tmp_path: Path, user_models: dict[str, Path]) -> None:
    tests = _run(tmp_path, "int8", f"MODEL:{user_models['fits']}", "MODE:half")
    assert len(tests) == 2
    assert all(t == ("FAIL", "ModelError: MODE: must be full or tl, got 'half'") for t in tests.values()), tests
