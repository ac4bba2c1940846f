"""The network on a board: it refuses a board running another model, and bad parameters before writing; its
personalization survives a reset and a power cut at any flash operation (SAVE and LOAD on the A/B slots;
tests/board/test_flash_controller.py covers the controller model itself); the firmware's clock and console
setup (80 MHz, LPUART1, and the build options that keep the reset clock or use USART2)."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from pyodl.board.base import BoardError, PowerCutError
from pyodl.board.flash_controller import BANK_BYTES, Operation
from pyodl.board.mailbox import MailboxTransport
from pyodl.board.protocol import CLOCK_STATUSES, STATUS_CODES, Command, CommandError, Request
from pyodl.board.uart import BoardUart, UartTransport
from pyodl.board.unicorn import UnicornBoard
from pyodl.model.architecture import paper_model
from pyodl.model.optimizer import Optimizer
from pyodl.network.board import BoardNetwork, ModelMismatchError
from pyodl.toolchain.firmware import Firmware, FirmwareBuilder
from pyodl.toolchain.memory_map import LPUART1_BASE, USART2_BASE


def test_refuses_a_board_running_another_model(paper_board: UnicornBoard) -> None:
    with pytest.raises(ModelMismatchError, match=r"\(60, 3, 6, 7\): flash firmware built for this model"):
        BoardNetwork(MailboxTransport(paper_board), paper_model(60, 0).arch)


def test_refuses_a_board_training_with_another_optimizer(paper_board: UnicornBoard) -> None:
    with pytest.raises(ModelMismatchError, match="trains with ODL_OPT_SGD, expected ODL_OPT_ADAM"):
        BoardNetwork(MailboxTransport(paper_board), paper_model(40, 0).arch, optimizer=Optimizer.parse("adam"))


def _same(a: list, b: list) -> bool:
    return all(np.array_equal(w1, w2) and np.array_equal(b1, b2) for (w1, b1), (w2, b2) in zip(a, b, strict=True))


@pytest.mark.parametrize("bad_value", [np.nan, np.inf, 1e5])
def test_bad_parameters_are_refused_before_anything_is_written(paper_board: UnicornBoard, bad_value: float) -> None:
    """Every layer changed, the last one holding a value the firmware refuses (beyond the default bound
    1e4): no layer may be written, or the model would be left half old, half new."""
    net = BoardNetwork(MailboxTransport(paper_board), paper_model(40, 0).arch)
    assert net.info().param_bound == 1e4
    before = net.get_params()
    bad = [(w + 0.5, b + 0.5) for w, b in before]
    bad[-1][0][-1, -1] = bad_value
    with pytest.raises(ValueError, match=r"finite and within \+-10000"):
        net.set_params(bad)
    assert _same(before, net.get_params())


def test_a_diverging_step_is_rejected_and_the_model_stays_usable(paper_board: UnicornBoard) -> None:
    net = BoardNetwork(MailboxTransport(paper_board), paper_model(40, 0).arch)
    x = np.random.default_rng(0).normal(size=(4, 40, 3)).astype(np.float32)
    before, probs = net.get_params(), net.forward(x[0])
    with pytest.raises(CommandError, match="step rejected") as err:
        net.train_step(x, np.array([0, 1, 2, 3]), 1e20)
    assert err.value.status == STATUS_CODES["ODL_ERR_STEP_REJECTED"]
    assert _same(before, net.get_params()) and net.info().accumulated == 0
    np.testing.assert_array_equal(net.forward(x[0]), probs)
    net.train_step(x, np.array([0, 1, 2, 3]), 0.01)  # and it trains on
    assert not _same(before, net.get_params())


def test_a_refused_sample_leaves_nothing_of_its_batch_behind(paper_board: UnicornBoard) -> None:
    net = BoardNetwork(MailboxTransport(paper_board), paper_model(40, 0).arch)
    x = np.random.default_rng(1).normal(size=(8, 40, 3)).astype(np.float32)
    x[5, 3, 1] = np.nan  # refused by the firmware after five samples were accumulated
    with pytest.raises(CommandError, match="NaN or infinity"):
        net.train_step(x, np.arange(8) % 6, 0.01)
    assert net.info().accumulated == 0


def test_a_refusal_answers_with_its_status_alone(paper_board: UnicornBoard) -> None:
    """A command that fails after it set results (TRAIN_SAMPLE on a window whose activations overflow) must
    not hand them back: the host would read the previous sample's count as this one's."""
    transport = MailboxTransport(paper_board)
    net = BoardNetwork(transport, paper_model(40, 0).arch)
    net.accumulate(np.ones((40, 3), np.float32), 1)
    net.load_sample(np.full((40, 3), 3e38, np.float32))  # finite, so LOAD_SAMPLE takes it
    reply = transport.execute(Request(Command.TRAIN_SAMPLE, (2, 0, 0, 0)))
    assert reply.status == STATUS_CODES["ODL_ERR_NONFINITE"]
    assert reply.results == (0, 0, 0, 0) and reply.result_f == 0.0 and reply.data == b""


def test_a_firmware_whose_table_fails_its_check_answers_info_only(paper_firmware: Firmware) -> None:
    """odl_init refuses the table (here: a parameter bound of 0, patched into the flash image of .data):
    INFO still answers, so the host can see what runs; every other command answers the init failure."""
    with UnicornBoard(paper_firmware.elf) as board:
        # odl_model's initial value in flash, where startup copies .data from; 1e4 is its only float 1e4.
        image = board.symbol_address("_sidata") + board.symbol_address("odl_model") - board.symbol_address("_sdata")
        initial = board.read(image, 84)
        assert initial.count(struct.pack("<f", 1e4)) == 1
        board.write(image + initial.index(struct.pack("<f", 1e4)), struct.pack("<f", 0.0))
        transport = MailboxTransport(board)
        assert transport.execute(Request(Command.INFO)).status == 0
        for command in (Command.LAYER_INFO, Command.PREDICT, Command.SGD_STEP, Command.ZERO_GRADS):
            assert transport.execute(Request(command)).status == STATUS_CODES["ODL_ERR_MODEL"], command.name


# ---------------------------------------------------------------- persistence: SAVE, LOAD, power cuts

def _batch(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(8, 40, 3)).astype(np.float32), rng.integers(0, 6, size=8)


def _net(board: UnicornBoard) -> BoardNetwork:
    return BoardNetwork(MailboxTransport(board), paper_model(40, 0).arch)


def test_saved_weights_come_back_after_a_reset_newest_first(paper_board: UnicornBoard) -> None:
    net = _net(paper_board)
    assert (net.info().boot_slot, net.info().boot_sequence) == (0, 0)  # erased flash: the exported defaults
    with pytest.raises(CommandError, match="no flash slot holds a valid copy"):
        net.load()
    defaults = net.get_params()
    net.train_step(*_batch(1), 0.05)
    first = net.get_params()
    assert net.save() == (0, 1)
    net.train_step(*_batch(2), 0.05)
    second = net.get_params()
    assert net.save() == (1, 2)

    paper_board.reset()  # power cycle: RAM gone, flash kept
    net = _net(paper_board)
    assert (net.info().boot_slot, net.info().boot_sequence) == (2, 2)
    assert _same(net.get_params(), second) and not _same(second, first)
    net.set_params(defaults)
    assert net.load() == (1, 2) and _same(net.get_params(), second)
    net.train_step(*_batch(3), 0.05)
    assert net.save() == (0, 3)  # the older slot is the one overwritten


def test_a_corrupt_slot_is_skipped_for_the_other_one(paper_board: UnicornBoard) -> None:
    net = _net(paper_board)
    net.train_step(*_batch(1), 0.05)
    first = net.get_params()
    net.save()
    net.train_step(*_batch(2), 0.05)
    net.save()  # slot B, sequence 2
    slot_bytes = 40960  # ODL_SLOT_BYTES of the paper's Full model
    flipped = 0x0808_0000 + slot_bytes + 32 + 1000
    paper_board.write(flipped, bytes([paper_board.read(flipped, 1)[0] ^ 0x01]))  # one bit of B's state
    paper_board.reset()
    net = _net(paper_board)
    assert net.info().boot_slot == 1 and _same(net.get_params(), first)


def test_another_models_firmware_ignores_the_slots(paper_board: UnicornBoard, firmware_builder: FirmwareBuilder,
                                                   tmp_path: Path) -> None:
    net = _net(paper_board)
    net.train_step(*_batch(1), 0.05)
    net.save()
    other = paper_model(40, 1)  # same shapes, other weights: another model hash
    paper_board.load_elf(firmware_builder.export_and_build(other, tmp_path / "other").elf)  # flash kept
    net = BoardNetwork(MailboxTransport(paper_board), other.arch)
    assert net.info().boot_slot == 0 and _same(net.get_params(), other.params)


def test_adam_state_survives_so_training_goes_on_as_without_the_reset(firmware_builder: FirmwareBuilder,
                                                                       tmp_path: Path) -> None:
    adam = Optimizer.parse("adam")
    firmware: Firmware = firmware_builder.export_and_build(paper_model(40, 0), tmp_path / "adam", 2, adam)
    runs = []
    for reset in (False, True):
        with UnicornBoard(firmware.elf) as board:
            net = BoardNetwork(MailboxTransport(board), paper_model(40, 0).arch, optimizer=adam)
            net.set_trainable(1)
            for seed in (1, 2):
                net.train_step(*_batch(seed), 0.001)
            net.save()
            if reset:
                board.reset()
                net = BoardNetwork(MailboxTransport(board), paper_model(40, 0).arch, optimizer=adam)
                assert net.info().trainable == 1  # the trained layer count came back too
            for seed in (3, 4):
                net.train_step(*_batch(seed), 0.001)
            runs.append(net.get_params())
    assert _same(*runs)  # moments and step count restored bit for bit


def test_optimizer_state_goes_through_get_optim_and_set_optim(firmware_builder: FirmwareBuilder,
                                                             tmp_path: Path) -> None:
    """Adam's m, v and step count over the mailbox (GET_OPTIM, SET_OPTIM, a data area at a time: Dense 64x50
    holds 6,500 floats of state) and the UART alike: a run resumed from weights and state takes its next
    step bit for bit as if it had gone on. A NaN, a slice past the layer's end and a frozen layer are refused,
    changing nothing."""
    adam = Optimizer.parse("adam")
    model = paper_model(40, 0)
    firmware: Firmware = firmware_builder.export_and_build(model, tmp_path / "adam", 2, adam)
    with UnicornBoard(firmware.elf) as board:
        net = BoardNetwork(MailboxTransport(board), model.arch, optimizer=adam)
        for seed in (1, 2):
            net.train_step(*_batch(seed), 0.01)
        params, state = net.get_params(), net.get_optimizer_state(2)
        assert state.steps == 2 and [part.shape for part in state.slots[1][0]] == [p.shape for p in params[2]]
        assert all(np.any(part != 0) for slot in state.slots for layer in slot for part in layer)
        over_uart = BoardNetwork(UartTransport(BoardUart(board)), model.arch).get_optimizer_state(2)
        assert over_uart.steps == 2 and all(np.array_equal(a, b) for sa, sb in zip(over_uart.slots, state.slots,
                                                                                   strict=True)
                                            for la, lb in zip(sa, sb, strict=True) for a, b in zip(la, lb, strict=True))
        net.train_step(*_batch(3), 0.01)
        went_on = net.get_params()

        net.set_params(params)  # restarts the optimizer: the step count and the slots back to 0
        assert net.get_optimizer_state(2).steps == 0
        net.set_optimizer_state(state)
        transport, last = MailboxTransport(board), net.layers[-1]
        refused = {"ODL_ERR_NONFINITE": Request(Command.SET_OPTIM, (last.index, 0, 9, 0),
                                                data=np.full(3, np.nan, "<f4").tobytes()),
                   "ODL_ERR_SIZE": Request(Command.SET_OPTIM, (last.index, 2 * (last.weights + last.bias) - 1, 9, 0),
                                           data=np.zeros(2, "<f4").tobytes()),
                   "ODL_ERR_FROZEN": Request(Command.GET_OPTIM, (net.layers[0].index, 0, 1, 0))}
        for status, request in refused.items():
            assert transport.execute(request).status == STATUS_CODES[status], status
        back = net.get_optimizer_state(2)
        assert back.steps == 2 and all(np.array_equal(a, b) for sa, sb in zip(back.slots, state.slots, strict=True)
                                       for la, lb in zip(sa, sb, strict=True) for a, b in zip(la, lb, strict=True))
        net.train_step(*_batch(3), 0.01)
        assert _same(net.get_params(), went_on)


BANK2 = 0x0808_0000
CHUNKS = 4


@dataclass(frozen=True)
class _SaveUnderTest:
    elf: Path
    before: bytes  # bank 2 after two SAVEs: slot A holds sequence 1, slot B (the newest) sequence 2
    operations: tuple[Operation, ...]  # the third SAVE's erases and programs, into slot A
    previous: bytes  # the trained layers saved in slot B
    new: bytes  # those being saved by the third SAVE


def _trained(net: BoardNetwork) -> bytes:
    """The parameter layers kept in RAM, as their raw float32 bytes."""
    return b"".join(net._read_layer(layer).tobytes() for layer in net.layers if not layer.frozen)


@pytest.fixture(scope="module")
def save_under_test(firmware_builder: FirmwareBuilder, tmp_path_factory: pytest.TempPathFactory) -> _SaveUnderTest:
    """The paper's model in its TL build (the two Dense layers in RAM: 3,558 words of state)."""
    firmware = firmware_builder.export_and_build(paper_model(40, 0), tmp_path_factory.mktemp("cut"), 2)
    with UnicornBoard(firmware.elf) as board:
        net = _net(board)
        for seed in (1, 2):
            net.train_step(*_batch(seed), 0.05)
            net.save()
        before, previous = board.read(BANK2, BANK_BYTES), _trained(net)
        net.train_step(*_batch(3), 0.05)
        done = len(board.flash.operations)
        assert net.save() == (0, 3)
        return _SaveUnderTest(firmware.elf, before, tuple(board.flash.operations[done:]), previous, _trained(net))


def _boot(board: UnicornBoard, bank: bytes) -> tuple[int, bytes]:
    board.write(BANK2, bank)
    board.reset()
    net = _net(board)
    return net.info().boot_slot, _trained(net)


def _replayed(sut: _SaveUnderTest, cut: int, halfway: bool) -> bytearray:
    """Bank 2 as a cut at operation ``cut`` (1-based) leaves it: the operations before it done, that one not
    started or cut off halfway."""
    bank = bytearray(sut.before)
    for op in sut.operations[: cut - 1]:
        op.apply(bank)
    if halfway:
        sut.operations[cut - 1].apply(bank, halfway=True)
    return bank


@pytest.mark.parametrize("chunk", range(CHUNKS))
def test_a_power_cut_at_any_flash_operation_of_a_save_keeps_the_previous_copy(save_under_test: _SaveUnderTest,
                                                                             chunk: int) -> None:
    """Every cut point of one SAVE (each page erase and each double-word program, before it and halfway
    through it): the device boots the previous copy, bit for bit; never a mix, never the defaults. The new
    copy counts only once its last double-word is programmed (the no-cut case below)."""
    sut = save_under_test
    n = len(sut.operations)
    assert n == 7 + 1779 + 4  # 7 pages erased, the state's double-words, the header's four
    with UnicornBoard(sut.elf) as board:
        for cut in range(1 + chunk, n + 1, CHUNKS):
            for halfway in (False, True):
                slot, params = _boot(board, _replayed(sut, cut, halfway))
                assert slot == 2 and params == sut.previous, (cut, halfway, slot)
        if chunk == 0:
            bank = bytearray(sut.before)
            for op in sut.operations:
                op.apply(bank)
            slot, params = _boot(board, bank)
            assert slot == 1 and params == sut.new


@pytest.mark.parametrize("cut", [1, 7, 8, 900, 1786, 1787, 1789, 1790])
@pytest.mark.parametrize("halfway", [False, True], ids=["before", "halfway"])
def test_a_real_power_cut_leaves_flash_as_the_replay_says(save_under_test: _SaveUnderTest, cut: int,
                                                          halfway: bool) -> None:
    """The exhaustive test above replays the recorded operations; here the firmware really runs the SAVE and
    the board cuts its supply, at the first and last erase, the first and last state double-word and around
    the header: the flash it leaves is the replayed image, byte for byte."""
    sut = save_under_test
    with UnicornBoard(sut.elf) as board:
        board.write(BANK2, sut.before)
        board.reset()
        net = _net(board)
        net.train_step(*_batch(3), 0.05)
        board.flash.cut_power(cut, halfway)
        with pytest.raises(PowerCutError, match=f"flash operation {cut} "):
            net.save()
        assert board.read(BANK2, BANK_BYTES) == bytes(_replayed(sut, cut, halfway))
        with pytest.raises(BoardError, match="power cut"):
            net.info()  # the board stays off until reset


# ---------------------------------------------------------------- clock and console (clock.c, console.c)
# The ELF a NUCLEO-L496ZG runs reaches 80 MHz and answers on LPUART1; a PLL that never locks costs speed, not
# the board; the reset-clock / USART2 build still works.

def _over_uart(board: UnicornBoard) -> BoardNetwork:
    return BoardNetwork(UartTransport(BoardUart(board)), paper_model(40, 0).arch)


def test_the_default_build_runs_at_80mhz_on_lpuart1(paper_board: UnicornBoard) -> None:
    info = _over_uart(paper_board).info()
    assert (info.clock_hz, info.clock_status) == (80_000_000, CLOCK_STATUSES["ODL_CLOCK_OK"])
    assert paper_board.rcc.sysclk_hz() == 80_000_000
    assert int.from_bytes(paper_board.read(paper_board.symbol_address("odl_console_uart"), 4), "little") == LPUART1_BASE


def test_a_pll_that_never_locks_leaves_the_board_answering_at_4mhz(paper_board: UnicornBoard) -> None:
    paper_board.rcc.pll_locks = False
    net = _over_uart(paper_board)  # the console's baud rate follows the clock that is really running
    info = net.info()
    assert (info.clock_hz, info.clock_status) == (4_000_000, CLOCK_STATUSES["ODL_CLOCK_ERR_PLL"])
    assert paper_board.rcc.sysclk_hz() == 4_000_000
    x = np.random.default_rng(0).normal(size=(2, 40, 3)).astype(np.float32)
    net.train_step(x, np.array([0, 1]), 0.01)  # and trains


@pytest.fixture(scope="module")
def reset_clock_usart2(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Firmware]:
    tmp = tmp_path_factory.mktemp("msi4-usart2")
    builder = FirmwareBuilder(tmp / "build", clock="msi4", console="usart2")
    try:
        yield builder.export_and_build(paper_model(40, 0), tmp / "model")
    finally:
        builder.close()


def test_the_reset_clock_usart2_build_answers_on_usart2(reset_clock_usart2: Firmware) -> None:
    with UnicornBoard(reset_clock_usart2.elf) as board:
        info = _over_uart(board).info()
        assert (info.clock_hz, info.clock_status) == (4_000_000, CLOCK_STATUSES["ODL_CLOCK_OK"])
        address = board.symbol_address("odl_console_uart")
        assert int.from_bytes(board.read(address, 4), "little") == USART2_BASE


def test_the_clock_costs_no_training_instructions(paper_board: UnicornBoard, reset_clock_usart2: Firmware) -> None:
    """The clock changes time, not work: one training sample executes the same instructions in both builds."""
    counts = []
    for elf in (Path(paper_board.elf), reset_clock_usart2.elf):
        with UnicornBoard(elf) as board:
            net = BoardNetwork(MailboxTransport(board), paper_model(40, 0).arch)
            net.load_sample(np.zeros((40, 3), np.float32))
            before = board.executed_instructions()
            net.train_loaded_sample(0)
            counts.append(board.executed_instructions() - before)
    assert counts[0] == counts[1]


def test_builder_refuses_unknown_options(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="clock must be one of pll80, msi4"):
        FirmwareBuilder(tmp_path, clock="hse8")
    with pytest.raises(ValueError, match="console must be one of lpuart1, usart2"):
        FirmwareBuilder(tmp_path, console="usart1")
