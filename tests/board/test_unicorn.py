"""The Unicorn STM32L496 model, exercised by small purpose-built firmware images (tests/board/fixtures/)."""

from __future__ import annotations

import shutil
import signal
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from elftools.elf.elffile import ELFFile

from pyodl.board import unicorn as uc_board
from pyodl.board.base import BoardError, power_up_sram
from pyodl.board.mailbox import MailboxTransport
from pyodl.board.uart import BoardUart, UartTransport
from pyodl.board.unicorn import UnicornBoard, native_counter_library
from pyodl.model.architecture import paper_model
from pyodl.network.board import BoardNetwork
from pyodl.toolchain.firmware import Firmware, FirmwareBuilder
from pyodl.toolchain.memory_map import SRAM1_BASE, SRAM1_SIZE, SRAM2_ALIAS, SRAM2_BASE

FIXTURES = Path(__file__).parent / "fixtures"
CFLAGS = [
    "-mcpu=cortex-m4",
    "-mthumb",
    "-mfpu=fpv4-sp-d16",
    "-mfloat-abi=hard",
    "-nostdlib",
    "-ffreestanding",
    "-O2",
    # Separate multiply and add roundings, so numpy's float32 arithmetic is the bit-exact reference.
    "-ffp-contract=off",
    "-T",
    str(FIXTURES / "link.ld"),
]

# probe.c's commands
CMD_STORE, CMD_LOAD, CMD_ECHO, CMD_FLOAT, CMD_HANG, CMD_CALL, CMD_TRAP = 1, 2, 3, 4, 5, 6, 7


@dataclass(frozen=True)
class Images:
    probe: Path
    probe_without_fpu: Path
    count: Path


@pytest.fixture(scope="session")
def images(tmp_path_factory: pytest.TempPathFactory) -> Images:
    gcc = shutil.which("arm-none-eabi-gcc")
    if gcc is None:
        pytest.fail(
            "arm-none-eabi-gcc is missing: install the Debian/Ubuntu packages "
            "gcc-arm-none-eabi and libnewlib-arm-none-eabi"
        )
    out = tmp_path_factory.mktemp("board-fixtures")

    def build(name: str, sources: list[str], *defines: str) -> Path:
        elf = out / f"{name}.elf"
        cmd = [gcc, *CFLAGS, *defines, "-o", str(elf), *(str(FIXTURES / s) for s in sources)]
        result = subprocess.run(cmd, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        return elf

    return Images(
        probe=build("probe", ["crt0.S", "probe.c"]),
        probe_without_fpu=build("probe_without_fpu", ["crt0.S", "probe.c"], "-DSKIP_CPACR"),
        count=build("count", ["crt0.S", "count.S"]),
    )


class Probe:
    """Drives probe.c's command loop the way pyodl drives the real firmware's mailbox."""

    def __init__(self, elf: Path, **kwargs: int) -> None:
        self.board = UnicornBoard(elf, **kwargs)
        self.elf = elf

    def u32(self, name: str, value: int | None = None) -> int:
        address = self.board.symbol_address(name)
        if value is not None:
            self.board.write(address, struct.pack("<I", value))
        return int(struct.unpack("<I", self.board.read(address, 4))[0])

    def f32(self, name: str, value: np.float32) -> None:
        self.board.write(self.board.symbol_address(name), np.float32(value).tobytes())

    def command(self, cmd: int, arg0: int = 0, arg1: int = 0, budget: int | None = None) -> int:
        self.u32("arg0", arg0)
        self.u32("arg1", arg1)
        self.u32("cmd", cmd)
        return self.board.run_until_idle(budget)

    def function_extent(self, name: str) -> range:
        with self.elf.open("rb") as stream:
            symtab = ELFFile(stream).get_section_by_name(".symtab")
            (sym,) = symtab.get_symbol_by_name(name)
            start = sym["st_value"] & ~1
            return range(start, start + sym["st_size"])


@pytest.fixture
def probe(images: Images) -> Iterator[Probe]:
    p = Probe(images.probe)
    p.board.run_until_idle()
    yield p
    p.board.close()


# ------------------------------------------------------------------ USART2


def test_hello_is_captured_on_usart2(images: Images) -> None:
    with UnicornBoard(images.probe) as board:
        assert board.uart_output() == b""
        board.run_until_idle()
        assert board.uart_output() == b"hello\n"
        assert board.uart_output() == b"", "uart_output consumes what it returns"


def test_echo_reads_rx_bytes_and_writes_them_back(probe: Probe) -> None:
    probe.board.uart_output()
    probe.command(CMD_ECHO)
    assert probe.board.uart_output() == b"", "RXNE must stay clear while nothing is queued"
    data = bytes(range(256))
    probe.board.uart_input(data[:100])
    probe.board.uart_input(data[100:])
    probe.command(CMD_ECHO)
    assert probe.board.uart_output() == data


# ------------------------------------------------------------------ instruction counting


def test_instruction_count_is_exact(images: Images) -> None:
    with UnicornBoard(images.count) as board:
        # crt0 from reset: 3 ldr; cmp+bhs (empty .data); 2 ldr+movs; one .bss word (cmp, bhs, str, b);
        # cmp+bhs; the CPACR write (ldr, ldr, orr, str, dsb, isb); bl main; bl odl_idle.
        assert board.run_until_idle() == 3 + 2 + 3 + 4 + 2 + 6 + 1 + 1
        iterations = board.symbol_address("iterations")
        total = board.executed_instructions()
        assert total == 22
        for n in (1, 7, 1000, 100_000):
            board.write(iterations, struct.pack("<I", n))
            executed = board.run_until_idle()
            assert executed == 5 + 2 * n
            total += executed
            assert board.executed_instructions() == total
        assert board.last_run_mips > 0


def test_a_power_cycle_boots_afresh_from_undefined_sram(images: Images) -> None:
    with UnicornBoard(images.count) as board:
        board.run_until_idle()
        iterations = board.symbol_address("iterations")
        board.write(iterations, struct.pack("<I", 5))
        board.reset()
        assert board.executed_instructions() == 0 and not board.parked()
        # Neither kept nor zeroed: the power-up contents, which the boot's .bss clear then overwrites.
        offset = iterations - SRAM1_BASE
        assert board.read(iterations, 4) == power_up_sram(1)[0][offset:offset + 4] != bytes(4)
        assert board.run_until_idle() == 22 and board.parked()
        assert board.read(iterations, 4) == bytes(4)


def test_sram_powers_up_to_other_contents_each_time_and_the_same_in_every_run(images: Images) -> None:
    first = [UnicornBoard(images.count) for _ in range(2)]
    contents = [b.read(SRAM1_BASE + SRAM1_SIZE - 64, 64 + 64) for b in first]
    assert contents[0] == contents[1] == power_up_sram(0)[0][-64:] + power_up_sram(0)[1][:64]
    first[0].reset()
    assert first[0].read(SRAM1_BASE + SRAM1_SIZE - 64, 128) not in (contents[0], bytes(128))
    for b in first:
        b.close()


def test_an_elf_load_keeps_sram_as_renodes_machine_reset_does(images: Images) -> None:
    """Renode's `machine Reset` and `LoadELF` leave the memories' bytes alone; so does the Unicorn board, or
    host code that trusts a reset to clear RAM would pass here and fail under Renode."""
    with UnicornBoard(images.count) as board:
        board.run_until_idle()
        marker = SRAM1_BASE + SRAM1_SIZE - 16
        board.write(marker, b"kept across load")
        board.load_elf(images.count)
        assert board.read(marker, 16) == b"kept across load" and not board.parked()


# ------------------------------------------------------------------ memory map


def test_write_past_the_end_of_sram_names_address_and_pc(probe: Probe) -> None:
    with pytest.raises(BoardError, match=r"write of unmapped address 0x20050000 .*at PC 0x[0-9a-f]{8}") as err:
        probe.command(CMD_STORE, 0x2005_0000, 1)
    pc = int(str(err.value).rsplit("PC 0x", 1)[1][:8], 16)
    assert pc in probe.function_extent("store32")
    with pytest.raises(BoardError, match="faulted earlier"):
        probe.board.run_until_idle()


def test_read_of_an_unmodelled_peripheral_fails(probe: Probe) -> None:
    with pytest.raises(BoardError, match=r"read of unmapped address 0x40010000 .*at PC 0x") as err:
        probe.command(CMD_LOAD, 0x4001_0000)
    pc = int(str(err.value).rsplit("PC 0x", 1)[1][:8], 16)
    assert pc in probe.function_extent("load32")


def test_guest_write_to_flash_fails(probe: Probe) -> None:
    with pytest.raises(BoardError, match="write to read-only flash at 0x08000100"):
        probe.command(CMD_STORE, 0x0800_0100, 0xDEAD_BEEF)


@pytest.mark.parametrize(
    ("target", "message"),
    [
        (0x3000_0000, "instruction fetch of unmapped address 0x30000000"),
        (0x4000_4400, "instruction fetch of non-executable address 0x40004400"),
    ],
)
def test_fetch_outside_code_memory_fails(probe: Probe, target: int, message: str) -> None:
    with pytest.raises(BoardError, match=message):
        probe.command(CMD_CALL, target | 1)


def test_invalid_instruction_is_reported_with_its_pc(probe: Probe) -> None:
    with pytest.raises(BoardError, match=r"Invalid instruction.* at PC 0x[0-9a-f]{8}") as err:
        probe.command(CMD_TRAP)
    pc = int(str(err.value).rsplit("PC 0x", 1)[1][:8], 16)
    assert probe.board.read(pc, 2)[1] == 0xDE, "the PC is the UDF instruction (0xDEnn)"


def test_host_access_outside_ram_and_flash_fails(probe: Probe) -> None:
    with pytest.raises(BoardError, match="0x40004400"):
        probe.board.read(0x4000_4400, 4)
    with pytest.raises(BoardError, match="0x2004fffe"):
        probe.board.write(0x2004_FFFE, bytes(4))


def test_sram2_alias_is_the_same_memory(probe: Probe) -> None:
    probe.command(CMD_STORE, SRAM2_ALIAS + 0x10, 0x1234_5678)
    assert probe.board.read(SRAM2_BASE + 0x10, 4) == struct.pack("<I", 0x1234_5678)

    probe.board.write(SRAM2_BASE + 0xFFFC, struct.pack("<I", 0xCAFE_F00D))
    probe.command(CMD_LOAD, SRAM2_ALIAS + 0xFFFC)
    assert probe.u32("result") == 0xCAFE_F00D
    probe.command(CMD_STORE, SRAM2_BASE + 0x20, 0xA5A5_0001)
    assert probe.board.read(SRAM2_ALIAS + 0x20, 4) == struct.pack("<I", 0xA5A5_0001)


def test_sram1_and_sram2_are_contiguous_for_the_host(probe: Probe) -> None:
    probe.board.write(SRAM2_BASE - 4, bytes(range(8)))
    assert probe.board.read(SRAM2_ALIAS, 4) == bytes(range(4, 8))


# ------------------------------------------------------------------ FPU


def test_float_arithmetic_is_bit_exact(probe: Probe) -> None:
    a, b, c = np.float32(1.1), np.float32(3.3), np.float32(-7.7)
    probe.f32("fa", a)
    probe.f32("fb", b)
    probe.f32("fc", c)
    probe.command(CMD_FLOAT)
    expected = np.float32(np.float32(np.float32(a / b) * c) - a)
    assert probe.board.read(probe.board.symbol_address("fresult"), 4) == expected.tobytes()


def test_vfp_before_cpacr_enable_fails(images: Images) -> None:
    p = Probe(images.probe_without_fpu)
    assert p.board.run_until_idle() > 0, "integer code runs without the FPU"
    with pytest.raises(BoardError, match=r"VFP instruction at PC 0x[0-9a-f]{8} before CPACR enabled CP10/CP11"):
        p.command(CMD_FLOAT)


# ------------------------------------------------------------------ budget


def test_budget_stops_a_firmware_that_never_parks(probe: Probe) -> None:
    before = probe.board.executed_instructions()
    with pytest.raises(BoardError, match=r"budget of 100000 instructions \(PC 0x"):
        probe.command(CMD_HANG, budget=100_000)
    # The hang is a one-instruction block, so the run stops exactly at the budget.
    assert probe.board.executed_instructions() - before == 100_000
    with pytest.raises(BoardError, match="budget of 1000 instructions"):
        probe.board.run_until_idle(budget=1000)


def test_constructor_budget_applies_to_every_run(images: Images) -> None:
    p = Probe(images.probe, budget=50_000)
    p.board.run_until_idle()
    before = p.board.executed_instructions()
    with pytest.raises(BoardError, match="budget of 50000 instructions"):
        p.command(CMD_HANG)
    assert 50_000 - 16 <= p.board.executed_instructions() - before <= 50_000


# ------------------------------------------------------------------ symbols and the native counter


def test_symbol_address(probe: Probe) -> None:
    idle = probe.board.symbol_address("odl_idle")
    assert idle % 2 == 0, "functions are returned without the Thumb bit"
    assert probe.board.read(idle, 2) == struct.pack("<H", 0x4770), "odl_idle is `bx lr` in crt0.S"
    with pytest.raises(BoardError, match="no_such_symbol"):
        probe.board.symbol_address("no_such_symbol")


def test_native_counter_is_cached_per_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    native_counter_library.cache_clear()
    try:
        native_counter_library()
        (built,) = (tmp_path / "pyodl").glob("uc_block_counter-*.so")
        mtime = built.stat().st_mtime_ns
        native_counter_library.cache_clear()
        native_counter_library()
        assert built.stat().st_mtime_ns == mtime, "the cached library is reused, not rebuilt"
    finally:
        native_counter_library.cache_clear()


def test_missing_c_compiler_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CC", "/nonexistent/cc")
    native_counter_library.cache_clear()
    try:
        with pytest.raises(BoardError, match="`gcc`"):
            uc_board.native_counter_library()
    finally:
        native_counter_library.cache_clear()


def test_native_counter_is_warning_free_c99_with_and_without_unicorn_h(tmp_path: Path) -> None:
    """The counter is C like the firmware: C99, -Wall -Wextra -pedantic, warnings as errors, both with the
    wheel's unicorn.h (the prototypes of the library loaded) and with its own fallback declarations."""
    include = Path(uc_board.unicorn.__file__).parent / "include"
    for extra in ([], [f"-I{include}", "-DPYODL_HAVE_UNICORN_H"]):
        proc = subprocess.run(["cc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-fsyntax-only", *extra,
                               str(uc_board.COUNTER_SOURCE)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr


def test_ctrl_c_stops_training_over_the_uart(paper_firmware: Firmware) -> None:
    """Over UART the firmware calls into Python for every byte, and a KeyboardInterrupt raised inside such a
    callback is printed and dropped by ctypes: Ctrl-C must still stop the run, within a second, and the
    board must then refuse to go on from a half-executed command. A step is mostly emulation, but the host
    also frames the batch between two commands; a Ctrl-C that lands there interrupts no command, so the
    attempt is made again on a fresh board (three in a row there would be a failure)."""
    # As in a terminal: a test run started in the background by a non-interactive shell inherits SIGINT ignored,
    # and the board leaves an ignored signal alone.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        _stop_training_with_ctrl_c(paper_firmware)
    finally:
        signal.signal(signal.SIGINT, previous)


def _stop_training_with_ctrl_c(paper_firmware: Firmware) -> None:
    x = np.random.default_rng(0).normal(size=(8, 40, 3)).astype(np.float32)
    y = np.arange(8) % 6
    for _ in range(3):
        with UnicornBoard(paper_firmware.elf) as board:
            net = BoardNetwork(UartTransport(BoardUart(board)), paper_model(40, 0).arch)
            timer = threading.Timer(1.0, signal.pthread_kill, (threading.main_thread().ident, signal.SIGINT))
            t0 = time.monotonic()
            timer.start()
            try:
                with pytest.raises(KeyboardInterrupt):
                    while time.monotonic() - t0 < 20:
                        net.train_step(x, y, 0.01)
            finally:
                timer.cancel()
            assert time.monotonic() - t0 < 2.0
            try:
                board.run_until_idle()
            except BoardError as exc:
                assert "interrupted" in str(exc)
                return
    pytest.fail("three Ctrl-C in a row landed between commands")


def test_a_stack_overflow_faults_below_sram(tmp_path: Path) -> None:
    """The stack sits at the bottom of SRAM: a firmware built with 128 bytes of stack (a training step needs
    ~300) runs off the start of SRAM, and the board names the write and the PC instead of letting the
    stack overwrite the mailbox, as it did when the stack sat above it."""
    builder = FirmwareBuilder(tmp_path / "build", stack_bytes=128)
    try:
        firmware = builder.export_and_build(paper_model(40, 0), tmp_path / "model")
        with UnicornBoard(firmware.elf) as board, pytest.raises(BoardError, match=r"write of unmapped address "
                                                                                    r"0x1fff[0-9a-f]{4}"):
            BoardNetwork(MailboxTransport(board), paper_model(40, 0).arch).accumulate(
                np.ones((40, 3), np.float32), 1)
    finally:
        builder.close()
