"""The Cortex-M4F build of the Conv1D kernels (firmware/odl/conv1d.c: its inline-assembly 4 x 4 tiles and the
C tiles around them) and of ReLU (activation.c) against the portable references, bit for bit, on the simulated
board. The host's ctest
kernels_fast_vs_reference checks the C tiles; only the target compiles the assembly, so it is checked here,
on random shapes whose sizes exercise every tile remainder (rows and columns not multiples of 4, an odd number
of reduction steps)."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

from pyodl.board.unicorn import UnicornBoard

FIXTURES = Path(__file__).parent / "fixtures"
ROOT = Path(__file__).parents[2]
FORWARD, BACKWARD_INPUT, BACKWARD_PARAMS, RELU, RELU_BACKWARD = 1, 2, 3, 4, 5
MAX_N, MAX_C, MAX_K, MAX_F = 40, 24, 5, 24
SHAPES = 60


@pytest.fixture(scope="module")
def board(tmp_path_factory: pytest.TempPathFactory) -> UnicornBoard:
    gcc = shutil.which("arm-none-eabi-gcc")
    if gcc is None:
        pytest.fail("arm-none-eabi-gcc is missing: install the Debian/Ubuntu packages gcc-arm-none-eabi and "
                    "libnewlib-arm-none-eabi")
    elf = tmp_path_factory.mktemp("kernels") / "kernels.elf"
    # The firmware's flags (CMakeLists.txt, cmake/arm-none-eabi.cmake): -O3, -ffp-contract=off.
    result = subprocess.run(
        [gcc, "-mcpu=cortex-m4", "-mthumb", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard", "-O3", "-ffp-contract=off",
         "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-nostartfiles", "--specs=nano.specs",
         "--specs=nosys.specs", f"-I{ROOT / 'firmware' / 'odl'}", "-T", str(FIXTURES / "link.ld"), "-o", str(elf),
         str(FIXTURES / "crt0.S"), str(FIXTURES / "kernels.c"), str(ROOT / "firmware" / "odl" / "conv1d.c"),
         str(ROOT / "firmware" / "odl" / "activation.c"), "-lm"],
        capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    b = UnicornBoard(elf)
    b.run_until_idle()
    return b


def _put(board: UnicornBoard, name: str, values: np.ndarray) -> None:
    board.write(board.symbol_address(name), np.ascontiguousarray(values, dtype="<f4").tobytes())


def _get(board: UnicornBoard, name: str, count: int) -> bytes:
    return board.read(board.symbol_address(name), 4 * count)


def _run(board: UnicornBoard, command: int, n: int, c: int, k: int, f: int) -> None:
    for name, value in (("n", n), ("c", c), ("k", k), ("f", f), ("cmd", command)):
        board.write(board.symbol_address(name), struct.pack("<I", value))
    board.run_until_idle()


def _shapes(seed: int) -> list[tuple[int, int, int, int]]:
    rng = np.random.default_rng(seed)
    shapes = [(8, 4, 1, 4), (9, 3, 3, 8), (MAX_N, MAX_C, MAX_K, MAX_F)]  # 4 x 4 tiles only, odd kc, the largest
    while len(shapes) < SHAPES:
        k = int(rng.integers(1, MAX_K + 1))
        shapes.append((int(rng.integers(k, MAX_N + 1)), int(rng.integers(1, MAX_C + 1)), k,
                       int(rng.integers(1, MAX_F + 1))))
    return shapes


@pytest.mark.parametrize("command", [FORWARD, BACKWARD_INPUT, BACKWARD_PARAMS])
def test_the_target_kernels_equal_their_references_bit_for_bit(board: UnicornBoard, command: int) -> None:
    rng = np.random.default_rng(command)
    for n, c, k, f in _shapes(command):
        m_out = n - k + 1
        _put(board, "x", rng.uniform(-2, 2, n * c))
        _put(board, "w", rng.uniform(-1, 1, k * c * f))
        _put(board, "b", rng.uniform(-0.5, 0.5, f))
        _put(board, "da", rng.uniform(-1, 1, m_out * f))
        # NaN everywhere else: an output a kernel skips cannot match
        _put(board, "fast", np.full(MAX_K * MAX_C * MAX_F, np.nan))
        _put(board, "ref", np.full(MAX_K * MAX_C * MAX_F, np.nan))
        if command == BACKWARD_PARAMS:
            _put(board, "fast", rng.uniform(-1, 1, k * c * f))  # the gradient accumulated so far
            _put(board, "fast_b", rng.uniform(-1, 1, f))
        _run(board, command, n, c, k, f)
        count = {FORWARD: m_out * f, BACKWARD_INPUT: n * c, BACKWARD_PARAMS: k * c * f}[command]
        fast, ref = _get(board, "fast", count), _get(board, "ref", count)
        assert fast == ref, f"shape n={n} c={c} k={k} f={f}"
        assert not np.isnan(np.frombuffer(fast, "<f4")).any()
        if command == BACKWARD_PARAMS:
            assert _get(board, "fast_b", f) == _get(board, "ref_b", f)


def test_the_target_relu_equals_its_reference_on_every_kind_of_float(board: UnicornBoard) -> None:
    """Outputs and mask words: NaN of either sign kept (mask 0), zeros of either sign and negatives to +0, +inf
    kept; subnormals too (crt0.S leaves FPSCR.FZ clear, so here they compare as nonzero)."""
    rng = np.random.default_rng(4)
    special = np.array([np.nan, -np.nan, 0.0, -0.0, np.inf, -np.inf, 1e-45, -1e-45, 1.5, -1.5], dtype="<f4")
    for n in (1, 31, 32, 33, 64, MAX_N * MAX_C):
        values = rng.uniform(-1, 1, n).astype("<f4")
        values[rng.integers(0, n, size=min(n, 10))] = special[: min(n, 10)]
        _put(board, "x", values)
        _run(board, RELU, n, 0, 0, 0)
        assert _get(board, "fast", n) == _get(board, "ref", n), f"n={n}"
        words = (n + 31) // 32
        assert _get(board, "fast_mask", words) == _get(board, "ref_mask", words), f"n={n}"


def test_the_target_relu_backward_equals_its_reference(board: UnicornBoard) -> None:
    """Every mask pattern's zeros, partial last words included; the elements past n stay as they were."""
    rng = np.random.default_rng(5)
    for n in (1, 31, 32, 33, 95, MAX_N * MAX_C):
        words = (n + 31) // 32
        masks = rng.integers(0, 2**32, size=words, dtype=np.uint64).astype("<u4")
        masks[0] = 0 if n < 40 else 0xFFFFFFFF  # all cleared, or all passed
        board.write(board.symbol_address("fast_mask"), masks.tobytes())
        _put(board, "da", rng.uniform(-1, 1, n))
        _put(board, "fast", np.full(MAX_K * MAX_C * MAX_F, np.nan))
        _put(board, "ref", np.full(MAX_K * MAX_C * MAX_F, np.nan))
        _run(board, RELU_BACKWARD, n, 0, 0, 0)
        assert _get(board, "fast", n + 1) == _get(board, "ref", n + 1), f"n={n}"
