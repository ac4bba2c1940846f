"""RenodeBoard against a fake monitor that answers in Renode's printed formats, and the platform files.

The fake is deliberately small: it keeps memory, the CPU's halt state and instruction count, and runs a
scripted firmware (``steps_to_idle`` instructions from wherever it is to the next ``odl_idle``). Output
formats follow Renode's ``MonitorCommands.PrintActionResult``: integers as zero-padded hex of their
type's width, byte arrays as ``[\\r\\n0x01, 0x02, ..., \\r\\n]`` with a line break every ten items,
RegisterValue (PC) as unpadded lowercase hex, booleans as ``True``/``False``.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest

from pyodl.board.base import BoardError, Read, Run, Write, power_up_sram
from pyodl.board.renode import MONITOR_HELPER, PLATFORM, RenodeBoard
from pyodl.toolchain.memory_map import (
    FLASH_BASE,
    FLASH_SIZE,
    LPUART1_BASE,
    SRAM1_BASE,
    SRAM1_SIZE,
    SRAM2_ALIAS,
    SRAM2_BASE,
    SRAM2_SIZE,
    USART2_BASE,
)

sys.path.insert(0, str(Path(__file__).parent / "fixtures"))
from monitor_python import MonitorPython  # fixtures/ is not a package
from unicorn_monitor import renode_list, split_commands

REPO = Path(__file__).resolve().parents[2]
IDLE = 0x0800_0124
HARDFAULT = 0x0800_0200
MAILBOX = 0x2000_0000
CONSOLE_WORD = 0x0800_0400  # odl_console_uart: the firmware's console UART, LPUART1
BUSY_PC = 0x0800_0180


class MonitorError(RuntimeError):
    """What Robot's `Execute Command` raises when the monitor reports an error."""


class FakeRenode:
    def __init__(self, mips: int = 100) -> None:
        self.commands: list[str] = []
        self.machines: list[str] = []
        self.memory: dict[int, int] = {}
        self.symbols = {"odl_idle": IDLE | 1, "odl_mailbox": MAILBOX, "odl_console_uart": CONSOLE_WORD}
        self.strip_thumb = True  # Renode's Symbol drops bit 0 of Thumb symbols on ARM ELFs
        self.mips = mips
        self.executed = 0
        self.halted = False
        self.pc = 0x0800_0100
        self.steps_to_idle = 1000
        self.fault_after: int | None = None
        self.hooks: dict[int, str] = {}
        self.uart_file: Path | None = None
        self.usart_cr1 = 0x0D
        self.received: list[int] = []
        self.run_for: list[int] = []  # microseconds of every RunFor pyodl_transact took
        self.reset_macro = ""
        self.reset_runs: list[str] = []  # the reset macro as it was at each `machine Reset`
        self.loaded = False  # the emulation came from `Load`
        self.python = MonitorPython(_FakeMachine(self), self._run_for)
        # vector table: initial SP, reset, NMI, HardFault
        for i, word in enumerate([0x2004_0000, 0x0800_0101, 0x0800_0201, HARDFAULT | 1]):
            self.poke(FLASH_BASE + 4 * i, word.to_bytes(4, "little"))
        self.poke(CONSOLE_WORD, LPUART1_BASE.to_bytes(4, "little"))

    def poke(self, address: int, data: bytes) -> None:
        for i, b in enumerate(data):
            self.memory[address + i] = b

    def emit(self, data: bytes) -> None:
        assert self.uart_file is not None
        with self.uart_file.open("ab") as f:
            f.write(data)

    def _run_for(self, micros: int) -> None:
        self.run_for.append(micros)
        self.run(micros)

    def __call__(self, command: str) -> str:
        self.commands.append(command)
        # The monitor runs `;`-separated commands in turn and prints their outputs one after the other.
        return "".join(self.answer(part) for part in split_commands(command))

    def answer(self, command: str) -> str:
        if command == "numbersMode Hexadecimal":
            return ""
        if command.startswith("include @"):
            self.python.include(Path(command[len("include @"):].replace("\\ ", " ")))
            return ""
        if m := re.fullmatch(r'python "(.*)"', command):
            return self.python.python(m[1])
        if command == "emulation Names":
            return renode_list([]).replace("[\r\n", "[\r\n" + "".join(f"{m}, " for m in self.machines))
        if m := re.fullmatch(r'mach (create|rem) "(\w+)"', command):
            (self.machines.append if m[1] == "create" else self.machines.remove)(m[2])
            self.executed, self.halted, self.hooks = 0, False, {}
            return ""
        if command.startswith(("machine LoadPlatformDescription @", "sysbus LoadELF @",
                               "sysbus.cpu VectorTableOffset 0x")):
            return ""
        if m := re.fullmatch(r'mach set "(\w+)"', command):
            if m[1] not in self.machines:
                raise MonitorError(f"machine {m[1]} not found")
            return ""
        if m := re.fullmatch(r'macro reset "(.*)"', command):
            self.reset_macro = m[1]
            return ""
        if command == "machine Reset":  # peripherals reset, memories kept; then the machine's reset macro
            self.executed, self.halted = 0, False
            if not self.loaded:  # Renode 1.16.1 runs no reset macro for a machine of a loaded emulation
                self.reset_runs.append(self.reset_macro)
                return "".join(self.answer(part) for part in split_commands(self.reset_macro))
            return ""
        if command.startswith(("Save @", "Load @")) or command == "Clear":
            self.loaded |= command.startswith("Load")
            return ""
        if command == "sysbus.cpu RemoveAllHooks":
            self.hooks = {}
            return ""
        if m := re.fullmatch(r'sysbus GetSymbolAddress "(\w+)"', command):
            if m[1] not in self.symbols:
                raise MonitorError(f"Could not find any address for symbol: {m[1]}")
            address = self.symbols[m[1]] & ~1 if self.strip_thumb else self.symbols[m[1]]
            return f"0x{address:016X}\r\n"
        if m := re.fullmatch(r"sysbus ReadBytes (0x[0-9a-f]+) (\d+)", command):
            address, count = int(m[1], 16), int(m[2])
            return renode_list([self.memory.get(address + i, 0) for i in range(count)])
        if m := re.fullmatch(r"sysbus WriteBytes \[([0-9a-fx, ]*)\] (0x[0-9a-f]+)", command):
            values = [int(v, 16) for v in m[1].split(", ")] if m[1] else []
            self.poke(int(m[2], 16), bytes(values))
            return ""
        if m := re.fullmatch(r"sysbus LoadBinary @(\S+) (0x[0-9a-f]+)", command):
            self.poke(int(m[2], 16), Path(m[1].replace("\\ ", " ")).read_bytes())
            return ""
        if m := re.fullmatch(r'sysbus.cpu AddHook (0x[0-9a-f]+) "self.IsHalted = True"', command):
            self.hooks[int(m[1], 16)] = "halt"
            return ""
        if m := re.fullmatch(r"sysbus.lpuart1 (Create|Close)FileBackend @(\S+)( true)?", command):
            self.uart_file = Path(m[2].replace("\\ ", " ")) if m[1] == "Create" else None
            return ""
        if command == "sysbus.cpu ExecutedInstructions":
            return f"0x{self.executed:016X}\r\n"
        if command == "sysbus.cpu PerformanceInMips":
            return f"0x{self.mips:08X}\r\n"
        if command == "sysbus.cpu PC":
            return f"0x{self.pc:x}\r\n"
        if command == "sysbus.cpu IsHalted":
            return f"{self.halted}\r\n"
        if command == "sysbus.cpu IsHalted false":
            self.halted = False
            return ""
        if m := re.fullmatch(r'emulation RunFor "(\d+)\.(\d{6})"', command):
            self.run(int(m[1]) * 1_000_000 + int(m[2]))
            return ""
        if m := re.fullmatch(r"sysbus ReadDoubleWord (0x[0-9a-f]+)", command):
            assert int(m[1], 16) == LPUART1_BASE
            return f"0x{self.usart_cr1:08X}\r\n"
        if m := re.fullmatch(r"sysbus.lpuart1 WriteChar (0x[0-9a-f]{2})", command):
            self.received.append(int(m[1], 16))
            return ""
        raise MonitorError(f"fake Renode does not know: {command}")

    def run(self, micros: int) -> None:
        grant = micros * self.mips
        if self.halted:
            return
        if self.fault_after is not None and self.fault_after <= grant:
            self.executed += self.fault_after
            self.pc, self.halted, self.fault_after = HARDFAULT, HARDFAULT in self.hooks, None
            return
        if self.steps_to_idle <= grant and IDLE in self.hooks:
            self.executed += self.steps_to_idle
            self.pc, self.halted = IDLE, True
            return
        self.executed += grant
        self.steps_to_idle -= grant
        self.pc = BUSY_PC


class _FakeMachine:
    """``monitor.Machine`` for the helper: the fake's memory, CPU and console UART."""

    def __init__(self, fake: FakeRenode) -> None:
        self.SystemBus = SimpleNamespace(
            WriteBytes=lambda data, address, start, count: fake.poke(address, bytes(data[start:start + count])),
            ReadBytes=lambda address, count: bytes(fake.memory.get(address + i, 0) for i in range(count)),
            ReadDoubleWord=lambda address: fake.usart_cr1 if address == LPUART1_BASE else 0)
        self._fake = fake

    def __getitem__(self, name: str) -> object:
        fake = self._fake
        if name == "sysbus.lpuart1":
            return SimpleNamespace(WriteChar=fake.received.append)
        assert name == "sysbus.cpu", name
        return _FakeCpu(fake)


class _FakeCpu:
    def __init__(self, fake: FakeRenode) -> None:
        self._fake = fake
        self.PerformanceInMips = fake.mips

    @property
    def ExecutedInstructions(self) -> int:  # noqa: N802 - Renode's names
        return self._fake.executed

    @property
    def IsHalted(self) -> bool:  # noqa: N802
        return self._fake.halted

    @IsHalted.setter
    def IsHalted(self, value: bool) -> None:  # noqa: N802
        self._fake.halted = value

    @property
    def PC(self) -> SimpleNamespace:  # noqa: N802
        return SimpleNamespace(RawValue=self._fake.pc)


@pytest.fixture
def elf(tmp_path: Path) -> Path:
    path = tmp_path / "fw dir" / "pyodl.elf"  # a space: the monitor's @path needs it escaped
    path.parent.mkdir()
    path.write_bytes(b"\x7fELF")
    return path


@pytest.fixture
def renode() -> FakeRenode:
    return FakeRenode()


@pytest.fixture
def board(renode: FakeRenode, elf: Path, tmp_path: Path) -> RenodeBoard:
    b = RenodeBoard(renode, workdir=tmp_path)
    b.load_elf(elf)
    renode.commands.clear()
    return b


# Every read, write and run: one pyodl_transact (renode/pyodl_monitor.py) on the board's files.
TRANSACT = "python \"pyodl_transact('{0}/steps.txt', '{0}/blob.bin', '{0}/read.bin')\""
# After every LoadELF: halt hooks at odl_idle and at the HardFault handler (read from the vector table), then
# the console UART the firmware names.
HOOKS_AND_CONSOLE = [
        'sysbus GetSymbolAddress "odl_idle"',
        f"sysbus.cpu AddHook {IDLE:#x} \"self.IsHalted = True\"",
        TRANSACT,
        f"sysbus.cpu AddHook {HARDFAULT:#x} \"self.IsHalted = True\"",
        'sysbus GetSymbolAddress "odl_console_uart"',
        TRANSACT,
]


def test_load_elf_builds_the_machine_and_halts_at_idle(renode: FakeRenode, elf: Path, tmp_path: Path) -> None:
    board = RenodeBoard(renode, workdir=tmp_path)
    board.load_elf(elf)
    escaped = str(elf.resolve()).replace(" ", "\\ ")
    assert [c.replace(str(tmp_path), "{0}") for c in renode.commands] == [
        "numbersMode Hexadecimal",
        "emulation Names",
        'mach create "stm32l496"',
        f"machine LoadPlatformDescription @{PLATFORM.resolve()}",
        f"include @{MONITOR_HELPER.resolve()}",
        TRANSACT,  # SRAM's power-up contents
        # The machine's reset macro loads the ELF, so a reset from the monitor boots the firmware too.
        f'macro reset "sysbus.cpu VectorTableOffset 0x8000000; sysbus LoadELF @{escaped}"'.replace(str(tmp_path),
                                                                                                   "{0}"),
        "machine Reset",
        "sysbus.cpu RemoveAllHooks",
        *HOOKS_AND_CONSOLE,
        "sysbus.lpuart1 CreateFileBackend @{0}/lpuart1-1.bin true",
    ]
    assert board.elf == elf and renode.reset_runs == [renode.reset_macro]


def test_idle_hook_lands_on_the_instruction_even_for_a_thumb_address(renode: FakeRenode, elf: Path,
                                                                     tmp_path: Path) -> None:
    renode.strip_thumb = False
    RenodeBoard(renode, workdir=tmp_path).load_elf(elf)
    assert f'sysbus.cpu AddHook {IDLE:#x} "self.IsHalted = True"' in renode.commands


def test_reset_is_a_power_cycle_that_keeps_the_machine_and_its_flash(board: RenodeBoard, renode: FakeRenode,
                                                                     elf: Path, tmp_path: Path) -> None:
    renode.poke(0x0808_0000, b"\x01\x02")  # a saved slot
    renode.commands.clear()
    board.reset()
    sram1, sram2 = power_up_sram(1)
    assert bytes(renode.memory[SRAM1_BASE + i] for i in range(16)) == sram1[:16]  # SRAM undefined again
    assert bytes(renode.memory[SRAM2_BASE + i] for i in range(16)) == sram2[:16]
    assert [c.replace(str(tmp_path), "{0}") for c in renode.commands] == [
        TRANSACT,  # SRAM's power-up contents
        "numbersMode Hexadecimal",
        "emulation Names",
        'mach set "stm32l496"',
        "machine Reset",  # the macro of the first load: the same ELF
        "sysbus.cpu RemoveAllHooks",
        *HOOKS_AND_CONSOLE,
    ]  # the same console: its file backend stays attached; no second machine
    assert renode.machines == ["stm32l496"] and board.read(0x0808_0000, 2) == b"\x01\x02"


def test_another_elf_gets_its_own_reset_macro(board: RenodeBoard, renode: FakeRenode, tmp_path: Path) -> None:
    other = tmp_path / "other.elf"
    other.write_bytes(b"\x7fELF")
    board.load_elf(other)
    assert renode.reset_runs[-1] == f"sysbus.cpu VectorTableOffset 0x8000000; sysbus LoadELF @{other.resolve()}"
    assert renode.commands.index(f'macro reset "{renode.reset_runs[-1]}"') < renode.commands.index("machine Reset")
    assert board.elf == other


def test_after_a_save_and_load_the_elf_is_loaded_after_each_reset_by_a_command(board: RenodeBoard,
                                                                                 renode: FakeRenode,
                                                                                 tmp_path: Path) -> None:
    board.save_and_load(tmp_path / "emulation.save")
    assert renode.commands[:4] == [f"Save @{tmp_path / 'emulation.save'}", "Clear",
                                   f"Load @{tmp_path / 'emulation.save'}", 'mach set "stm32l496"']
    renode.commands.clear()
    board.reset()
    reset = renode.commands.index("machine Reset")
    assert renode.commands[reset + 2].startswith("sysbus.cpu VectorTableOffset 0x8000000; sysbus LoadELF @")
    assert len(renode.reset_runs) == 1  # the first load's, not this one's


def test_a_new_board_replaces_a_machine_of_the_same_name_so_its_flash_is_erased(board: RenodeBoard,
                                                                                renode: FakeRenode, elf: Path,
                                                                                tmp_path: Path) -> None:
    """Rows of a templated Robot test share one emulation: each `Start Board` must not find the last row's
    persistence slots."""
    renode.commands.clear()
    RenodeBoard(renode, workdir=tmp_path).load_elf(elf)
    assert renode.commands[1:5] == ["emulation Names", 'mach rem "stm32l496"', 'mach create "stm32l496"',
                                    f"machine LoadPlatformDescription @{PLATFORM.resolve()}"]
    assert renode.machines == ["stm32l496"]


def test_missing_elf_and_unloaded_board_are_errors(renode: FakeRenode, tmp_path: Path) -> None:
    board = RenodeBoard(renode, workdir=tmp_path)
    with pytest.raises(BoardError, match="no ELF at"):
        board.load_elf(tmp_path / "missing.elf")
    with pytest.raises(BoardError, match="no ELF loaded"):
        board.read(SRAM1_BASE, 4)
    assert renode.commands == []


def test_symbol_address_parses_renode_hex_and_reports_missing_symbols(board: RenodeBoard) -> None:
    assert board.symbol_address("odl_mailbox") == MAILBOX
    with pytest.raises(BoardError, match="no symbol 'nope'"):
        board.symbol_address("nope")
    with pytest.raises(BoardError, match="not a symbol name"):
        board.symbol_address('x" ; quit')


def test_reads_and_writes_of_any_size_are_one_command(board: RenodeBoard, renode: FakeRenode) -> None:
    data = bytes(i * 7 % 256 for i in range(5000))
    renode.poke(SRAM1_BASE + 3, data)
    assert board.read(SRAM1_BASE + 3, 5000) == data
    large = bytes(range(255, -1, -1)) * 200  # a batch of windows
    board.write(SRAM2_BASE + 8, large)
    assert bytes(renode.memory[SRAM2_BASE + 8 + i] for i in range(len(large))) == large
    assert len(renode.commands) == 2 and all("pyodl_transact" in c for c in renode.commands)


def test_a_transaction_takes_its_steps_in_order_in_one_command(board: RenodeBoard, renode: FakeRenode) -> None:
    renode.halted, renode.pc, renode.steps_to_idle = True, IDLE, 5000
    got = board.transact([Write(MAILBOX, b"\x01\x02"), Read(MAILBOX, 2), Run(budget=10**6), Read(MAILBOX + 1, 1)])
    assert got == [b"\x01\x02", 5000, b"\x02"] and len(renode.commands) == 1


def test_a_short_response_is_an_error(board: RenodeBoard, renode: FakeRenode) -> None:
    renode.python.scope["File"] = SimpleNamespace(ReadAllBytes=lambda path: Path(path).read_bytes(),
                                                  Create=lambda path: SimpleNamespace(Write=lambda *a: None,
                                                                                      Close=lambda: None))
    with pytest.raises(BoardError, match="Renode read 0 bytes of 2"):
        board.read(SRAM1_BASE, 2)


def test_accesses_outside_memory_are_refused_before_reaching_renode(board: RenodeBoard,
                                                                    renode: FakeRenode) -> None:
    board.read(SRAM2_ALIAS + SRAM2_SIZE - 4, 4)
    board.read(FLASH_BASE + FLASH_SIZE - 4, 4)
    board.read(SRAM2_BASE + SRAM2_SIZE - 4, 4)
    renode.commands.clear()
    for address, size in [(SRAM2_BASE + SRAM2_SIZE - 2, 4), (0x2005_0000, 4), (USART2_BASE, 4),
                          (FLASH_BASE - 1, 2), (SRAM1_BASE + SRAM1_SIZE + SRAM2_SIZE, 1)]:
        with pytest.raises(BoardError, match="not all in the STM32L496's memory"):
            board.read(address, size)
    with pytest.raises(BoardError):
        board.write(SRAM2_ALIAS + SRAM2_SIZE, b"\x00")
    with pytest.raises(BoardError, match="reach flash bank 2, which only the firmware programs"):
        board.write(0x0807_FFFF, b"\x00\x00")
    assert renode.commands == []


def test_run_until_idle_unhalts_then_runs_growing_slices(board: RenodeBoard, renode: FakeRenode) -> None:
    renode.halted, renode.pc, renode.executed = True, IDLE, 500
    renode.steps_to_idle = 100_000
    assert board.run_until_idle(budget=1_000_000) == 100_000
    assert renode.run_for == [200, 400, 800]  # 20k, 40k, 80k instructions at 100 MIPS
    assert board.executed_instructions() == 100_500


def test_a_command_that_ran_before_starts_with_a_slice_of_its_last_length(board: RenodeBoard,
                                                                          renode: FakeRenode) -> None:
    renode.steps_to_idle = 2_000_000
    assert board.run_until_idle(budget=10**9, expected=2_000_000) == 2_000_000
    assert renode.run_for == [21_250]  # 2M + 1/16: one RunFor


def test_run_until_idle_last_slice_is_cut_to_the_budget(board: RenodeBoard, renode: FakeRenode) -> None:
    renode.steps_to_idle = 10**9
    with pytest.raises(BoardError, match=r"budget of 50000 instructions ran out .*PC=0x08000180"):
        board.run_until_idle(budget=50_000)
    assert renode.run_for == [200, 300]
    assert renode.executed == 50_000


def test_slices_are_whole_microseconds(board: RenodeBoard, renode: FakeRenode) -> None:
    renode.mips = 4
    renode.python.scope["monitor"].Machine._fake.mips = 4  # type: ignore[attr-defined]
    renode.steps_to_idle = 10**9
    with pytest.raises(BoardError, match="budget of 7 instructions"):
        board.run_until_idle(budget=7)
    assert renode.run_for == [2]  # 7 instructions at 4 MIPS: 1.75 us, rounded up


def test_run_until_idle_reports_a_hardfault(board: RenodeBoard, renode: FakeRenode) -> None:
    renode.fault_after = 1234
    with pytest.raises(BoardError, match=r"HardFault handler\) after 1234 instructions; PC=0x08000200"):
        board.run_until_idle(budget=10**6)


def test_run_until_idle_rejects_a_bad_budget(board: RenodeBoard) -> None:
    with pytest.raises(BoardError, match="budget must be positive"):
        board.run_until_idle(budget=0)


def test_uart_output_is_consumed_from_renodes_file_backend(board: RenodeBoard, renode: FakeRenode) -> None:
    assert board.uart_output() == b""  # Renode has not created the file yet
    renode.emit(b"hello ")
    renode.emit(b"world")
    assert board.uart_output() == b"hello world"
    assert board.uart_output() == b""
    renode.emit(b"\x00\xff")
    assert board.uart_output() == b"\x00\xff"


def test_uart_input_is_one_command_and_only_when_the_receiver_is_on(board: RenodeBoard, renode: FakeRenode) -> None:
    frame = bytes(range(256)) * 3  # every byte value
    board.uart_input(frame)
    assert len(renode.commands) == 1 and bytes(renode.received) == frame
    renode.usart_cr1 = 0x09  # UE and TE, no RE
    with pytest.raises(BoardError, match=r"receiver is not enabled \(CR1=0x9\)"):
        board.uart_input(b"B")
    assert bytes(renode.received) == frame


def test_monitor_errors_become_board_errors(board: RenodeBoard, renode: FakeRenode) -> None:
    with pytest.raises(BoardError, match="Renode command failed: bogus"):
        board.execute("bogus")


def test_from_robot_runs_execute_command(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    pytest.importorskip("robot")
    from robot.libraries.BuiltIn import BuiltIn

    calls: list[tuple[str, tuple[object, ...]]] = []

    def run_keyword(self: BuiltIn, name: str, *args: object) -> str:
        calls.append((name, args))
        return "0x0000000000000042\r\n"

    monkeypatch.setattr(BuiltIn, "run_keyword", run_keyword)
    board = RenodeBoard.from_robot(workdir=tmp_path)
    assert board.execute("sysbus.cpu ExecutedInstructions") == "0x0000000000000042\r\n"
    assert calls == [("Execute Command", ("sysbus.cpu ExecutedInstructions",))]


# -- the platform files --------------------------------------------------------------------------------

REPL = (REPO / "renode" / "stm32l496.repl").read_text()


def peripherals(repl: str) -> dict[str, tuple[str, list[int], str]]:
    """name -> (type, registration addresses, body), for the top-level `name: Type @ ...` entries."""
    without_comments = re.sub(r"//[^\n]*", "", repl)
    entries = re.split(r"\n(?=[A-Za-z]\w*:)", "\n" + without_comments)
    found = {}
    for entry in entries:
        m = re.match(r"(\w+): ([\w.]+) @ (\{.*?\}|[^\n]+)(.*)", entry.strip(), re.S)
        if m:
            addresses = [int(a, 16) for a in re.findall(r"sysbus <?\s*(0x[0-9A-Fa-f]+)", m[3])]
            found[m[1]] = (m[2], addresses, m[4])
    return found


def size_of(body: str) -> int:
    m = re.search(r"^\s+size: (0x[0-9A-Fa-f]+)", body, re.M)
    assert m, body
    return int(m[1], 16)


def test_repl_maps_everything_the_firmware_touches() -> None:
    p = peripherals(REPL)
    assert p["cpu"][0] == "CPU.CortexM" and 'cpuType: "cortex-m4f"' in p["cpu"][2] and "nvic: nvic" in p["cpu"][2]
    # NVIC's model spans 0xE000E000..0xE000EFFF: SysTick, NVIC and SCB, CPACR (0xE000ED88) included.
    assert p["nvic"][:2] == ("IRQControllers.NVIC", [0xE000_E000])
    # Flash bank 1 is memory; bank 2 belongs to the flash controller, which programs and erases it.
    assert p["flash"][:2] == ("Memory.MappedMemory", [FLASH_BASE]) and size_of(p["flash"][2]) == FLASH_SIZE // 2
    assert p["flashctl"][:2] == ("Python.PythonPeripheral", [0x4002_2000, FLASH_BASE + FLASH_SIZE // 2])
    assert re.findall(r"sysbus <0x[0-9A-Fa-f]+, \+(0x[0-9A-Fa-f]+)>", REPL.split("\nflashctl:")[1])[:2] == [
        "0x400", hex(FLASH_SIZE // 2)]
    assert p["sram1"][:2] == ("Memory.MappedMemory", [SRAM1_BASE]) and size_of(p["sram1"][2]) == SRAM1_SIZE
    # One peripheral at two addresses: the alias is the same memory, not a copy.
    assert p["sram2"][:2] == ("Memory.MappedMemory", [SRAM2_BASE, SRAM2_ALIAS])
    assert size_of(p["sram2"][2]) == SRAM2_SIZE and SRAM1_BASE + SRAM1_SIZE == SRAM2_BASE
    assert p["usart2"][:2] == ("UART.STM32F7_USART", [USART2_BASE])
    assert re.search(r"IRQ -> nvic@38\b", p["usart2"][2])
    assert p["rcc"][:2] == ("Python.PythonPeripheral", [0x4002_1000])
    assert size_of(p["rcc"][2]) >= 0x5C  # AHB2ENR (0x4C) and APB1ENR1 (0x58) inside
    assert p["gpioPortA"][:2] == ("GPIOPort.STM32_GPIOPort", [0x4800_0000])
    assert p["dwt"][:2] == ("Miscellaneous.DWT", [0xE000_1000]) and "frequency:" in p["dwt"][2]
    # The NUCLEO-L496ZG's console: LPUART1 (the low-power register variant) on port G, which PWR powers.
    assert p["lpuart1"][:2] == ("UART.STM32F7_USART", [LPUART1_BASE]) and "lowPowerMode: true" in p["lpuart1"][2]
    assert re.search(r"IRQ -> nvic@70\b", p["lpuart1"][2])
    assert p["gpioPortG"][:2] == ("GPIOPort.STM32_GPIOPort", [0x4800_1800])
    assert p["pwr"][:2] == ("Python.PythonPeripheral", [0x4000_7000])
    # Every clock-driven model at the 80 MHz the firmware sets up.
    assert set(re.findall(r"(?:frequency|systickFrequency): (\d+)", REPL)) == {"80000000"}


def test_repl_needs_no_network() -> None:
    code = re.sub(r"//[^\n]*", "", REPL)
    assert "ApplySVD" not in code and "http" not in code and "using " not in code


class Request:
    """The attributes Renode's PythonPeripheral hands a script (PeripheralPythonEngine.PythonRequest)."""

    def __init__(self, kind: str, offset: int = 0, value: int = 0, length: int = 4) -> None:
        self.IsInit, self.IsRead, self.IsWrite = kind == "init", kind == "read", kind == "write"
        self.Offset, self.Value, self.Length = offset, value, length


def _script_access(name: str, scope: dict[str, object]) -> Callable[..., int]:
    """Runs the repl's Python peripheral ``name`` as Renode does, one request at a time, in ``scope``."""
    script = re.search(rf"\n{name}: .*?script: '''\n(.*?)'''", REPL, re.S)
    assert script, name

    def access(kind: str, offset: int = 0, value: int = 0, length: int = 4) -> int:
        request = Request(kind, offset, value, length)
        scope["request"] = request
        exec(script[1], scope)
        return request.Value

    return access


def test_rcc_stub_reads_back_writes_and_raises_ready_flags() -> None:
    access = _script_access("rcc", {})
    access("init")
    assert access("read", 0x00) == 0x63  # MSI on and ready out of reset
    access("write", 0x4C, 0x4C)  # RCC_AHB2ENR: GPIOA..
    access("write", 0x58, 0x58)  # RCC_APB1ENR1: USART2..
    assert (access("read", 0x4C), access("read", 0x58)) == (0x4C, 0x58)
    access("write", 0x00, 0x0100_0163)  # HSION + PLLON
    assert access("read", 0x00) == 0x0300_0563
    access("write", 0x08, 0x3)  # SW = PLL
    assert access("read", 0x08) == 0xF
    access("write", 0x59, 0xAB, length=1)  # a byte write lands in its lane
    assert access("read", 0x58) == 0xAB58 and access("read", 0x59, length=1) == 0xAB
    assert access("read", 0x3FC) == 0


def test_resc_loads_our_platform_and_elf() -> None:
    resc = (REPO / "renode" / "pyodl.resc").read_text()
    assert "machine LoadPlatformDescription $ORIGIN/stm32l496.repl" in resc
    assert re.search(r"^\$elf \?= ", resc, re.M) and re.search(r"^\$uart_port \?= 3456$", resc, re.M)
    reset = re.search(r'macro reset\n"""(.*?)"""', resc, re.S)
    assert reset and "sysbus LoadELF $elf" in reset[1]
    assert "runMacro $reset" in resc and "http" not in resc
    socket = re.search(r'macro uart_socket\n"""(.*?)"""', resc, re.S)
    assert socket and "CreateServerSocketTerminal $uart_port" in socket[1]
    assert "connector Connect sysbus.lpuart1" in socket[1]
    name = re.search(r'^\$name \?= "(\w+)"', resc, re.M)
    assert name and name[1] == RenodeBoard(lambda c: "").machine


def test_pwr_stub_keeps_vddio2_and_reports_the_regulator_ready() -> None:
    logged: list[str] = []
    peripheral = type("Peripheral", (), {"Log": lambda _self, _level, m: logged.append(m)})()
    access = _script_access("pwr", {"self": peripheral, "LogLevel": type("LogLevel", (), {"Error": 3})})
    access("init")
    assert access("read", 0x00) == 0x200  # CR1: voltage range 1
    access("write", 0x00, 0x200)
    access("write", 0x04, 1 << 9)  # CR2.IOSV
    assert access("read", 0x04) == 1 << 9 and access("read", 0x14) == 0  # SR2: VOSF clear
    access("read", 0x80)
    assert logged == ["access to PWR register offset 0x80, which the platform does not model"]


def test_wait_lets_virtual_time_pass_between_two_runs(board: RenodeBoard, renode: FakeRenode) -> None:
    renode.commands.clear()
    board.wait(0.04)
    runs = [i for i, c in enumerate(renode.commands) if "pyodl_transact" in c]
    pause = renode.commands.index('emulation RunFor "0.040000"')
    assert len(runs) == 2 and runs[0] < pause < runs[1]
