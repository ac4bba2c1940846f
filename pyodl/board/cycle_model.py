"""What a block of Thumb-2 code costs in Cortex-M4F core cycles: the Unicorn board's cycle model.

The Unicorn board counts instructions per translated block in C (``unicorn_counter.c``). The first time it
enters a block it asks :func:`describe_block` what the block costs, memoises the answer (flash code never
changes) and from then on adds it up natively, so the simulator keeps its speed.

Sources, cited where they are used:

* **TRM**: ARM Cortex-M4 Processor Technical Reference Manual, r0p1 (ARM DDI 0439D), section 3.3.1 table 3-1
  (processor instruction timings), section 3.3.2 (load/store timings: pipelining of neighbouring loads and
  stores, address dependency stall) and section 7.2.3 table 7-1 (FPU instruction timings and its notes: FP
  arithmetic takes a cycle longer when the next instruction uses its result).
* **RM0351**: STM32L4x5/L4x6 reference manual, section 3.3.3 (flash read access latency, ART accelerator).

The model, in words. Every instruction costs its table cycles. A conditional instruction whose condition fails
still costs its cycles (the model does not know the flags). A branch costs 1 when it falls through and 1 + P
when it is taken; the board knows which, because the next block starts at the fall-through address or not.
P, the pipeline refill (TRM: "1 to 3 depending on the alignment and width of the target instruction, and
whether the processor manages to speculate the address early"), is modelled as 1 for immediate branches
(their target is known at decode and speculated), 2 for branches to a register (BX, BLX), 3 for a PC loaded
from memory (POP {pc}, LDR pc, LDM, TBB/TBH), plus 1 when the target is a 32-bit instruction that is not word
aligned (two fetches), at most 3. Instruction fetches from flash wait ``FLASH_ACR.LATENCY`` cycles per 64-bit
flash read unless the ART instruction cache holds the line; with the prefetch buffer on, the next 64 bits
are read while the current ones execute (the fetch model is in :func:`fetch_stall_cycles` and in the C hook).

One reading of the TRM is a choice: back-to-back VLDRs pipeline like LDRs (footnote b of table 3-1 is about
"load and store single instructions"; table 7-1 says nothing either way). If they do not, the paper's model
at T=100 Full costs 1.1% more cycles (3.53 instead of 3.49 per training MAC); the assembly tiles use VLDM,
whose 1 + N needs no such reading.

What it leaves out, and so how wrong it can be: data reads from flash (literal pools, TL's frozen weights)
get no wait states (the ART data cache and the 64-bit read make a streamed float array cost at most
LATENCY / 8 cycles per float on a real board); a divide costs :data:`DIVIDE_CYCLES` whatever its operands
(TRM: 2 to 12, early termination); the IT instruction always costs 1 (TRM: it can fold into the previous
16-bit instruction); no interrupts, no bus contention, no write-buffer stalls. The kernels' inner loops are
VLDR/VMUL/VADD and integer bookkeeping, whose table cycles are exact, so the expected error on training is a
few per cent (state it from a real board's DWT_CYCCNT when one is attached: ``pyodl board-check``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Final

import capstone
from capstone import arm_const as arm

DIVIDE_CYCLES: Final = 7  # TRM table 3-1: SDIV/UDIV 2-12, operand dependent; the middle of the range
P_IMMEDIATE: Final = 1  # target known at decode (B, B<c>, BL, CBZ/CBNZ): speculated early
P_REGISTER: Final = 2  # BX, BLX, MOV/ADD pc
P_LOADED: Final = 3  # PC loaded from memory (TRM 3.3.2: "three cycles for the pipeline reload")
FLASH_READ_BYTES: Final = 8  # RM0351 3.3.3: the flash is read 64 bits at a time


@dataclass(frozen=True)
class BlockCost:
    """A translated block's cost. ``cycles``: every instruction with branches falling through; ``taken``:
    the cycles a final branch adds when it is taken (0: the block does not end in a branch); ``fetch``:
    the stall cycles of fetching the block from flash when the instruction cache misses; ``first_wide``:
    the block's first instruction is 32 bits wide (a branch to it refills more slowly when it is not word
    aligned)."""

    instructions: int
    cycles: int
    taken: int
    fetch: int
    first_wide: bool


_INTEGER_LOADS: Final = frozenset({
    arm.ARM_INS_LDR, arm.ARM_INS_LDRB, arm.ARM_INS_LDRH, arm.ARM_INS_LDRSB, arm.ARM_INS_LDRSH,
    arm.ARM_INS_LDRT, arm.ARM_INS_LDRBT, arm.ARM_INS_LDRHT, arm.ARM_INS_LDRSBT, arm.ARM_INS_LDRSHT,
    arm.ARM_INS_LDREX, arm.ARM_INS_LDREXB, arm.ARM_INS_LDREXH,
})
_INTEGER_STORES: Final = frozenset({
    arm.ARM_INS_STR, arm.ARM_INS_STRB, arm.ARM_INS_STRH, arm.ARM_INS_STRT, arm.ARM_INS_STRBT,
    arm.ARM_INS_STRHT, arm.ARM_INS_STREX, arm.ARM_INS_STREXB, arm.ARM_INS_STREXH,
})
_MULTIPLE: Final = frozenset({
    arm.ARM_INS_LDM, arm.ARM_INS_LDMDB, arm.ARM_INS_STM, arm.ARM_INS_STMDB, arm.ARM_INS_PUSH, arm.ARM_INS_POP,
})
_FP_MULTIPLE: Final = frozenset({
    arm.ARM_INS_VLDMIA, arm.ARM_INS_VLDMDB, arm.ARM_INS_VSTMIA, arm.ARM_INS_VSTMDB, arm.ARM_INS_VPUSH,
    arm.ARM_INS_VPOP,
})
# TRM table 3-1, "Multiply": MUL, MLA, MLS, the long and the DSP multiplies all take 1 on the Cortex-M4.
_DIVIDE: Final = frozenset({arm.ARM_INS_SDIV, arm.ARM_INS_UDIV})
# TRM table 7-1: the multiply-accumulates (chained or fused) take 3, divide and square root 14.
_FP_THREE: Final = frozenset({
    arm.ARM_INS_VMLA, arm.ARM_INS_VMLS, arm.ARM_INS_VNMLA, arm.ARM_INS_VNMLS, arm.ARM_INS_VFMA,
    arm.ARM_INS_VFMS, arm.ARM_INS_VFNMA, arm.ARM_INS_VFNMS,
})
_FP_FOURTEEN: Final = frozenset({arm.ARM_INS_VDIV, arm.ARM_INS_VSQRT})
# TRM table 7-1, note: "FP arithmetic and conversions take one cycle longer if the next instruction uses
# their result"; multiply-accumulates consume their addend a cycle later, so a chain on one accumulator
# does not wait.
_FP_ARITHMETIC: Final = frozenset({
    arm.ARM_INS_VADD, arm.ARM_INS_VSUB, arm.ARM_INS_VMUL, arm.ARM_INS_VNMUL, arm.ARM_INS_VABS, arm.ARM_INS_VNEG,
    arm.ARM_INS_VCVT, arm.ARM_INS_VCVTR, arm.ARM_INS_VSQRT, arm.ARM_INS_VDIV,
}) | _FP_THREE
_IMMEDIATE_BRANCHES: Final = frozenset({arm.ARM_INS_B, arm.ARM_INS_BL, arm.ARM_INS_CBZ, arm.ARM_INS_CBNZ})
_REGISTER_BRANCHES: Final = frozenset({arm.ARM_INS_BX, arm.ARM_INS_BLX})
_TABLE_BRANCHES: Final = frozenset({arm.ARM_INS_TBB, arm.ARM_INS_TBH})


@dataclass(frozen=True)
class _Timing:
    cycles: int
    taken: int  # extra cycles when this instruction branches (0: it never does)
    single_load: bool  # pipelines the next single load/store (TRM 3.3.2)
    single_store_offset: int  # 0: not a single store; 1: immediate offset; 2: register offset
    address_registers: tuple[int, ...]  # registers the address of a load/store is computed from
    written: tuple[int, ...]  # registers a data-processing instruction writes (for the address stall)
    fp_result: tuple[int, ...] = ()  # the register an FP arithmetic instruction writes (for the result stall)


def _memory_operand(insn: capstone.CsInsn) -> capstone.arm.ArmOp | None:
    for op in insn.operands:
        if op.type == arm.ARM_OP_MEM:
            return op
    return None


def _register_operands(insn: capstone.CsInsn) -> list[int]:
    return [op.reg for op in insn.operands if op.type == arm.ARM_OP_REG]


def _timing(insn: capstone.CsInsn, written: tuple[int, ...]) -> _Timing:
    """``written``: the registers the instruction writes (capstone's regs_access, computed once)."""
    ident = insn.id
    registers = _register_operands(insn)
    memory = _memory_operand(insn)
    address = () if memory is None else tuple(r for r in (memory.mem.base, memory.mem.index) if r)
    if ident in (arm.ARM_INS_VLDR, arm.ARM_INS_VSTR) and registers and insn.reg_name(registers[0]).startswith("d"):
        return _Timing(3, 0, False, 0, address, ())  # TRM table 7-1: VLDR.64 and VSTR.64 3
    if ident in _INTEGER_LOADS or ident == arm.ARM_INS_VLDR:
        # TRM table 3-1: LDR 2 (table 7-1: VLDR 2); to the PC it is a branch from memory.
        if arm.ARM_REG_PC in registers[:1]:
            return _Timing(2, P_LOADED, False, 0, address, ())
        return _Timing(2, 0, True, 0, address, ())
    if ident in _INTEGER_STORES or ident == arm.ARM_INS_VSTR:
        # TRM 3.3.2: "STR Rx,[Ry,#imm] is always one cycle" (the write buffer takes it); a register
        # offset costs the table's 2, one less when it pipelines after a load.
        offset = 2 if memory is not None and memory.mem.index else 1
        return _Timing(offset, 0, False, offset, address, ())
    if ident in (arm.ARM_INS_LDRD, arm.ARM_INS_STRD):
        return _Timing(3, 0, False, 0, address, ())  # TRM table 3-1: 1 + N, N = 2; never pipelined
    if ident in _MULTIPLE:
        # TRM table 3-1: 1 + N registers; loading the PC (POP {.., pc}) is a return, + P.
        loaded_pc = ident in (arm.ARM_INS_POP, arm.ARM_INS_LDM, arm.ARM_INS_LDMDB) and arm.ARM_REG_PC in registers
        n = len(registers) - (0 if ident in (arm.ARM_INS_PUSH, arm.ARM_INS_POP) else 1)
        return _Timing(1 + n, P_LOADED if loaded_pc else 0, False, 0, (), ())
    if ident in _FP_MULTIPLE:
        # TRM table 7-1: VLDM/VSTM/VPUSH/VPOP 1 + N, N the number of 32-bit words moved.
        words = sum(2 if insn.reg_name(r).startswith("d") else 1 for r in registers
                    if insn.reg_name(r)[0] in "sd")
        return _Timing(1 + words, 0, False, 0, (), ())
    if ident in _IMMEDIATE_BRANCHES:
        return _Timing(1, P_IMMEDIATE, False, 0, (), ())
    if ident in _REGISTER_BRANCHES:
        return _Timing(1, P_REGISTER, False, 0, (), ())
    if ident in _TABLE_BRANCHES:
        # TRM 3.3.2: "at least two cycles for the load, one cycle for the add, and three cycles for the
        # pipeline reload".
        return _Timing(3, P_LOADED, False, 0, address, ())
    if ident in _DIVIDE:
        return _Timing(DIVIDE_CYCLES, 0, False, 0, (), written)
    if ident in _FP_THREE:
        return _Timing(3, 0, False, 0, (), (), written)
    if ident in _FP_FOURTEEN:
        return _Timing(14, 0, False, 0, (), (), written)
    if ident in _FP_ARITHMETIC:
        return _Timing(1, 0, False, 0, (), (), written)
    if ident == arm.ARM_INS_VMOV and any(_is_core(insn, r) for r in registers):
        # TRM table 7-1: VMOV of one float, or two, to or from core registers 2
        return _Timing(2, 0, False, 0, (), written)
    if ident == arm.ARM_INS_ISB:
        return _Timing(1 + P_LOADED, 0, False, 0, (), ())  # flushes the pipeline: a refill
    if arm.ARM_REG_PC in written:
        return _Timing(1, P_REGISTER, False, 0, (), ())  # MOV pc / ADD pc: a branch to a register
    # Everything else, integer data processing, MUL and the DSP multiplies, IT, NOP, barriers, MRS/MSR,
    # and the FPU's VCMP, VMOV between FP registers or of an immediate, VMRS, VMSR: 1.
    return _Timing(1, 0, False, 0, (), written)


def _is_core(insn: capstone.CsInsn, register: int) -> bool:
    """r0..r12, sb, sl, fp, ip, sp, lr, pc; not the FPU's s0..s31 or d0..d15."""
    name = insn.reg_name(register)
    return not (name[0] in "sd" and name[1:].isdigit())


def _access(insn: capstone.CsInsn) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The registers the instruction reads and writes."""
    try:
        read, written = insn.regs_access()
    except capstone.CsError:
        return (), ()
    return tuple(read), tuple(written)


@functools.cache
def _disassembler() -> capstone.Cs:
    md = capstone.Cs(capstone.CS_ARCH_ARM, capstone.CS_MODE_THUMB | capstone.CS_MODE_MCLASS)
    md.detail = True
    return md


def _price(code: bytes, address: int) -> tuple[list[tuple[int, int, int]], int]:
    """(address, size, cycles) of each instruction of a straight-line block, with the pipelining rules of
    TRM 3.3.2 applied, branches falling through; and what the last instruction adds when it branches."""
    out: list[tuple[int, int, int]] = []
    previous: _Timing | None = None
    decoded = 0
    for insn in _disassembler().disasm(code, address):
        read, written = _access(insn)
        timing = _timing(insn, written)
        cycles = timing.cycles
        after_load = previous is not None and previous.single_load
        if after_load and timing.single_load:
            cycles -= 1  # "LDR [any] are pipelined when possible ... one cycle is removed"
        elif after_load and timing.single_store_offset == 2:
            cycles -= 1
        if previous is not None and timing.address_registers and set(timing.address_registers) & set(previous.written):
            cycles += 1  # "an address dependent on the result of a preceding data processing operation"
        if previous is not None and previous.fp_result:
            used = set(read)
            if insn.id in _FP_THREE:  # the addend (the destination) is read a cycle later
                used -= set(written)
            if used & set(previous.fp_result):
                cycles += 1  # TRM table 7-1 note: the previous FP instruction's result used at once
        out.append((insn.address, insn.size, cycles))
        previous = timing
        decoded += insn.size
    if decoded != len(code):
        raise ValueError(f"cannot decode the Thumb-2 code at 0x{address + decoded:08x}")
    return out, 0 if previous is None else previous.taken


def instruction_costs(code: bytes, address: int) -> list[tuple[int, int, int]]:
    """(address, size, cycles) of each instruction of a straight-line block (see _price)."""
    return _price(code, address)[0]


def fetch_stall_cycles(costs: list[tuple[int, int, int]], wait_states: int, prefetch: bool) -> int:
    """Cycles the core waits for a block's instructions when they come from flash, not the cache.

    RM0351 3.3.3: flash is read 64 bits at a time, each read taking LATENCY + 1 cycles. The first read of a
    block waits the whole latency (a branch got us here); each next one waits it again without the prefetch
    buffer, and with it only what the previous 64 bits' instructions did not cover, because the prefetch
    starts the next read when the previous one arrives."""
    if wait_states <= 0 or not costs:
        return 0
    spent: dict[int, int] = {}
    for addr, _size, cycles in costs:
        spent[addr // FLASH_READ_BYTES] = spent.get(addr // FLASH_READ_BYTES, 0) + cycles
    first = costs[0][0] // FLASH_READ_BYTES
    last = (costs[-1][0] + costs[-1][1] - 1) // FLASH_READ_BYTES
    stall = wait_states
    for line in range(first + 1, last + 1):
        stall += max(0, wait_states + 1 - spent.get(line - 1, 0)) if prefetch else wait_states
    return stall


@functools.lru_cache(maxsize=1 << 16)  # every board loading the same ELF asks for the same blocks
def describe_block(code: bytes, address: int, wait_states: int = 0, prefetch: bool = False) -> BlockCost:
    costs, taken = _price(code, address)
    if not costs:
        raise ValueError(f"empty block at 0x{address:08x}")
    return BlockCost(
        instructions=len(costs),
        cycles=sum(c for _a, _s, c in costs),
        taken=taken,
        fetch=fetch_stall_cycles(costs, wait_states, prefetch),
        first_wide=costs[0][1] == 4,
    )
