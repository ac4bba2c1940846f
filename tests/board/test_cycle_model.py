"""The Cortex-M4 cycle model (pyodl/board/cycle_model.py and the native hook): the TRM's rules one by one on
decoded instructions, and micro-kernels on the Unicorn board whose cycles per loop iteration are added up
here by hand from the TRM tables (tests/board/fixtures/cycles.S)."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from pyodl.board.cycle_model import BlockCost, describe_block, fetch_stall_cycles, instruction_costs
from pyodl.board.unicorn import UnicornBoard

FIXTURES = Path(__file__).parent / "fixtures"
BASE = 0x0800_0100  # 8-byte aligned, as the flash reads are


def _cycles(hex_code: str) -> list[int]:
    return [c for _a, _s, c in instruction_costs(bytes.fromhex(hex_code.replace(" ", "")), BASE)]


def test_loads_pipeline_with_a_preceding_load_and_immediate_stores_take_one_cycle() -> None:
    # vldr s0,[r0]; vldr s1,[r0,#4]; ldr r3,[r1]; str r3,[r1,#8]; vstr s3,[r1,#8]
    assert _cycles("90ed000a d0ed010a 0b68 8b60 c1ed023a") == [2, 1, 1, 1, 1]


def test_an_address_computed_by_the_previous_instruction_stalls_one_cycle() -> None:
    # adds r2, r1, #4; ldr r3, [r2]   |   adds r5, r1, #4; ldr r3, [r1]
    assert _cycles("0a1d 1368") == [1, 3]
    assert _cycles("0d1d 0b68") == [1, 2]


def test_fpu_table_rows() -> None:
    # vmul s2; vadd s7, s3, s2 (uses the vmul's result at once: 1 + 1, table 7-1's note); vmls s8; vfma s8 (the
    # addend is read a cycle later: no wait); vdiv; vsqrt; vldmia r1, {s4-s7}: 1 + 4; vpush {s16-s17}: 1 + 2;
    # vmov r0, s0 (a float to a core register): 2
    code = "20ee201a 71ee813a 02ee424a a2ee824a c2ee024a b1ee c22a 91ec 042a 2ded 028a 10ee 100a"
    assert _cycles(code) == [1, 2, 3, 3, 14, 14, 5, 3, 2]


def test_an_fp_result_used_by_the_next_instruction_costs_one_more_cycle() -> None:
    # vmul s2, s0, s1; vadd s3, s3, s2: waits   |   vmul s2; vmul s4, s0, s1; vadd s3, s3, s2: does not
    assert _cycles("20ee201a 71ee811a") == [1, 2]
    assert _cycles("20ee201a 20ee202a 71ee811a") == [1, 1, 1]
    # vadd s3, s3, s2; vstr s3, [r1, #8]: the store reads the sum at once
    assert _cycles("71ee811a c1ed021a") == [1, 2]


def test_multiply_and_multiple_transfers() -> None:
    # muls r0, r1; mla r5, r3, r4, r5 (1 on the Cortex-M4, 2 on the M3); push {r4, r5, lr}: 1 + 3; ldrd: 1 + 2
    assert _cycles("4843 03fb0455 30b5 d0e90023") == [1, 1, 4, 3]


@pytest.mark.parametrize(
    ("hex_code", "taken"),
    [
        ("fee7", 1),  # b .: immediate, speculated
        ("08b1", 1),  # cbz
        ("7047", 2),  # bx lr
        ("bde8 1080", 3),  # pop {r4, pc}: the PC from memory
        ("d0e8 00f0", 3),  # tbb
        ("0068", 0),  # ldr r0, [r0]: not a branch
    ],
)
def test_the_pipeline_refill_of_each_kind_of_branch(hex_code: str, taken: int) -> None:
    cost = describe_block(bytes.fromhex(hex_code.replace(" ", "")), BASE)
    assert cost.taken == taken


def test_flash_wait_states_with_and_without_prefetch() -> None:
    # three 64-bit flash reads whose instructions take 3, 2 and 3 cycles (costs given here, not decoded)
    costs = [(BASE, 4, 2), (BASE + 4, 4, 1), (BASE + 8, 4, 1), (BASE + 12, 4, 1), (BASE + 16, 4, 1),
             (BASE + 20, 2, 1), (BASE + 22, 2, 1)]
    assert fetch_stall_cycles(costs, 4, prefetch=False) == 12
    assert fetch_stall_cycles(costs, 4, prefetch=True) == 4 + (5 - 3) + (5 - 2)
    assert fetch_stall_cycles(costs, 0, prefetch=True) == 0


def test_a_block_that_does_not_decode_is_refused() -> None:
    with pytest.raises(ValueError, match="cannot decode"):
        describe_block(b"\xff\xff\xff\xff", BASE)


def test_describe_block_counts_instructions() -> None:
    assert describe_block(bytes.fromhex("0a1d1368fee7"), BASE) == BlockCost(3, 5, 1, 0, False)


# ----------------------------------------------------------------------------------------- on the board

FP, INTEGER, CALLS = 0, 1, 2
ACR_ICEN, ACR_PRFTEN = 1 << 9, 1 << 8


@pytest.fixture(scope="module")
def cycles_elf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    gcc = shutil.which("arm-none-eabi-gcc")
    if gcc is None:
        pytest.fail("arm-none-eabi-gcc is missing: install the Debian/Ubuntu package gcc-arm-none-eabi")
    elf = tmp_path_factory.mktemp("cycles") / "cycles.elf"
    result = subprocess.run(
        [gcc, "-mcpu=cortex-m4", "-mthumb", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard", "-nostdlib",
         "-T", str(FIXTURES / "link.ld"), "-o", str(elf), str(FIXTURES / "crt0.S"), str(FIXTURES / "cycles.S")],
        capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return elf


def _per_iteration(elf: Path, kernel: int, acr: int, n: int = 100, before: int | None = None) -> tuple[float, float]:
    """Cycles and instructions of one loop iteration: a run of 2n iterations minus a run of n, after a first
    run that sets FLASH_ACR (a changed ACR empties the instruction cache: the code around the loop would
    miss in one run and hit in the next)."""
    board = UnicornBoard(elf)
    board.run_until_idle()  # boot
    board.write(board.symbol_address("buffer"), struct.pack("<4f", 1.5, 2.0, 0.0, 1.0))
    if before is not None:  # the loop run (and priced) under another FLASH_ACR first
        for name, value in (("kernel", kernel), ("acr", before), ("iterations", n)):
            board.write(board.symbol_address(name), struct.pack("<I", value))
        board.run_until_idle()
    runs = []
    for iterations in (1, n, 2 * n):
        board.write(board.symbol_address("kernel"), struct.pack("<I", kernel))
        board.write(board.symbol_address("acr"), struct.pack("<I", acr))
        board.write(board.symbol_address("iterations"), struct.pack("<I", iterations))
        cycles, instructions = board.modelled_cycles(), board.executed_instructions()
        board.run_until_idle()
        runs.append((board.modelled_cycles() - cycles, board.executed_instructions() - instructions))
    board.close()
    return (runs[2][0] - runs[1][0]) / n, (runs[2][1] - runs[1][1]) / n


# By hand from the TRM: vldr 2, vldr after a load 1, vmul 1, vadd 1 + 1 (it uses the vmul's result at once),
# vstr with an immediate offset 1 + 1 (it stores the vadd's result at once), subs 1, bne taken 1 + P (immediate: 1).
FP_LOOP = 2 + 1 + 1 + 2 + 2 + 1 + 2


@pytest.mark.parametrize(
    ("kernel", "acr", "cycles", "instructions"),
    [
        (FP, ACR_ICEN, FP_LOOP, 7),
        # adds 1; ldr from the register it wrote 2 + 1; ldr after a load 1; str imm 1; mla 1; vldmia of 4: 1 + 4;
        # vmla 3; subs 1; bne 2
        (INTEGER, ACR_ICEN, 1 + 3 + 1 + 1 + 1 + 5 + 3 + 1 + 2, 9),
        # vdiv 14; bl 2; bx lr 1 + P (register: 2); bl 2; push {r4, lr} 1 + 2; pop {r4, pc} 1 + 2 + P (loaded: 3);
        # subs 1; bne 2
        (CALLS, ACR_ICEN, 14 + 2 + 3 + 2 + 3 + 6 + 1 + 2, 8),
        # 4 wait states, no cache, no prefetch: the 24-byte loop is three 64-bit flash reads of 4 cycles' wait
        (FP, 4, FP_LOOP + 3 * 4, 7),
        # with the prefetch: the first read waits 4; the next ones 5 minus the cycles of the previous 64 bits'
        # instructions (vldr + vldr: 3; vmul + vadd: 3)
        (FP, 4 | ACR_PRFTEN, FP_LOOP + 4 + 2 + 2, 7),
        # the loop stays in the instruction cache: no wait after the first iteration
        (FP, 4 | ACR_ICEN | ACR_PRFTEN, FP_LOOP, 7),
    ],
)
def test_micro_kernels_cost_what_the_trm_adds_up_to(cycles_elf: Path, kernel: int, acr: int, cycles: int,
                                                     instructions: int) -> None:
    assert _per_iteration(cycles_elf, kernel, acr) == (cycles, instructions)


def test_the_dwt_counter_reads_modelled_cycles(cycles_elf: Path) -> None:
    board = UnicornBoard(cycles_elf)
    board.run_until_idle()
    assert board.modelled_cycles() > board.executed_instructions() > 0
    board.close()


def test_a_new_flash_latency_reprices_the_blocks_already_seen(cycles_elf: Path) -> None:
    """The loop first runs at 0 wait states (no fetch stall priced), then without the cache at 4: it must pay
    the 4-wait-state fetches, not keep its first price."""
    assert _per_iteration(cycles_elf, FP, 4, before=ACR_ICEN) == (FP_LOOP + 3 * 4, 7)
