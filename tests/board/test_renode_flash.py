"""renode/stm32l496.repl's flash controller (`flashctl`, a Renode Python peripheral), run here by CPython
through the attributes Renode hands a script: first against the Unicorn board's model of the same
controller, operation for operation, then in place of that model under the real firmware, SAVE, LOAD,
power cycles and power cuts included. What this cannot check is Renode itself (IronPython, the bus): that
runs in the GitHub workflow's Renode job (robot/persist.robot)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import pyodl.board.unicorn as unicorn_board
from pyodl.board import flash_controller as fc
from pyodl.board.mailbox import MailboxTransport
from pyodl.board.protocol import CommandError
from pyodl.board.unicorn import UnicornBoard
from pyodl.model.architecture import paper_model
from pyodl.network.board import BoardNetwork
from pyodl.toolchain.firmware import Firmware

REPO = Path(__file__).resolve().parents[2]
REPL = (REPO / "renode" / "stm32l496.repl").read_text()
BANK2 = 0x0808_0000
SR_OPERR = 1 << 1


def _script(name: str = "flashctl") -> str:
    match = re.search(rf"\n{name}: Python\.PythonPeripheral @ .*?script: '''\n(.*?)'''", REPL, re.S)
    assert match, f"no {name} script in the repl"
    return match[1]


CODE = compile(_script(), "stm32l496.repl:flashctl", "exec")


class _Request:
    """PeripheralPythonEngine.PythonRequest: what Renode sets before it runs the script."""

    def __init__(self, kind: str, absolute: int = 0, value: int = 0, length: int = 4, offset: int = 0) -> None:
        self.IsInit, self.IsRead, self.IsWrite, self.IsUser = (kind == k for k in ("init", "read", "write", "user"))
        self.Absolute, self.Value, self.Length, self.Offset = absolute, value, length, offset


class ScriptedFlash:
    """The repl's script behind FlashController's interface, so the Unicorn board can run it instead.
    ``self.Log`` (Renode's logging extension) reports to ``on_fault``, as the board's model does."""

    def __init__(self, bank: bytearray, on_cut: Callable[[str], None], on_fault: Callable[[str], None]) -> None:
        self.bank = bank
        peripheral = SimpleNamespace(Log=lambda _level, message: on_fault(message))
        # `bank` already bound: the script keeps it, as it keeps its own across a Renode `machine Reset`.
        self._scope: dict[str, object] = {"self": peripheral, "LogLevel": SimpleNamespace(Error="Error"),
                                          "bank": bank}
        self._run(_Request("init"))

    def _run(self, request: _Request) -> int:
        self._scope["request"] = request
        exec(CODE, self._scope)
        return int(request.Value)

    def read(self, offset: int, size: int) -> int:
        return self._run(_Request("read", fc.FLASH_REGS_BASE + offset, length=size))

    def write(self, offset: int, size: int, value: int) -> None:
        self._run(_Request("write", fc.FLASH_REGS_BASE + offset, value, size))

    def read_bank(self, offset: int, size: int) -> int:
        return self._run(_Request("read", BANK2 + offset, length=size))

    def write_bank(self, offset: int, size: int, value: int) -> None:
        self._run(_Request("write", BANK2 + offset, value, size))

    def wait_states(self) -> int:
        """FLASH_ACR.LATENCY, read through the script as the clock model reads the Unicorn model's."""
        return self.read(fc.ACR, 4) & 0x7

    def cut_power(self, operation: int, halfway: bool) -> None:
        """``sysbus.flashctl ControlWrite 1|2 n``."""
        self._run(_Request("user", value=operation, offset=2 if halfway else 1))


def _pair() -> tuple[fc.FlashController, ScriptedFlash, list[str]]:
    faults: list[str] = []
    model = fc.FlashController(bytearray(b"\xff" * fc.BANK_BYTES), lambda _: None, faults.append)
    script = ScriptedFlash(bytearray(b"\xff" * fc.BANK_BYTES), lambda _: None, faults.append)
    return model, script, faults


def test_the_script_starts_erased_and_locked_and_keeps_its_bank_over_a_reset() -> None:
    scope: dict[str, object] = {"self": None, "LogLevel": None, "request": _Request("init")}
    exec(CODE, scope)
    bank = scope["bank"]
    assert isinstance(bank, bytearray) and bank == b"\xff" * fc.BANK_BYTES
    bank[0] = 0
    scope["request"] = _Request("init")  # PythonPeripheral.Reset runs the init request again
    exec(CODE, scope)
    assert scope["bank"] is bank and bank[0] == 0
    scope["request"] = _Request("read", fc.FLASH_REGS_BASE + fc.CR)
    exec(CODE, scope)
    assert scope["request"].Value == fc.CR_RESET  # type: ignore[attr-defined]


# Register and bank accesses as the firmware and a careless one make them: (window, offset, size, value);
# value None is a read.
ACCESSES: list[tuple[str, int, int, int | None]] = [
    ("reg", fc.CR, 4, fc.CR_PG),  # ignored while locked
    ("reg", fc.CR, 4, None),
    ("reg", fc.KEYR, 4, fc.KEY1), ("reg", fc.KEYR, 4, fc.KEY2),
    ("reg", fc.CR, 4, fc.CR_PG), ("bank", 16, 4, 0x1122_3344), ("bank", 20, 4, 0x5566_7788),
    ("bank", 16, 4, None), ("bank", 17, 1, None), ("bank", 18, 2, None), ("reg", fc.SR, 4, None),
    ("bank", 16, 4, 1), ("bank", 20, 4, 1),  # not erased: PROGERR
    ("reg", fc.SR, 4, None), ("reg", fc.SR, 4, fc.SR_PROGERR), ("reg", fc.SR, 4, None),
    ("bank", 28, 4, 0),  # not double-word aligned: PGAERR
    ("bank", 32, 2, 0),  # halfword: SIZERR
    ("reg", fc.SR, 4, None), ("reg", fc.SR, 4, 0xFFFF_FFFF),
    ("reg", fc.CR, 4, 0), ("bank", 40, 4, 0),  # without PG: PGSERR
    ("reg", fc.CR, 4, fc.CR_PER | fc.CR_STRT),  # bank 1: WRPERR
    ("reg", fc.SR, 4, None), ("reg", fc.SR, 4, 0xFFFF_FFFF),
    ("reg", fc.CR, 4, fc.CR_PER | fc.CR_PG | fc.CR_BKER | fc.CR_STRT),  # PG with STRT: PGSERR
    ("reg", fc.CR, 4, fc.CR_PER | fc.CR_BKER | (0 << fc.CR_PNB_SHIFT) | fc.CR_STRT),  # erase page 0
    ("bank", 16, 4, None), ("reg", fc.CR, 4, None), ("reg", fc.SR, 4, None), ("reg", fc.SR, 1, None),
    ("reg", fc.WRP1AR, 4, None), ("reg", fc.SR, 2, 0),  # a halfword register write: SIZERR
    ("reg", fc.SR, 4, None),
    ("reg", fc.CR, 4, fc.CR_LOCK), ("reg", fc.KEYR, 4, fc.KEY2),  # wrong key: locked until reset
    ("reg", fc.KEYR, 4, fc.KEY1), ("reg", fc.KEYR, 4, fc.KEY2), ("reg", fc.CR, 4, None),
    ("reg", fc.ACR, 4, None), ("reg", fc.ACR, 4, 0xFFFF_FFF4), ("reg", fc.ACR, 4, None),  # wait states
    ("reg", 0x04, 4, 4), ("reg", 0x20, 4, None),  # PDKEYR and OPTR: not modelled
]


def test_the_script_answers_every_access_as_the_unicorn_model_does() -> None:
    model, script, faults = _pair()
    for window, offset, size, value in ACCESSES:
        answers = []
        for ctl in (model, script):
            if window == "reg":
                answers.append(ctl.read(offset, size) if value is None else ctl.write(offset, size, value))
            else:
                answers.append(ctl.read_bank(offset, size) if value is None else ctl.write_bank(offset, size, value))
        assert answers[0] == answers[1], (window, offset, size, value)
        assert model.bank == script.bank, (window, offset, size, value)
    # Each unmodelled register reported by both, in the same words (Renode's platform, Unicorn's board).
    assert [f.replace("platform", "board") for f in faults] == 2 * [
        "write of FLASH register offset 0x04, which the board does not model"] + 2 * [
        "read of FLASH register offset 0x20, which the board does not model"]


# Set by Renode in every script's scope (PythonEngine and PeripheralPythonEngine's reserved variables): not saved.
RESERVED = {"__builtins__", "request", "self", "size", "logger", "LogLevel"}


def _saveable(value: object) -> bool:
    """What Renode's serializer takes from a script's scope: plain data. A function (def, lambda), a class or
    a module fails `Save` ("Pointer or ThreadLocal or SpinLock encountered during serialization"), and so does
    None (PythonEngine asks every value for its type: a NullReferenceException); both seen on Renode 1.16.1."""
    if isinstance(value, int | float | str | bytes | bytearray):
        return True
    if isinstance(value, list | tuple):
        return all(_saveable(v) for v in value)
    if isinstance(value, dict):
        return all(_saveable(k) and _saveable(v) for k, v in value.items())
    return False


def test_every_python_peripheral_keeps_only_data_that_renode_can_save() -> None:
    """Every variable a script leaves in its scope after init, register accesses and (flashctl) a power cut."""
    _, flash, _ = _pair()
    for window, offset, size, value in ACCESSES:
        if window == "reg":
            flash.read(offset, size) if value is None else flash.write(offset, size, value)
        else:
            flash.read_bank(offset, size) if value is None else flash.write_bank(offset, size, value)
    flash.cut_power(1, True)
    flash.write(fc.CR, 4, fc.CR_PER | fc.CR_BKER | fc.CR_STRT)
    scopes = {"flashctl": flash._scope}
    for name in ("pwr", "rcc"):
        code = compile(_script(name), f"stm32l496.repl:{name}", "exec")
        scope: dict[str, object] = {"self": SimpleNamespace(Log=lambda *_: None),
                                    "LogLevel": SimpleNamespace(Error="Error")}
        for request in (_Request("init"), _Request("write", value=0x100, offset=0x00),
                        _Request("read", offset=0x00), _Request("write", value=1, offset=0x08)):
            scope["request"] = request
            exec(code, scope)
        scopes[name] = scope
    for name, scope in scopes.items():
        kept = {k: type(v).__name__ for k, v in scope.items() if k not in RESERVED and not _saveable(v)}
        assert not kept, f"{name} keeps what Renode cannot save: {kept}"


@pytest.mark.parametrize("halfway", [False, True], ids=["before", "halfway"])
def test_a_cut_changes_what_the_model_changes_then_nothing_until_reset(halfway: bool) -> None:
    model, script, _ = _pair()
    for ctl in (model, script):
        ctl.write(fc.KEYR, 4, fc.KEY1)
        ctl.write(fc.KEYR, 4, fc.KEY2)
        ctl.cut_power(2, halfway)
        ctl.write(fc.CR, 4, fc.CR_PG)
        for offset, word in ((0, 1), (4, 2), (8, 3), (12, 4)):  # two programs; the cut is at the second
            ctl.write_bank(offset, 4, word)
    assert model.bank == script.bank and model.read_bank(8, 8) == (0xFFFF_FFFF_0000_0003 if halfway else 2**64 - 1)
    # The Unicorn board stops the CPU; the script stays powered but inert, reporting OPERR.
    assert script.read(fc.SR, 4) == SR_OPERR
    script.write(fc.SR, 4, 0xFFFF_FFFF)
    script.write(fc.CR, 4, fc.CR_PER | fc.CR_BKER | fc.CR_STRT)
    script.write_bank(16, 4, 0)
    script.write_bank(20, 4, 0)
    assert script.read(fc.SR, 4) == SR_OPERR and script.bank == model.bank


# ---------------------------------------------------------------- under the firmware


@pytest.fixture()
def scripted_board(paper_firmware: Firmware, monkeypatch: pytest.MonkeyPatch) -> Iterator[UnicornBoard]:
    """The Unicorn board with the repl's flash script in place of its own model."""
    monkeypatch.setattr(unicorn_board, "FlashController", ScriptedFlash)
    with UnicornBoard(paper_firmware.elf) as board:
        yield board


def _net(board: UnicornBoard) -> BoardNetwork:
    return BoardNetwork(MailboxTransport(board), paper_model(40, 0).arch)


def _train(net: BoardNetwork, seed: int) -> list:
    rng = np.random.default_rng(seed)
    net.train_step(rng.normal(size=(8, 40, 3)).astype(np.float32), rng.integers(0, 6, size=8), 0.05)
    return net.get_params()


def _same(a: list, b: list) -> bool:
    return all(np.array_equal(w1, w2) and np.array_equal(b1, b2) for (w1, b1), (w2, b2) in zip(a, b, strict=True))


def test_the_firmware_saves_and_boots_its_weights_through_the_script(scripted_board: UnicornBoard) -> None:
    net = _net(scripted_board)
    assert isinstance(scripted_board.flash, ScriptedFlash) and net.info().boot_slot == 0
    first = _train(net, 1)
    assert net.save() == (0, 1)
    second = _train(net, 2)
    assert net.save() == (1, 2)
    scripted_board.reset()
    net = _net(scripted_board)
    assert net.info().boot_slot == 2 and _same(net.get_params(), second)
    assert net.load() == (1, 2) and not _same(first, second)


@pytest.mark.parametrize(("cut", "halfway"), [(1, True), (20, False), (21, True), (2500, False), (5063, True),
                                              (5067, True)])
def test_a_cut_during_save_fails_it_and_boot_keeps_the_previous_copy(scripted_board: UnicornBoard, cut: int,
                                                                   halfway: bool) -> None:
    """The paper's Full model: 20 page erases, 5,043 state double-words, the header's 4 (5,067 in all): the
    first and last erase, the first, a middle and the last state double-word, the header's commit word."""
    net = _net(scripted_board)
    first = _train(net, 1)
    net.save()
    _train(net, 2)
    scripted_board.flash.cut_power(cut, halfway)
    with pytest.raises(CommandError, match="flash"):
        net.save()
    scripted_board.reset()  # the power comes back
    net = _net(scripted_board)
    assert net.info().boot_slot == 1 and _same(net.get_params(), first)
