"""STM32L496 model on the Unicorn CPU engine: fast, deterministic, strict about the memory map.

Unicorn emulates the Cortex-M4 core only. This module adds the board around it: the exact STM32L496 memory map
(anything else is a :class:`BoardError`, never a silently-ignored access), the clock tree and power control
(:mod:`pyodl.board.clocks`), the console UART as a byte pipe, LPUART1 or USART2 as the ELF says, with the
checks a real board's silence would otherwise hide (:mod:`pyodl.board.console`), the System Control Space as a
register file, the DWT cycle counter (:mod:`pyodl.board.cycle_counter`), the flash controller with flash bank
2 behind it (:mod:`pyodl.board.flash_controller`, which can also cut the power), and an instruction counter
and cycle model written in C.

Instruction counting. A Python hook per block costs ~95% of the speed, so the counter is a ``UC_HOOK_BLOCK``
callback in C, compiled on first use with the system ``cc`` and cached under ``~/.cache/pyodl``. It counts the
Thumb-2 instructions of each block it enters (decoded once per flash block and memoised: flash is immutable)
and it also decides where a run ends:

* it stops the engine *before* a block that starts at ``odl_idle`` (the parking point), and
* before a block that would take the run past its instruction budget.

A block hook runs before the block's own exit check, so a block the hook stops never executes and is never
counted. This replaces both ``emu_start(until=odl_idle)`` and ``emu_start(count=budget)``: Unicorn applies
``until`` only when it translates a block, so once the block at ``odl_idle`` has been translated for the step
that leaves it, a later run sails through it; and ``count=`` is a per-instruction code hook (several times
slower on tight loops). Instructions of an IT block whose condition fails are counted (they are in the block).

Cycles. The same hook adds up Cortex-M4 cycles: each block's cost is computed once in Python from its decoded
instructions (:mod:`pyodl.board.cycle_model`, the TRM's tables) and memoised with the instruction count; the
hook adds a taken branch's pipeline refill when the next block is not the fall-through, and flash wait
states when a block's lines miss the modelled ART instruction cache. ``modelled_cycles()`` reads the total,
and so does the firmware through DWT_CYCCNT.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
import os
import shutil
import signal
import struct
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Final

import unicorn
from elftools.elf.elffile import ELFFile
from unicorn import arm_const
from unicorn.unicorn_py3.unicorn import uclib

from pyodl.board.base import CONSOLE_SYMBOL, IDLE_SYMBOL, Board, BoardError, PowerCutError, power_up_sram
from pyodl.board.clocks import PWR_BASE, RCC_BASE, Pwr, Rcc
from pyodl.board.console import WIRING, ConsoleWiring, GpioPort, Uart, console_problem
from pyodl.board.cycle_counter import DEMCR_OFFSET, DEMCR_TRCENA, DWT_BASE, DWT_SIZE, CycleCounter
from pyodl.board.cycle_model import describe_block
from pyodl.board.flash_controller import ACR, ACR_LATENCY_MASK, ACR_PRFTEN, BANK_BYTES, FLASH_REGS_BASE, FlashController
from pyodl.toolchain.memory_map import (
    FLASH_BASE,
    FLASH_SIZE,
    GPIOA_BASE,
    GPIOG_BASE,
    LPUART1_BASE,
    SRAM1_BASE,
    SRAM1_SIZE,
    SRAM2_ALIAS,
    SRAM2_BASE,
    SRAM2_SIZE,
    USART2_BASE,
)

DEFAULT_BUDGET: Final = 2_000_000_000

PERIPH_SIZE: Final = 0x400
SCS_BASE: Final = 0xE000_E000
SCS_SIZE: Final = 0x1000
CPACR_ADDRESS: Final = 0xE000_ED88
CPACR_CP10_CP11_FULL: Final = 0xF << 20

# A Thumb PC is always even, so an odd `until` never matches: runs end only through the native hook.
_NO_UNTIL: Final = 0xFFFF_FFFF

_STOP_IDLE: Final = 1
_STOP_BUDGET: Final = 2
_STOP_UNDESCRIBED: Final = 3
_EXCP_PREFETCH_ABORT: Final = 3

# QEMU's ARM exception numbers as UC_HOOK_INTR reports them (target/arm/cpu.h).
_EXCEPTION_NAMES: Final = {
    1: "undefined instruction (UDF)",
    2: "supervisor call (SVC)",
    3: "prefetch abort",
    4: "data abort",
    5: "IRQ",
    7: "breakpoint (BKPT)",
    8: "exception return",
    16: "semihosting call",
    17: "no coprocessor (NOCP)",
    18: "invalid state (INVSTATE)",
    19: "stack overflow (STKOF)",
    22: "unaligned access",
}

_ACCESS_NAMES: Final = {
    unicorn.UC_MEM_READ_UNMAPPED: "read",
    unicorn.UC_MEM_WRITE_UNMAPPED: "write",
    unicorn.UC_MEM_FETCH_UNMAPPED: "instruction fetch",
    unicorn.UC_MEM_WRITE_PROT: "write",
    unicorn.UC_MEM_READ_PROT: "read",
    unicorn.UC_MEM_FETCH_PROT: "instruction fetch",
}

COUNTER_SOURCE: Final = Path(__file__).with_name("unicorn_counter.c")  # shipped as package data


class _CounterHeader(ctypes.Structure):
    _fields_ = (
        ("executed", ctypes.c_uint64),
        ("limit", ctypes.c_uint64),
        ("stop_address", ctypes.c_uint64),
        ("stop_armed", ctypes.c_uint32),
        ("stop_reason", ctypes.c_uint32),
        ("cycles", ctypes.c_uint64),
        ("acr", ctypes.c_uint32),
        ("pending_taken", ctypes.c_uint32),
        ("pending_from", ctypes.c_uint64),
        ("failed_address", ctypes.c_uint64),
    )


class _BlockCost(ctypes.Structure):
    _fields_ = (
        ("instructions", ctypes.c_uint32),
        ("cycles", ctypes.c_uint32),
        ("taken", ctypes.c_uint32),
        ("fetch", ctypes.c_uint32),
        ("first_wide", ctypes.c_uint32),
    )


_DESCRIBE_CFUNC = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_uint64, ctypes.c_uint32, ctypes.POINTER(_BlockCost))


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    cache = Path(base) / "pyodl"
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError:
        # A read-only home (some CI sandboxes): a per-user temporary directory still caches per machine.
        cache = Path(tempfile.gettempdir()) / f"pyodl-cache-{os.getuid() if hasattr(os, 'getuid') else 'user'}"
        cache.mkdir(parents=True, exist_ok=True)
    return cache


@functools.cache
def native_counter_library() -> ctypes.CDLL:
    """Build (once per C source and compiler flags) and load the native block hook."""
    cc = shutil.which(os.environ.get("CC", "cc"))
    if cc is None:
        raise BoardError(
            "the Unicorn board needs a C compiler ('cc') to build its native instruction counter; "
            "install the Debian/Ubuntu package `gcc` (or set CC)"
        )
    include = Path(unicorn.__file__).parent / "include"
    header = include / "unicorn" / "unicorn.h"
    # The project's C rules hold here too: C99, every warning an error.
    flags = ["-O2", "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-shared", "-fPIC"]
    source = COUNTER_SOURCE.read_bytes()
    key = hashlib.sha256(source)
    if header.is_file():
        # The wheel's own header pins the prototypes to the library actually loaded.
        flags += [f"-I{include}", "-DPYODL_HAVE_UNICORN_H"]
        key.update(header.read_bytes())
    key.update(" ".join([cc, *flags]).encode())
    library = _cache_dir() / f"uc_block_counter-{key.hexdigest()[:16]}.so"
    if not library.is_file():
        with tempfile.TemporaryDirectory(dir=library.parent) as tmp:
            built = Path(tmp) / library.name
            result = subprocess.run([cc, *flags, "-o", str(built), str(COUNTER_SOURCE)], capture_output=True,
                                    text=True)
            if result.returncode != 0:
                raise BoardError(f"building the native instruction counter with {cc} failed:\n{result.stderr}")
            # Atomic, so concurrent test workers never load a half-written library.
            os.replace(built, library)
    lib = ctypes.CDLL(str(library))
    lib.pyodl_counter_new.restype = ctypes.c_void_p
    lib.pyodl_counter_new.argtypes = (
        ctypes.c_void_p,
        ctypes.c_void_p,
        ctypes.c_uint64,
        ctypes.c_uint64,
        ctypes.c_void_p,
        ctypes.c_uint32,
    )
    lib.pyodl_counter_set_acr.restype = None
    lib.pyodl_counter_set_acr.argtypes = (ctypes.c_void_p, ctypes.c_uint32)
    lib.pyodl_counter_free.restype = None
    lib.pyodl_counter_free.argtypes = (ctypes.c_void_p,)
    return lib


_HOOK_CODE_CFUNC = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint64, ctypes.c_uint32, ctypes.c_void_p)


class _RegisterFile:
    """Peripheral registers that read back what was last written (any access size)."""

    def __init__(self, size: int) -> None:
        self.data = bytearray(size)

    def read(self, offset: int, size: int) -> int:
        return int.from_bytes(self.data[offset : offset + size], "little")

    def write(self, offset: int, size: int, value: int) -> None:
        self.data[offset : offset + size] = (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little")


@contextlib.contextmanager
def _signals_stop(uc: unicorn.Uc) -> Iterator[list[int]]:
    """While the CPU runs, Ctrl-C (SIGINT) and SIGTERM stop the emulation and are recorded in the yielded
    list, for the caller to deliver again once the run is over. Python runs a signal handler at its next
    bytecode, which during a run is inside an MMIO or hook callback, where ctypes prints and drops any
    exception, KeyboardInterrupt included: the run would go on. Only the main thread can take signals."""
    caught: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield caught
        return

    def stop(signum: int, _frame: object) -> None:
        caught.append(signum)
        uc.emu_stop()

    # A signal the process ignores (nohup, a background job) stays ignored; None: a handler set outside
    # Python, which signal.signal cannot put back.
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    previous = {sig: handler for sig, handler in previous.items() if handler not in (signal.SIG_IGN, None)}
    for sig in previous:
        signal.signal(sig, stop)
    try:
        yield caught
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _is_vfp(first: int, second: int) -> bool:
    """A 32-bit Thumb-2 coprocessor instruction on CP10/CP11 (VFP: VLDR, VMOV, VMRS, VADD, ...)."""
    return (first >> 8) in (0xEC, 0xED, 0xEE) and (second >> 9) & 0b111 == 0b101


class UnicornBoard(Board):
    """An STM32L496 (Cortex-M4F, 1 MB flash, 320 KB SRAM, LPUART1 and USART2) emulated with Unicorn.

    A run ends when a translated block *starts* at ``odl_idle``, which holds whenever the firmware calls or
    branches to it (it is never reached by falling through from the code before it). The budget is checked
    per block, so a run stops at most one block short of it. After a budget error the next run continues
    where it stopped; after any other error the board refuses to run until the ELF is reloaded.
    """

    def __init__(self, elf: Path | None = None, *, budget: int = DEFAULT_BUDGET) -> None:
        if budget <= 0:
            raise ValueError("the instruction budget must be positive")
        self.budget = budget
        self._lib = native_counter_library()
        self._elf: Path | None = None
        self._uc: unicorn.Uc | None = None
        self._counter: int | None = None
        self._header: _CounterHeader | None = None
        self._symbols: dict[str, int] = {}
        self._idle = 0
        self._resume_pc: int | None = None
        self._broken: str | None = None
        self._error: BoardError | None = None
        self._fpu_hook: int | None = None
        self._fpu_hook_fn: object = None
        self._flush_tb = False
        self._describe_error = ""
        self._describe_fn: object = None
        self._last_run: tuple[int, float] = (0, 0.0)
        # Flash bank 2 (the persistence slots) outlives resets and ELF loads, as flash does; erased. SRAM
        # outlives ELF loads too, as under Renode's `machine Reset`; a power cycle (reset) refills it.
        self._bank2 = bytearray(b"\xff" * BANK_BYTES)
        sram1, sram2 = power_up_sram(self.power_ups)
        self._sram1 = ctypes.create_string_buffer(sram1, SRAM1_SIZE)
        self._sram2 = ctypes.create_string_buffer(sram2, SRAM2_SIZE)
        self._flashctl: FlashController | None = None
        if elf is not None:
            self.load_elf(elf)

    # ----------------------------------------------------------------- loading

    @property
    def elf(self) -> Path:
        if self._elf is None:
            raise BoardError("no ELF loaded")
        return self._elf

    def load_elf(self, elf: Path) -> None:
        elf = Path(elf)
        with elf.open("rb") as stream:
            image = ELFFile(stream)
            segments = [(seg["p_paddr"], seg.data()) for seg in image.iter_segments() if seg["p_type"] == "PT_LOAD"]
            symbols: dict[str, int] = {}
            symtab = image.get_section_by_name(".symtab")
            if symtab is None:
                raise BoardError(f"{elf} has no symbol table")
            for sym in symtab.iter_symbols():
                if not sym.name or sym["st_shndx"] == "SHN_UNDEF":
                    continue
                value = sym["st_value"]
                if sym["st_info"]["type"] == "STT_FUNC":
                    value &= ~1
                # A global wins over a same-named local (a static in some other file).
                if sym["st_info"]["bind"] != "STB_LOCAL" or sym.name not in symbols:
                    symbols[sym.name] = value
        if IDLE_SYMBOL not in symbols:
            raise BoardError(f"{elf} defines no `{IDLE_SYMBOL}`: the board cannot tell when the firmware parks")

        self.close()
        self._new_engine()
        for address, data in segments:
            if data:
                self.write(address, data)
        self._elf = elf
        self._symbols = symbols
        self._idle = symbols[IDLE_SYMBOL]
        if CONSOLE_SYMBOL in symbols:  # else an ELF that predates the choice: USART2
            base = int.from_bytes(self.read(symbols[CONSOLE_SYMBOL], 4), "little")
            if base not in self._uarts:
                raise BoardError(f"{elf}: `{CONSOLE_SYMBOL}` is 0x{base:08x}, not a UART this board models")
            self._console = self._uarts[base]
        initial_sp = int.from_bytes(self.read(FLASH_BASE, 4), "little")
        reset = int.from_bytes(self.read(FLASH_BASE + 4, 4), "little")
        if not reset & 1:
            raise BoardError(f"reset vector 0x{reset:08x} lacks the Thumb bit (a Cortex-M would fault at reset)")
        uc = self._engine()
        uc.reg_write(arm_const.UC_ARM_REG_MSP, initial_sp)
        uc.reg_write(arm_const.UC_ARM_REG_SP, initial_sp)
        self._resume_pc = reset & ~1
        assert self._header is not None
        self._header.stop_address = self._idle

    def _new_engine(self) -> None:
        uc = unicorn.Uc(unicorn.UC_ARCH_ARM, unicorn.UC_MODE_THUMB | unicorn.UC_MODE_MCLASS)
        uc.ctl_set_cpu_model(arm_const.UC_CPU_ARM_CORTEX_M4)
        # Host buffers mapped with mem_map_ptr: SRAM2 is one buffer seen at two addresses, like the silicon.
        # Bank 1 (code) is host memory the guest can read and run but never write; bank 2 goes through the
        # flash controller model, which programs and erases it. The SRAM buffers are the board's, not the
        # engine's: a new engine (an ELF load) finds them as the last one left them.
        self._flash = ctypes.create_string_buffer(BANK_BYTES)
        rx = unicorn.UC_PROT_READ | unicorn.UC_PROT_EXEC
        uc.mem_map_ptr(FLASH_BASE, BANK_BYTES, rx, ctypes.addressof(self._flash))
        uc.mem_map_ptr(SRAM1_BASE, SRAM1_SIZE, unicorn.UC_PROT_ALL, ctypes.addressof(self._sram1))
        uc.mem_map_ptr(SRAM2_BASE, SRAM2_SIZE, unicorn.UC_PROT_ALL, ctypes.addressof(self._sram2))
        uc.mem_map_ptr(SRAM2_ALIAS, SRAM2_SIZE, unicorn.UC_PROT_ALL, ctypes.addressof(self._sram2))

        def fault(message: str) -> None:
            self._fail(uc, message)

        self._scs = _RegisterFile(SCS_SIZE)
        self._mmio(uc, SCS_BASE, SCS_SIZE, self._scs.read, self._scs_write)
        self.dwt = CycleCounter(self.modelled_cycles,
                                lambda: bool(self._scs.read(DEMCR_OFFSET, 4) & DEMCR_TRCENA), fault)
        self._mmio(uc, DWT_BASE, DWT_SIZE, self.dwt.read, self.dwt.write)
        flash = self._flashctl = FlashController(self._bank2, self._power_cut, fault)
        self._mmio(uc, FLASH_REGS_BASE, PERIPH_SIZE, flash.read, self._flash_register_write)
        self._mmio(uc, FLASH_BASE + BANK_BYTES, BANK_BYTES, flash.read_bank, flash.write_bank)
        rcc = self.rcc = Rcc(flash.wait_states, lambda: pwr.voltage_range(), fault)
        pwr = self._pwr = Pwr(rcc, fault)
        self._mmio(uc, RCC_BASE, PERIPH_SIZE, rcc.read, rcc.write)
        self._mmio(uc, PWR_BASE, PERIPH_SIZE, pwr.read, pwr.write)
        ports = {"GPIOA": GpioPort("GPIOA", GPIOA_BASE, rcc, 0, fault),
                 "GPIOG": GpioPort("GPIOG", GPIOG_BASE, rcc, 6, fault)}
        self._mmio(uc, GPIOA_BASE, PERIPH_SIZE, ports["GPIOA"].read, ports["GPIOA"].write)
        self._mmio(uc, GPIOG_BASE, PERIPH_SIZE, ports["GPIOG"].read, ports["GPIOG"].write)
        self._uarts: dict[int, Uart] = {}
        for base, name, low_power in ((USART2_BASE, "USART2", False), (LPUART1_BASE, "LPUART1", True)):
            wiring = WIRING[base]

            def before_transmit(uart: Uart, wiring: ConsoleWiring = wiring) -> str | None:
                return console_problem(uart, wiring, rcc, pwr, ports)

            uart = self._uarts[base] = Uart(name, low_power, before_transmit, fault)
            self._mmio(uc, base, PERIPH_SIZE, uart.read, uart.write)
        self._console = self._uarts[USART2_BASE]

        uc.hook_add(
            unicorn.UC_HOOK_MEM_UNMAPPED | unicorn.UC_HOOK_MEM_PROT,
            self._on_bad_access,
        )
        uc.hook_add(unicorn.UC_HOOK_INTR, self._on_exception)
        self._uc = uc

        self._describe_fn = _DESCRIBE_CFUNC(self._describe_block)
        counter = self._lib.pyodl_counter_new(
            ctypes.cast(uclib.uc_emu_stop, ctypes.c_void_p),
            ctypes.cast(self._describe_fn, ctypes.c_void_p),
            FLASH_BASE,
            BANK_BYTES,
            ctypes.addressof(self._flash),
            flash.read(ACR, 4),
        )
        if not counter:
            raise MemoryError("allocating the native instruction counter failed")
        self._counter = counter
        self._header = _CounterHeader.from_address(counter)
        self._block_hook = self._native_hook_add(
            unicorn.UC_HOOK_BLOCK, ctypes.cast(self._lib.pyodl_block_hook, ctypes.c_void_p), counter
        )

        # Until the firmware enables the FPU in CPACR, every instruction is inspected for VFP encodings.
        self._fpu_hook_fn = _HOOK_CODE_CFUNC(self._on_code_before_fpu_enable)
        self._fpu_hook = self._native_hook_add(
            unicorn.UC_HOOK_CODE, ctypes.cast(self._fpu_hook_fn, ctypes.c_void_p), None
        )
        self._flush_tb = False
        self._broken = None
        self._error = None
        self._describe_error = ""
        self._last_run = (0, 0.0)

    @staticmethod
    def _mmio(
        uc: unicorn.Uc,
        base: int,
        size: int,
        read: Callable[[int, int], int],
        write: Callable[[int, int, int], None],
    ) -> None:
        uc.mmio_map(
            base,
            size,
            lambda _uc, offset, width, _ud: read(offset, width),
            None,
            lambda _uc, offset, width, value, _ud: write(offset, width, value),
            None,
        )

    def _native_hook_add(self, kind: int, callback: ctypes.c_void_p, user_data: int | None) -> int:
        handle = ctypes.c_size_t()
        status = uclib.uc_hook_add(
            self._engine()._uch,
            ctypes.byref(handle),
            kind,
            callback,
            ctypes.c_void_p(user_data),
            ctypes.c_uint64(1),  # begin > end: every address
            ctypes.c_uint64(0),
        )
        if status != unicorn.UC_ERR_OK:
            raise BoardError(f"installing a native Unicorn hook failed: {unicorn.UcError(status)}")
        return handle.value

    def close(self) -> None:
        # The engine holds pointers into the counter and the buffers; drop it before freeing them.
        self._uc = None
        self._header = None
        if self._counter is not None:
            self._lib.pyodl_counter_free(self._counter)
            self._counter = None

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()

    def _engine(self) -> unicorn.Uc:
        if self._uc is None:
            raise BoardError("no ELF loaded")
        return self._uc

    # ----------------------------------------------------------------- hooks

    def _fail(self, uc: unicorn.Uc, message: str) -> None:
        if self._error is None:
            self._error = BoardError(message)
        uc.emu_stop()

    def _power_cut(self, message: str) -> None:
        assert self._uc is not None
        if self._error is None:
            self._error = PowerCutError(message)
        self._uc.emu_stop()

    def _on_bad_access(self, uc: unicorn.Uc, access: int, address: int, size: int, value: int, _ud: object) -> bool:
        pc = uc.reg_read(arm_const.UC_ARM_REG_PC)
        kind = _ACCESS_NAMES.get(access, f"access (kind {access})")
        if access == unicorn.UC_MEM_WRITE_PROT and FLASH_BASE <= address < FLASH_BASE + FLASH_SIZE:
            what = f"guest write to read-only flash at 0x{address:08x}"
        elif access in (unicorn.UC_MEM_READ_PROT, unicorn.UC_MEM_WRITE_PROT, unicorn.UC_MEM_FETCH_PROT):
            what = f"{kind} of protected address 0x{address:08x}"
        else:
            what = f"{kind} of unmapped address 0x{address:08x}"
        self._fail(uc, f"{what} ({size} bytes) at PC 0x{pc:08x}")
        return False

    def _on_exception(self, uc: unicorn.Uc, intno: int, _ud: object) -> None:
        pc = uc.reg_read(arm_const.UC_ARM_REG_PC)
        if intno == _EXCP_PREFETCH_ABORT:
            # Unicorn reports a fetch from mapped but non-executable memory (MMIO) this way.
            self._fail(uc, f"instruction fetch of non-executable address 0x{pc:08x} (prefetch abort) at PC 0x{pc:08x}")
            return
        name = _EXCEPTION_NAMES.get(intno, "CPU exception")
        self._fail(uc, f"{name} (QEMU exception {intno}) at PC 0x{pc:08x}; the guest fault handler is not emulated")

    def _on_code_before_fpu_enable(self, _handle: int, address: int, size: int, _ud: object) -> None:
        # A ctypes callback must not raise: errors are parked in self._error and the engine is stopped.
        if size != 4 or self._error is not None:
            return
        try:
            raw = bytes(self._engine().mem_read(address, 4))
            first, second = int.from_bytes(raw[:2], "little"), int.from_bytes(raw[2:], "little")
            if _is_vfp(first, second):
                cpacr = self._scs.read(CPACR_ADDRESS - SCS_BASE, 4)
                self._fail(
                    self._engine(),
                    f"VFP instruction at PC 0x{address:08x} before CPACR enabled CP10/CP11 "
                    f"(CPACR = 0x{cpacr:08x}); real silicon takes a NOCP UsageFault here",
                )
        except Exception as exc:  # pragma: no cover - defensive: a Python error inside a C callback
            self._fail(self._engine(), f"internal error in the VFP check at PC 0x{address:08x}: {exc!r}")

    def _describe_block(self, address: int, size: int, out: ctypes._Pointer[_BlockCost]) -> int:
        # Called by the native hook the first time it enters a block (flash) or every time (SRAM).
        try:
            if address >= FLASH_BASE and address + size <= FLASH_BASE + BANK_BYTES:
                code = ctypes.string_at(ctypes.addressof(self._flash) + address - FLASH_BASE, size)
            else:
                code = bytes(self._engine().mem_read(address, size))
            assert self._flashctl is not None
            acr = self._flashctl.read(ACR, 4)
            cost = describe_block(code, address, acr & ACR_LATENCY_MASK, bool(acr & ACR_PRFTEN))
        except Exception as exc:  # a ctypes callback must not raise: the hook stops the run instead
            self._describe_error = f"{exc}"
            return 1
        out.contents.instructions = cost.instructions
        out.contents.cycles = cost.cycles
        out.contents.taken = cost.taken
        out.contents.fetch = cost.fetch
        out.contents.first_wide = int(cost.first_wide)
        return 0

    def _flash_register_write(self, offset: int, size: int, value: int) -> None:
        assert self._flashctl is not None
        self._flashctl.write(offset, size, value)
        if offset == ACR and self._counter is not None:
            # The fetch costs of the blocks described so far assumed the old wait states.
            self._lib.pyodl_counter_set_acr(self._counter, self._flashctl.read(ACR, 4))

    def _scs_write(self, offset: int, size: int, value: int) -> None:
        self._scs.write(offset, size, value)
        cpacr = self._scs.read(CPACR_ADDRESS - SCS_BASE, 4)
        if self._fpu_hook is not None and cpacr & CPACR_CP10_CP11_FULL == CPACR_CP10_CP11_FULL:
            # Unicorn defers the deletion to the end of the run, so this is safe inside a callback; the
            # ctypes thunk stays referenced (self._fpu_hook_fn) until the engine is gone.
            uclib.uc_hook_del(self._engine()._uch, self._fpu_hook)
            self._fpu_hook = None
            # Blocks translated while the hook existed keep calling into it; retranslate them once.
            self._flush_tb = True

    # ----------------------------------------------------------------- memory

    def _check_range(self, address: int, size: int) -> None:
        # SRAM1 and SRAM2 are adjacent, so one range may span both; MMIO is for the guest only.
        for base, length in (
            (FLASH_BASE, BANK_BYTES),
            (FLASH_BASE + BANK_BYTES, BANK_BYTES),
            (SRAM1_BASE, SRAM1_SIZE + SRAM2_SIZE),
            (SRAM2_ALIAS, SRAM2_SIZE),
        ):
            if base <= address and address + size <= base + length:
                return
        raise BoardError(f"host access to 0x{address:08x} (+{size} bytes) is not inside flash or SRAM")

    def read(self, address: int, size: int) -> bytes:
        uc = self._engine()
        self._check_range(address, size)
        if address >= FLASH_BASE + BANK_BYTES and address < FLASH_BASE + FLASH_SIZE:
            offset = address - FLASH_BASE - BANK_BYTES
            return bytes(self._bank2[offset : offset + size])
        return bytes(uc.mem_read(address, size))

    def write(self, address: int, data: bytes) -> None:
        """The host's (debugger's) write: RAM, or flash as a programmer writes it. Before any ELF is loaded,
        SRAM and flash bank 2 only (as Renode takes writes into a machine's memories before its LoadELF)."""
        self._check_range(address, len(data))
        if address >= FLASH_BASE + BANK_BYTES and address < FLASH_BASE + FLASH_SIZE:
            offset = address - FLASH_BASE - BANK_BYTES
            self._bank2[offset : offset + len(data)] = data
            return
        if self._uc is not None:
            # Through Unicorn (not the host buffers) so that translated blocks of overwritten code are dropped.
            self._uc.mem_write(address, bytes(data))
            return
        if SRAM2_ALIAS <= address < SRAM2_ALIAS + SRAM2_SIZE:
            address += SRAM2_BASE - SRAM2_ALIAS
        if not SRAM1_BASE <= address < SRAM1_BASE + SRAM1_SIZE + SRAM2_SIZE:
            raise BoardError("no ELF loaded")
        offset = address - SRAM1_BASE
        in_sram1 = max(0, min(len(data), SRAM1_SIZE - offset))
        if in_sram1:
            ctypes.memmove(ctypes.addressof(self._sram1) + offset, bytes(data[:in_sram1]), in_sram1)
        if in_sram1 < len(data):
            start = max(0, offset - SRAM1_SIZE)
            ctypes.memmove(ctypes.addressof(self._sram2) + start, bytes(data[in_sram1:]), len(data) - in_sram1)

    def bus_write(self, address: int, value: int) -> None:
        """A word written on the system bus as the CPU writes it (a debugger's bus access): a peripheral's
        model takes it with all its checks, and what would stop the firmware fails the board here too."""
        uc = self._engine()
        self._error = None
        try:
            uc.mem_write(address, struct.pack("<I", value & 0xFFFF_FFFF))
        except unicorn.UcError as exc:
            self._error = BoardError(f"bus write of 0x{address:08x}: {exc}")
        if self._error is not None:
            self._broken = str(self._error)
            raise self._error

    @property
    def flash(self) -> FlashController:
        """The flash controller and bank 2 (power cuts, the operations done so far)."""
        self._engine()
        assert self._flashctl is not None
        return self._flashctl

    # ----------------------------------------------------------------- running

    def symbol_address(self, name: str) -> int:
        try:
            return self._symbols[name]
        except KeyError:
            raise BoardError(f"{self._elf} has no symbol `{name}`") from None

    def run_until_idle(self, budget: int | None = None, expected: int | None = None) -> int:
        uc = self._engine()  # one run to the idle hook: nothing to gain from `expected`
        header = self._header
        assert header is not None
        if self._broken is not None:
            raise BoardError(f"the board faulted earlier ({self._broken}); reload the ELF")
        budget = self.budget if budget is None else budget
        if budget <= 0:
            raise ValueError("the instruction budget must be positive")
        begin = self._resume_pc
        assert begin is not None
        start = header.executed
        header.limit = start + budget
        header.stop_armed = 0 if begin == self._idle else 1
        header.stop_reason = 0
        self._error = None
        failure: str | None = None
        t0 = time.perf_counter()
        with _signals_stop(uc) as caught:
            try:
                uc.emu_start(begin | 1, _NO_UNTIL)
            except unicorn.UcError as exc:
                failure = str(exc)
        elapsed = time.perf_counter() - t0
        executed = header.executed - start
        self._last_run = (executed, elapsed)
        if self._flush_tb:
            uc.ctl_flush_tb()
            self._flush_tb = False
        pc = uc.reg_read(arm_const.UC_ARM_REG_PC)

        if caught:
            # Stopped between two blocks of a command: the firmware's state is not one a host can go on from.
            self._broken = f"interrupted by signal {caught[0]} at PC 0x{pc:08x}"
            signal.raise_signal(caught[0])  # now, to the handler that was in place before the run
        if self._error is not None:
            self._broken = str(self._error)
            raise self._error
        if failure is not None:
            self._broken = failure
            raise BoardError(f"Unicorn stopped with '{failure}' at PC 0x{pc:08x}")
        if header.stop_reason == _STOP_IDLE and pc == self._idle:
            self._resume_pc = pc
            return executed
        if header.stop_reason == _STOP_UNDESCRIBED:
            self._broken = f"undecodable block at 0x{header.failed_address:08x}"
            raise BoardError(f"the cycle model cannot decode the block at 0x{header.failed_address:08x}: "
                             f"{self._describe_error}")
        if header.stop_reason == _STOP_BUDGET:
            # The CPU state is consistent: a later run_until_idle continues from here.
            self._resume_pc = pc
            raise BoardError(
                f"the firmware did not reach {IDLE_SYMBOL} within the budget of {budget} instructions (PC 0x{pc:08x})"
            )
        self._broken = f"stopped at PC 0x{pc:08x}"
        raise BoardError(
            f"emulation stopped at PC 0x{pc:08x} before reaching {IDLE_SYMBOL} (a WFI, or an exit Unicorn "
            "does not report)"
        )

    def parked(self) -> bool:
        return self._uc is not None and self._broken is None and self._resume_pc == self._idle

    def executed_instructions(self) -> int:
        return 0 if self._header is None else int(self._header.executed)

    def modelled_cycles(self) -> int:
        """Cortex-M4 core cycles of the instructions executed since the ELF was loaded, by the cycle model
        (:mod:`pyodl.board.cycle_model`); the DWT cycle counter reads these, plus the time the host let
        pass while the firmware waited."""
        return 0 if self._header is None else int(self._header.cycles)

    def wait(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("time only goes forward")
        self.run_until_idle()  # bytes already sent arrive before the pause, not after it
        self.dwt.advance(round(seconds * self.rcc.sysclk_hz()))
        self.run_until_idle()

    @property
    def last_run_mips(self) -> float:
        """Millions of instructions per wall-clock second of the last run_until_idle."""
        executed, elapsed = self._last_run
        return executed / elapsed / 1e6 if elapsed > 0 else 0.0

    # ----------------------------------------------------------------- the console UART

    def uart_output(self) -> bytes:
        self._engine()
        out = bytes(self._console.tx)
        self._console.tx.clear()
        return out

    def uart_input(self, data: bytes) -> None:
        self._engine()
        self._console.rx.extend(data)
