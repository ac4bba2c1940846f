"""The simulated STM32L496 in Renode, driven through its monitor.

Renode is not a Python library: everything here is a monitor command string handed to ``execute`` (under
``renode-test``, Robot's ``Execute Command`` keyword; see :meth:`RenodeBoard.from_robot`), and every
answer is parsed from the monitor's printed output (``MonitorCommands.PrintActionResult``: integers in
hex, booleans as ``True``/``False``). Each command is a round trip (about 7 ms under renode-test), so
memory, runs and UART input go through ``pyodl_transact`` (renode/pyodl_monitor.py, included into the
monitor's Python once per machine): the steps of a whole exchange in one ``python`` command, with files for
the bytes both ways. A firmware command through the mailbox is then one round trip.

Running until the firmware parks: a CPU hook at ``odl_idle`` halts the core (``self.IsHalted = True``,
as Renode's own tests stop a core from a hook), and ``pyodl_transact`` advances virtual time in slices with
the emulation's ``RunFor`` until the core reports halted. Renode deactivates the hooks at the current PC
when a hook fires, so un-halting resumes at ``odl_idle`` without re-triggering it; the firmware then runs
its loop and halts at the next ``odl_idle`` call. Budgets are instructions; a slice of ``n`` instructions
is ``n / PerformanceInMips`` microseconds of virtual time.

The console UART's output (LPUART1, or USART2 in a build for it, as ``odl_console_uart`` says) goes to a
file Renode appends to (``CreateFileBackend``), read back by the host: Renode and this process must share a
filesystem, as they do under ``renode-test``.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from pyodl.board.base import (
    CONSOLE_SYMBOL,
    IDLE_SYMBOL,
    Board,
    BoardError,
    Read,
    Run,
    Step,
    Write,
    power_up_sram,
)
from pyodl.toolchain.memory_map import (
    FLASH_BASE,
    FLASH_SIZE,
    LPUART1_BASE,
    SRAM1_BASE,
    SRAM2_ALIAS,
    SRAM2_BASE,
    SRAM2_SIZE,
    SRAM_SIZE,
    USART2_BASE,
)
from pyodl.toolchain.sources import renode_file

PLATFORM = renode_file("stm32l496.repl")
MONITOR_HELPER = renode_file("pyodl_monitor.py")  # pyodl_transact, run in Renode's monitor

CPU = "sysbus.cpu"
# The platform's UARTs by base address; the firmware names its console in `odl_console_uart`.
UARTS = {LPUART1_BASE: "sysbus.lpuart1", USART2_BASE: "sysbus.usart2"}

# Memory the host may read and write. Renode answers accesses elsewhere with zeros and a log warning,
# so the board refuses them itself, as a real probe would fail.
MEMORY = (
    (FLASH_BASE, FLASH_SIZE),
    (SRAM1_BASE, SRAM_SIZE),  # SRAM1 and SRAM2 are contiguous
    (SRAM2_ALIAS, SRAM2_SIZE),
)

# Flash bank 2: the platform's flash controller (`flashctl`) holds it.
BANK2_BASE = FLASH_BASE + FLASH_SIZE // 2
BANK2_END = FLASH_BASE + FLASH_SIZE


_HEX = re.compile(r"0x([0-9A-Fa-f]+)")


def _path_token(path: Path) -> str:
    """A monitor path argument: ``@`` + path, spaces escaped (``PathToken`` stops at blanks and ``;``)."""
    text = str(path.resolve())
    if ";" in text or any(c.isspace() and c != " " for c in text):
        raise BoardError(f"Renode's monitor cannot take this path: {text!r}")
    return "@" + text.replace(" ", "\\ ")


def _parse_int(output: str, what: str) -> int:
    """The first number the monitor printed (hex in its default ``numbersMode``, else decimal)."""
    match = _HEX.search(output) or re.search(r"\b(\d+)\b", output)
    if match is None:
        raise BoardError(f"Renode printed no number for {what}: {output!r}")
    return int(match.group(1), 16 if match.group(0).startswith("0x") else 10)


def _parse_bool(output: str, what: str) -> bool:
    word = output.strip().lower()
    if word not in ("true", "false"):
        raise BoardError(f"Renode printed no boolean for {what}: {output!r}")
    return word == "true"


def _python_path(path: Path) -> str:
    """A path as a Python string literal inside the monitor's ``python "..."`` command."""
    text = str(path.resolve())
    if any(c in text for c in "'\"\\") or not text.isprintable():
        raise BoardError(f"Renode's monitor cannot take this path in a Python string: {text!r}")
    return f"'{text}'"


class RenodeBoard(Board):
    """One Renode machine running the firmware. ``execute`` runs one monitor command, returns its output
    and raises on a monitor error (``Execute Command`` does)."""

    # Without a budget, stop anyway after this many instructions: minutes of host time, far more than a
    # full training run, so a firmware that never parks fails instead of hanging the suite.
    DEFAULT_BUDGET = 20_000_000_000
    # The first slice is short because most commands finish quickly; slices then double, so a long run
    # costs a logarithmic number of round trips. A halted core skips the rest of its slice at no cost.
    FIRST_SLICE = 20_000
    SLICE_GROWTH = 2
    MAX_SLICE = 200_000_000

    def __init__(self, execute: Callable[[str], str], machine: str = "stm32l496",
                 platform: Path = PLATFORM, workdir: Path | None = None) -> None:
        self._execute = execute
        self.machine = machine
        self.platform = platform
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="pyodl-renode-")
            workdir = Path(self._tmp.name)
        self._workdir = workdir
        self._elf: Path | None = None
        self._idle: int | None = None
        self._fault_handler: int | None = None
        self._uart_file: Path | None = None
        self._console_base = LPUART1_BASE
        self._uart_pos = 0
        self._loads = 0
        self._created = False  # this board's machine exists (created by its first load)
        self._reset_elf: Path | None = None  # the ELF the machine's reset macro loads
        self._reset_runs_macro = True  # `machine Reset` runs that macro (not for a loaded emulation's machine)

    @classmethod
    def from_robot(cls, machine: str = "stm32l496", platform: Path = PLATFORM,
                   workdir: Path | None = None) -> RenodeBoard:
        """A board for a Robot suite run by ``renode-test``, which imports Renode's keywords (through
        ``renode-keywords.robot``'s ``Remote`` library) before any test runs."""
        from robot.libraries.BuiltIn import BuiltIn  # only present under Robot Framework

        builtin = BuiltIn()

        def execute(command: str) -> str:
            return str(builtin.run_keyword("Execute Command", command) or "")

        return cls(execute, machine=machine, platform=platform, workdir=workdir)

    # -- monitor plumbing ------------------------------------------------------------------------------

    def execute(self, command: str) -> str:
        try:
            return self._execute(command)
        except BoardError:
            raise
        except Exception as exc:  # the executor's own failure type (Robot's ExecutionFailed, ...)
            raise BoardError(f"Renode command failed: {command}: {exc}") from exc

    def _machine_exists(self) -> bool:
        # After Robot's per-test `Reset Emulation` our machine is gone; a name list tells us so without
        # provoking a failing command (which Robot would log as a failure even when caught).
        names = self.execute("emulation Names")
        return self.machine in re.findall(r"[^\s\[\],]+", names)

    def _require_loaded(self) -> None:
        if self._elf is None:
            raise BoardError("no ELF loaded")

    # -- Board -----------------------------------------------------------------------------------------

    @property
    def elf(self) -> Path:
        self._require_loaded()
        assert self._elf is not None
        return self._elf

    def load_elf(self, elf: Path) -> None:
        """The first load creates this board's machine afresh (one of the same name left by an earlier board,
        e.g. an earlier row of a templated test, is removed: a new board has erased flash) and fills SRAM
        with its power-up contents. Every load is then ``machine Reset``, whose macro loads the ELF: it resets
        every peripheral but keeps the memories' bytes, so SRAM and flash bank 2 (the persistence slots, held by
        the platform's ``flashctl``) keep theirs; the reset also drops the ELF's symbols (``SystemBus.Reset``),
        which the macro's LoadELF brings back, and the hooks are set afresh for the ELF's addresses."""
        elf = Path(elf)
        if not elf.is_file():
            raise BoardError(f"no ELF at {elf}")
        self._elf = None
        self._fault_handler = None
        # Pin the output format the parsers expect; it is the monitor's default but a global setting.
        self.execute("numbersMode Hexadecimal")
        exists = self._machine_exists()
        if not self._created or not exists:
            if exists:
                self.execute(f'mach rem "{self.machine}"')
            self._uart_file = None
            self.execute(f'mach create "{self.machine}"')
            self.execute(f"machine LoadPlatformDescription {_path_token(self.platform)}")
            self._created = True
            self._reset_runs_macro = True
            self.execute(f"include {_path_token(MONITOR_HELPER)}")
            sram1, sram2 = power_up_sram(self.power_ups)
            self._transact_steps([Write(SRAM1_BASE, sram1), Write(SRAM2_BASE, sram2)])
            self._reset_elf = None
        else:
            self.execute(f'mach set "{self.machine}"')
        load = f"{CPU} VectorTableOffset {FLASH_BASE:#x}; sysbus LoadELF {_path_token(elf)}"
        if self._reset_runs_macro and self._reset_elf != elf:
            # The machine's reset macro, which Renode runs after every `machine Reset` (renode/pyodl.resc
            # registers the same; without one each reset logs "No action for reset"): load the ELF, its vector
            # table at the start of flash, so a reset from the monitor boots the firmware too.
            self.execute(f'macro reset "{load}"')
            self._reset_elf = elf
        self.execute("machine Reset")
        self.execute(f"{CPU} RemoveAllHooks")
        if not self._reset_runs_macro:
            self.execute(load)
        self._elf = elf
        self._idle = self.symbol_address(IDLE_SYMBOL) & ~1  # a Thumb function's address has bit 0 set
        self.execute(f'{CPU} AddHook {self._idle:#x} "self.IsHalted = True"')
        self._hook_fault_handler()
        self._attach_console()

    def _attach_console(self) -> None:
        """The console UART's output into a file of this board's (a new one after a change of UART)."""
        console = self._console()
        if self._uart_file is None or console != self._console_base:
            if self._uart_file is not None:  # another firmware, another console UART
                self.execute(f"{self._uart} CloseFileBackend {_path_token(self._uart_file)}")
            self._console_base = console
            self._loads += 1
            # A fresh file per machine: CreateFileBackend refuses a path it already writes, and moves an
            # existing file aside, so a new name keeps one file per machine (a reset keeps the backend).
            # Flushing per byte lets the host read everything the firmware sent as soon as RunFor returns.
            self._uart_file = self._workdir / f"{self._uart.split('.')[-1]}-{self._loads}.bin"
            self._uart_pos = 0
            self.execute(f"{self._uart} CreateFileBackend {_path_token(self._uart_file)} true")

    @property
    def _uart(self) -> str:
        """The console UART's peripheral name."""
        return UARTS[self._console_base]

    def _console(self) -> int:
        """The console UART's base address, from the firmware's ``odl_console_uart``."""
        base = int.from_bytes(self.read(self.symbol_address(CONSOLE_SYMBOL), 4), "little")
        if base not in UARTS:
            raise BoardError(f"`{CONSOLE_SYMBOL}` is {base:#010x}, not a UART of the platform")
        return base

    def _hook_fault_handler(self) -> None:
        """Halt at the HardFault handler too, so a fault ends ``run_until_idle`` at once instead of spinning
        in the handler until the budget runs out."""
        handler = int.from_bytes(self.read(FLASH_BASE + 3 * 4, 4), "little") & ~1
        if handler in (0, self._idle) or not self._is_memory(handler, 2):
            return
        self._fault_handler = handler
        self.execute(f'{CPU} AddHook {handler:#x} "self.IsHalted = True"')

    def symbol_address(self, name: str) -> int:
        self._require_loaded()
        if not re.fullmatch(r"[A-Za-z_.$][\w.$]*", name):
            raise BoardError(f"not a symbol name: {name!r}")
        try:
            output = self.execute(f'sysbus GetSymbolAddress "{name}"')
        except BoardError as exc:
            raise BoardError(f"the ELF has no symbol {name!r}") from exc
        return _parse_int(output, f"symbol {name}")

    @staticmethod
    def _is_memory(address: int, size: int) -> bool:
        return any(base <= address and address + size <= base + length for base, length in MEMORY)

    def _check_memory(self, address: int, size: int) -> None:
        if size < 0 or not self._is_memory(address, size):
            raise BoardError(f"{size} bytes at {address:#010x} are not all in the STM32L496's memory")

    def read(self, address: int, size: int) -> bytes:
        (data,) = self.transact([Read(address, size)])
        assert isinstance(data, bytes)
        return data

    def write(self, address: int, data: bytes) -> None:
        self.transact([Write(address, data)])

    def run_until_idle(self, budget: int | None = None, expected: int | None = None) -> int:
        (executed,) = self.transact([Run(budget, expected)])
        assert isinstance(executed, int)
        return executed

    def transact(self, steps: Sequence[Step]) -> list[bytes | int]:
        """All the steps in one monitor round trip: ``pyodl_transact`` (renode/pyodl_monitor.py) reads them from
        a file, takes the bytes to write from a second and leaves what it read in a third."""
        self._require_loaded()
        return self._transact_steps(steps)

    def _transact_steps(self, steps: Sequence[Step]) -> list[bytes | int]:
        lines: list[str] = []
        blob = bytearray()
        for step in steps:
            if isinstance(step, Write):
                self._check_memory(step.address, len(step.data))
                if step.address < BANK2_END and step.address + len(step.data) > BANK2_BASE:
                    # flashctl takes bank-2 writes as the CPU's: refused (PGSERR) unless programming is set up.
                    raise BoardError(f"{len(step.data)} bytes at {step.address:#010x} reach flash bank 2, which only "
                                     "the firmware programs (SAVE), through the flash controller")
                lines.append(f"W {step.address:#x} {len(blob)} {len(step.data)}")
                blob += step.data
            elif isinstance(step, Read):
                self._check_memory(step.address, step.size)
                lines.append(f"R {step.address:#x} {step.size}")
            else:
                budget = self.DEFAULT_BUDGET if step.budget is None else step.budget
                if budget <= 0:
                    raise BoardError(f"budget must be positive, not {budget}")
                # A command that ran before gets its previous length and a little more as its first slice: a
                # repeated TRAIN_BATCH is then one RunFor; a shorter guess grows geometrically from there.
                first = self.FIRST_SLICE if step.expected is None else max(self.FIRST_SLICE,
                                                                            step.expected + step.expected // 16)
                lines.append(f"X {budget} {first} {self.SLICE_GROWTH} {self.MAX_SLICE} {self._idle:#x}")
            # (UART input is a step of its own: uart_input.)
        return self._transact(lines, blob, steps)

    def _transact(self, lines: list[str], blob: bytes, steps: Sequence[Step]) -> list[bytes | int]:
        output, read = self._exchange(lines, blob)
        runs = iter(output.split("\n"))
        results: list[bytes | int] = []
        for step in steps:
            if isinstance(step, Read):
                if len(read) < step.size:
                    raise BoardError(f"Renode read {len(read)} bytes of {step.size} at {step.address:#010x}")
                results.append(read[:step.size])
                read = read[step.size:]
            elif isinstance(step, Run):
                results.append(self._run_result(next(runs, ""), step))
        return results

    def _exchange(self, lines: list[str], blob: bytes) -> tuple[str, bytes]:
        """One ``pyodl_transact``: the steps' lines and the bytes they write go in files; returns what it
        printed and what it read."""
        request, data, response = (self._workdir / name for name in ("steps.txt", "blob.bin", "read.bin"))
        request.write_text("\n".join(lines) + "\n")
        data.write_bytes(blob)
        response.unlink(missing_ok=True)  # what a failed exchange leaves must not pass for its answer
        output = self.execute(f'python "pyodl_transact({_python_path(request)}, {_python_path(data)}, '
                              f'{_python_path(response)})"')
        return output, response.read_bytes() if response.exists() else b""

    def _run_result(self, line: str, step: Run) -> int:
        match = re.fullmatch(r"(ran|stopped|budget) (\d+) 0x([0-9a-f]+)", line.strip())
        if match is None:
            raise BoardError(f"Renode's run printed {line!r}")
        kind, done, pc = match[1], int(match[2]), int(match[3], 16)
        if kind == "budget":
            raise BoardError(f"budget of {step.budget or self.DEFAULT_BUDGET} instructions ran out before "
                             f"{IDLE_SYMBOL}; PC={pc:#010x}")
        if kind == "stopped":
            what = "HardFault handler" if pc == self._fault_handler else "halted"
            raise BoardError(f"firmware stopped outside {IDLE_SYMBOL} ({what}) after {done} instructions; "
                             f"PC={pc:#010x}")
        return done

    def save_and_load(self, path: Path) -> None:
        """``Save`` the emulation to ``path``, ``Clear`` it and ``Load`` it back: the machine goes on from the
        same state (memories, flashctl's bank, the CPU where it halted). What the host set up outside the
        machine's state is set up again (the console's file backend) or done otherwise (the ELF's load after a
        reset); the CPU hooks come back with the machine."""
        self._require_loaded()
        self.execute(f"Save {_path_token(path)}")
        self.execute("Clear")
        self.execute(f"Load {_path_token(path)}")
        self.execute(f'mach set "{self.machine}"')
        # Renode 1.16.1 runs no reset macro for a loaded machine (its monitor handles the reset of the machines
        # it created): from now on the ELF is loaded after each reset by a command of its own.
        self._reset_runs_macro = False
        self._uart_file = None
        self._attach_console()

    def bus_write(self, address: int, value: int) -> None:
        """A word written on the system bus as the CPU writes it: the peripheral there takes it (and logs what
        it does not model), where `write` only reaches memory."""
        self._require_loaded()
        self.execute(f"sysbus WriteDoubleWord {address:#x} {value & 0xFFFF_FFFF:#x}")

    def parked(self) -> bool:
        self._require_loaded()
        return (_parse_bool(self.execute(f"{CPU} IsHalted"), "IsHalted")
                and self.pc() == self._idle)

    def executed_instructions(self) -> int:
        self._require_loaded()
        return _parse_int(self.execute(f"{CPU} ExecutedInstructions"), "ExecutedInstructions")

    def pc(self) -> int:
        return _parse_int(self.execute(f"{CPU} PC"), "PC")

    def wait(self, seconds: float) -> None:
        """The core is halted at ``odl_idle`` while virtual time advances (the DWT cycle counter follows
        virtual time), then it runs until it parks again."""
        if seconds < 0:
            raise ValueError("time only goes forward")
        self.run_until_idle()  # bytes already sent arrive before the pause, not after it
        micros = max(1, round(seconds * 1_000_000))
        self.execute(f'emulation RunFor "{micros // 1_000_000}.{micros % 1_000_000:06d}"')
        self.run_until_idle()

    def uart_output(self) -> bytes:
        self._require_loaded()
        assert self._uart_file is not None
        if not self._uart_file.exists():  # Renode creates it on the first character
            return b""
        with self._uart_file.open("rb") as f:
            f.seek(self._uart_pos)
            data = f.read()
        self._uart_pos += len(data)
        return data

    def uart_input(self, data: bytes) -> None:
        """The bytes on the console UART's receive line, in one round trip (``pyodl_transact``'s U step, which
        first checks the receiver is on: Renode would drop the bytes with a debug-level line only)."""
        self._require_loaded()
        if not data:
            return
        output, _ = self._exchange([f"U {self._uart} {self._console_base:#x} 0 {len(data)}"], data)
        if output.strip().startswith("rx-off"):
            raise BoardError(f"{self._uart} receiver is not enabled (CR1={output.split()[-1]}); the bytes would be "
                             "lost")

    def close(self) -> None:
        # Renode keeps the UART file open until its backend closes; close it while the machine lives.
        if self._uart_file is not None:
            try:
                if self._machine_exists():
                    self.execute(f"{self._uart} CloseFileBackend {_path_token(self._uart_file)}")
            except BoardError:
                pass  # Renode already gone: nothing left to release there
            self._uart_file = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
