"""The STM32L4 flash controller model: what the firmware's flash driver may rely on, and what it reports
when misused."""

from __future__ import annotations

import pytest

from pyodl.board import flash_controller as fc


def _controller() -> tuple[fc.FlashController, list[str]]:
    cuts: list[str] = []

    def fault(message: str) -> None:
        raise AssertionError(message)

    return fc.FlashController(bytearray(b"\xff" * fc.BANK_BYTES), cuts.append, fault), cuts


def _unlock(ctl: fc.FlashController) -> None:
    ctl.write(fc.KEYR, 4, fc.KEY1)
    ctl.write(fc.KEYR, 4, fc.KEY2)


def _program(ctl: fc.FlashController, offset: int, low: int, high: int) -> None:
    ctl.write(fc.CR, 4, fc.CR_PG)
    ctl.write_bank(offset, 4, low)
    ctl.write_bank(offset + 4, 4, high)
    ctl.write(fc.CR, 4, 0)


def test_unlock_program_erase() -> None:
    ctl, _ = _controller()
    assert ctl.read(fc.CR, 4) & fc.CR_LOCK
    ctl.write(fc.CR, 4, fc.CR_PG)  # ignored while locked
    assert ctl.read(fc.CR, 4) == fc.CR_RESET
    _unlock(ctl)
    assert not ctl.read(fc.CR, 4) & fc.CR_LOCK
    _program(ctl, 16, 0x1122_3344, 0x5566_7788)
    assert ctl.read_bank(16, 8) == 0x5566_7788_1122_3344 and ctl.read(fc.SR, 4) == 0
    ctl.write(fc.CR, 4, fc.CR_PER | fc.CR_BKER | (0 << fc.CR_PNB_SHIFT) | fc.CR_STRT)
    assert ctl.read_bank(16, 8) == 0xFFFF_FFFF_FFFF_FFFF
    assert [op.kind for op in ctl.operations] == ["program", "erase"]


@pytest.mark.parametrize(("misuse", "flag"), [
    ("program twice", fc.SR_PROGERR),
    ("unaligned", fc.SR_PGAERR),
    ("without PG", fc.SR_PGSERR),
    ("erase bank 1", fc.SR_WRPERR),
    ("halfword", fc.SR_SIZERR),
])
def test_misuse_sets_its_error_flag_and_changes_nothing(misuse: str, flag: int) -> None:
    ctl, _ = _controller()
    _unlock(ctl)
    _program(ctl, 0, 0, 0)
    before = bytes(ctl.bank)
    if misuse == "program twice":
        _program(ctl, 0, 1, 1)
    elif misuse == "unaligned":
        ctl.write(fc.CR, 4, fc.CR_PG)
        ctl.write_bank(12, 4, 0)
    elif misuse == "without PG":
        ctl.write(fc.CR, 4, 0)
        ctl.write_bank(8, 4, 0)
    elif misuse == "erase bank 1":
        ctl.write(fc.CR, 4, fc.CR_PER | fc.CR_STRT)
    else:
        ctl.write(fc.CR, 4, fc.CR_PG)
        ctl.write_bank(8, 2, 0)
    assert ctl.read(fc.SR, 4) & flag and bytes(ctl.bank) == before
    ctl.write(fc.SR, 4, flag)  # write 1 to clear
    assert ctl.read(fc.SR, 4) == 0


def test_a_wrong_key_locks_until_reset() -> None:
    ctl, _ = _controller()
    ctl.write(fc.KEYR, 4, fc.KEY2)
    _unlock(ctl)
    assert ctl.read(fc.CR, 4) & fc.CR_LOCK


def test_power_cut_before_or_halfway_through_an_operation() -> None:
    ctl, cuts = _controller()
    _unlock(ctl)
    ctl.cut_power(2, halfway=True)
    _program(ctl, 0, 0, 0)
    _program(ctl, 8, 0x1234, 0x5678)  # the second operation: only its first word lands
    assert ctl.read_bank(8, 8) == 0xFFFF_FFFF_0000_1234 and len(cuts) == 1
    ctl.cut_power(1, halfway=False)
    ctl.write(fc.CR, 4, fc.CR_PER | fc.CR_BKER | fc.CR_STRT)
    assert ctl.read_bank(0, 8) == 0 and len(cuts) == 2  # cut before the erase: nothing erased
    ctl.cut_power(1, halfway=True)
    ctl.write(fc.CR, 4, fc.CR_PER | fc.CR_BKER | fc.CR_STRT)
    assert ctl.read_bank(0, 16) == (1 << 128) - 1 and ctl.read_bank(fc.PAGE_BYTES // 2 - 8, 8) == 2**64 - 1


def test_a_register_the_model_does_not_implement_is_a_fault() -> None:
    faults: list[str] = []
    ctl = fc.FlashController(bytearray(b"\xff" * fc.BANK_BYTES), lambda _: None, faults.append)
    ctl.write(0x04, 4, 4)  # PDKEYR: not modelled
    ctl.read(0x20, 4)  # OPTR
    assert faults == ["write of FLASH register offset 0x04, which the board does not model",
                      "read of FLASH register offset 0x20, which the board does not model"]


def test_acr_keeps_the_wait_states_and_cache_bits() -> None:
    ctl, _ = _controller()
    assert ctl.read(fc.ACR, 4) == fc.ACR_RESET and ctl.wait_states() == 0
    ctl.write(fc.ACR, 4, 0xFFFF_FF04)  # LATENCY 4 and every other bit: the reserved ones stay 0
    assert ctl.read(fc.ACR, 4) == 0x7F04 and ctl.wait_states() == 4
