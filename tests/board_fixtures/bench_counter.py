"""Emulation speed with and without the native instruction counter (not a test: run it by hand).

    .venv/bin/python tests/board_fixtures/bench_counter.py [iterations]

Times work() of bench.c, entered directly with LR = odl_idle, in three set-ups of the same board: no block
hook (``emu_start(until=odl_idle)``), Unicorn's own ``count=`` limit, and the native block hook that
UnicornBoard uses. MIPS are the instructions the native hook counts divided by the best of three wall times.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from unicorn import arm_const
from unicorn.unicorn_py3.unicorn import uclib

from pyodl.board.unicorn import _NO_UNTIL, UnicornBoard

HERE = Path(__file__).parent
CFLAGS = ["-mcpu=cortex-m4", "-mthumb", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard", "-nostdlib", "-ffreestanding", "-O2"]


def measure(elf: Path, iterations: int, mode: str) -> tuple[float, int]:
    best, counted = float("inf"), 0
    for _ in range(3):
        board = UnicornBoard(elf)
        board.run_until_idle()
        uc, idle, header = board._uc, board._idle, board._header
        assert uc is not None and header is not None
        if mode != "native":
            uclib.uc_hook_del(uc._uch, board._block_hook)
        uc.ctl_flush_tb()
        uc.reg_write(arm_const.UC_ARM_REG_R0, iterations)
        uc.reg_write(arm_const.UC_ARM_REG_LR, idle | 1)
        header.stop_armed = 1
        header.limit = 2**63
        start = header.executed
        t0 = time.perf_counter()
        if mode == "none":
            uc.emu_start(board.symbol_address("work") | 1, idle)
        elif mode == "count=":
            uc.emu_start(board.symbol_address("work") | 1, idle, count=2**40)
        else:
            uc.emu_start(board.symbol_address("work") | 1, _NO_UNTIL)
        best = min(best, time.perf_counter() - t0)
        assert uc.reg_read(arm_const.UC_ARM_REG_PC) == idle
        counted = max(counted, header.executed - start)
        board.close()
    return best, counted


def main() -> None:
    iterations = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    with tempfile.TemporaryDirectory() as tmp:
        elf = Path(tmp) / "bench.elf"
        sources = [str(HERE / "crt0.S"), str(HERE / "bench.c")]
        subprocess.run(
            ["arm-none-eabi-gcc", *CFLAGS, "-T", str(HERE / "link.ld"), "-o", str(elf), *sources], check=True
        )
        results = {mode: measure(elf, iterations, mode) for mode in ("none", "count=", "native")}
    instructions = results["native"][1]
    for mode, (seconds, _) in results.items():
        print(
            f"{mode:8s} {seconds * 1e3:8.1f} ms {instructions / seconds / 1e6:8.1f} MIPS ({instructions} instructions)"
        )


if __name__ == "__main__":
    main()
