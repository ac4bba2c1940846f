"""The int8 commands on the simulated STM32L496 (firmware/app/int8_commands.c): CALIBRATE, QUANTIZE,
PREDICT_Q, EVALUATE_Q and GET_QIMAGE, through the mailbox and the UART.

The board's int8 outputs must equal TFLite's reference kernels bit for bit (tolerance none: the same integer
arithmetic; on the Cortex-M4 the inner products run through SMLAD, which the host build does not use), and
its int8 image must equal the one the host build of the same library makes from the same float parameters
and calibration windows (the float forward passes are bit-identical: -ffp-contract=off on both)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from pyodl.board.mailbox import MailboxTransport
from pyodl.board.protocol import STATUS_CODES, CommandError
from pyodl.board.uart import BoardUart, UartTransport
from pyodl.board.unicorn import UnicornBoard
from pyodl.model.architecture import (
    Architecture,
    Kind,
    LayerSpec,
    Model,
    glorot_params,
    paper_model,
    random_architecture,
)
from pyodl.model.quantized import parse_image
from pyodl.network.board import BoardNetwork
from pyodl.network.host import HostNetwork
from pyodl.reference.tflite import TFLiteModel
from pyodl.resources.estimate import estimate
from pyodl.toolchain.firmware import Firmware, FirmwareBuilder
from pyodl.toolchain.host_library import HostBuilder

WINDOWS = 8
ARCH = paper_model(40, 0).arch


def _model(seed: int) -> Model:
    rng = np.random.default_rng(seed)
    return Model(ARCH, [(w, (0.1 * rng.normal(size=b.shape)).astype(np.float32)) for w, b in glorot_params(ARCH, seed)])


@pytest.fixture(scope="module")
def firmware(firmware_builder: FirmwareBuilder, tmp_path_factory: pytest.TempPathFactory) -> Firmware:
    return firmware_builder.export_and_build(_model(0), tmp_path_factory.mktemp("int8fw"), dataset_windows=WINDOWS)


@pytest.fixture
def board(firmware: Firmware) -> Iterator[UnicornBoard]:
    with UnicornBoard(firmware.elf) as b:
        yield b


def _windows(seed: int, n: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 40, 3)).astype(np.float32)


@pytest.mark.parametrize("bits", [(8, 8, 8, 8), (8, 4, 2, 8)])
def test_board_int8_matches_tflite_and_the_host_build(board: UnicornBoard, bits: tuple[int, ...],
                                                      host_builder: HostBuilder, tmp_path: Path) -> None:
    net = BoardNetwork(MailboxTransport(board), ARCH)
    xs, ys = _windows(1, 20), np.random.default_rng(2).integers(0, 6, size=20)
    for k in range(0, 16, 8):  # a little training first: QUANTIZE takes the weights as they are now
        net.train_step(xs[k:k + 8], ys[k:k + 8], 0.05)
    calibration = _windows(3, 12)  # more than the region: two CALIBRATE commands
    assert net.int8_calibrate(calibration, reset=True) == 12
    size = net.int8_quantize(bits)
    image = net.int8_image()
    assert len(image) == size
    qm = parse_image(ARCH, image)
    assert qm.bits == bits

    host = HostNetwork(host_builder.export_and_build(Model(ARCH, net.get_params()), tmp_path / "host"), ARCH)
    host.int8_calibrate(calibration)
    host.int8_quantize(list(bits))
    assert host.int8_image() == image

    for x in _windows(8, 6):  # adaptive inference: the board decides as the host library does
        for threshold in (0, 180, 256):
            assert net.int8_predict_adaptive(x, 20, threshold) == host.int8_predict_adaptive(x, 20, threshold)

    tfl = TFLiteModel(qm)
    tests = _windows(4, 16)
    classes = net.int8_predict_classes(tests)
    for k, x in enumerate(tests):
        cls, logits, probs = net.int8_predict(x)
        run = tfl.run(x)
        np.testing.assert_array_equal(logits, run.logits, err_msg=f"window {k}")
        np.testing.assert_array_equal(probs, run.probs, err_msg=f"window {k}")
        assert cls == classes[k] == int(np.argmax(run.logits))


def test_over_the_uart_the_same_answers(board: UnicornBoard, firmware: Firmware) -> None:
    by_mailbox = BoardNetwork(MailboxTransport(board), ARCH)
    by_mailbox.int8_calibrate(_windows(5, 8), reset=True)
    by_mailbox.int8_quantize([8, 8, 4, 8])
    with UnicornBoard(firmware.elf) as other:
        MailboxTransport(other)  # boots it
        by_uart = BoardNetwork(UartTransport(BoardUart(other)), ARCH)
        by_uart.int8_calibrate(_windows(5, 8), reset=True)
        by_uart.int8_quantize([8, 8, 4, 8])
        assert by_uart.int8_image() == by_mailbox.int8_image()
        x = _windows(6, 1)[0]
        a, b = by_uart.int8_predict(x), by_mailbox.int8_predict(x)
        assert a[0] == b[0] and np.array_equal(a[1], b[1]) and np.array_equal(a[2], b[2])


def _status(exc: pytest.ExceptionInfo[CommandError]) -> str:
    return {v: k for k, v in STATUS_CODES.items()}[exc.value.status]


def test_refusals_change_nothing(board: UnicornBoard) -> None:
    net = BoardNetwork(MailboxTransport(board), ARCH)
    with pytest.raises(CommandError) as exc:
        net.int8_predict(_windows(7, 1)[0])
    assert _status(exc) == "ODL_ERR_NOT_QUANTIZED"
    with pytest.raises(CommandError) as exc:
        net.int8_quantize([8, 8, 8, 8])
    assert _status(exc) == "ODL_ERR_NO_CALIBRATION"
    xs = _windows(7, 4)
    net.int8_calibrate(xs, reset=True)
    net.int8_quantize([8, 8, 8, 8])
    image = net.int8_image()
    bad = xs.copy()
    bad[2, 5, 1] = np.inf
    with pytest.raises(CommandError) as exc:  # one bad window: none of the batch is taken
        net.int8_calibrate(bad)
    assert _status(exc) == "ODL_ERR_NONFINITE"
    with pytest.raises(CommandError) as exc:
        net.int8_quantize([8, 8, 16, 8])
    assert _status(exc) == "ODL_ERR_UNSUPPORTED"
    with pytest.raises(CommandError) as exc:
        net.int8_quantize([8, 8, 8])
    assert _status(exc) == "ODL_APP_ERR_LENGTH"
    net.int8_quantize([8, 8, 8, 8])  # the same ranges as before the refused window: the same image
    assert net.int8_image() == image


@pytest.mark.parametrize("pool", [Kind.GAP1D, Kind.GMP1D])
def test_tabled_activations_on_the_board_match_tflite(pool: Kind, firmware_builder: FirmwareBuilder,
                                                      tmp_path: Path) -> None:
    """tanh, sigmoid and LeakyReLU tables computed on the Cortex-M4 with newlib's tanhf and expf, where TFLite
    uses glibc's: the same tables for these scales (a last-bit difference in a libm result moves an entry
    only where t / scale lies within that bit of a rounding tie); the global pool as MEAN or REDUCE_MAX."""
    specs = [LayerSpec(Kind.CONV1D, "c1", units=8, size=3, activation="tanh"),
             LayerSpec(Kind.ACTIVATION, "lk", activation="leaky_relu", alpha=0.2),
             LayerSpec(Kind.CONV1D, "c2", units=6, size=3, activation="sigmoid"), LayerSpec(pool, pool.value),
             LayerSpec(Kind.DENSE, "hid", units=12, activation="leaky_relu", alpha=0.1),
             LayerSpec(Kind.DENSE, "out", units=4, activation="softmax")]
    arch = Architecture.build("tabled", 24, 3, specs)
    rng = np.random.default_rng(11)
    model = Model(arch, [(w, (0.2 * rng.normal(size=b.shape)).astype(np.float32)) for w, b in glorot_params(arch, 11)])
    fw = firmware_builder.export_and_build(model, tmp_path / "fw", dataset_windows=WINDOWS)
    with UnicornBoard(fw.elf) as b:
        net = BoardNetwork(MailboxTransport(b), arch)
        xs = (2 * rng.normal(size=(24, 24, 3))).astype(np.float32)
        net.int8_calibrate(xs[:16], reset=True)
        net.int8_quantize([8, 8, 8, 8])
        _predict_like_tflite(net, arch, xs)


def test_training_erases_the_int8_copy_that_shares_the_gradients_ram(board: UnicornBoard) -> None:
    """.odl_int8 lies on .odl_grads (firmware/app/stm32l496.ld): PREDICT_Q works from QUANTIZE until a batch's
    first training sample, is refused after it until the next QUANTIZE, and calibrating or quantizing
    mid-batch is refused; the int8 model a QUANTIZE makes after training is the one it made before (the same
    float weights, ranges and bits), bit for bit."""
    net = BoardNetwork(MailboxTransport(board), ARCH)
    x, calibration = _windows(9, 1)[0], _windows(10, 4)

    def refused(status: str, call: object, *args: object) -> CommandError:
        with pytest.raises(CommandError) as exc:
            call(*args)  # type: ignore[operator]
        assert _status(exc) == status, exc.value
        return exc.value

    refused("ODL_ERR_NOT_QUANTIZED", net.int8_predict, x)  # before any QUANTIZE
    net.int8_calibrate(calibration, reset=True)
    net.int8_quantize([8, 8, 8, 8])
    image, first = net.int8_image(), net.int8_predict(x)

    net.accumulate(_windows(11, 1)[0], 3)  # TRAIN_SAMPLE: a batch starts, the int8 copy is gone
    err = refused("ODL_ERR_NOT_QUANTIZED", net.int8_predict, x)
    assert "quantize again after training" in str(err)
    refused("ODL_ERR_NOT_QUANTIZED", net.int8_image)
    refused("ODL_ERR_NOT_QUANTIZED", net.int8_predict_adaptive, x, 20, 256)
    refused("ODL_ERR_NOT_QUANTIZED", net.int8_predict_classes, calibration[:2])
    err = refused("ODL_ERR_BATCH_OPEN", net.int8_quantize, [8, 8, 8, 8])  # mid-batch: nothing changes
    assert "step" in str(err)
    refused("ODL_ERR_BATCH_OPEN", net.int8_calibrate, calibration, True)
    assert net.info().accumulated == 1  # the batch survived both refusals
    net.zero_grads()  # dropping the batch leaves no int8 copy behind either
    refused("ODL_ERR_NOT_QUANTIZED", net.int8_predict, x)
    refused("ODL_ERR_NO_CALIBRATION", net.int8_quantize, [8, 8, 8, 8])  # the ranges went with it

    net.int8_calibrate(calibration, reset=True)
    net.int8_quantize([8, 8, 8, 8])  # no step was taken: the same weights, the same int8 model
    assert net.int8_image() == image
    again = net.int8_predict(x)
    assert again[0] == first[0] and np.array_equal(again[1], first[1]) and np.array_equal(again[2], first[2])

    xs, ys = _windows(12, 4), np.arange(4) % 6
    net.train_step(xs, ys, 0.05)  # TRAIN_BATCH and its step
    refused("ODL_ERR_NOT_QUANTIZED", net.int8_predict, x)
    net.int8_calibrate(calibration, reset=True)
    net.int8_quantize([8, 8, 8, 8])
    assert net.int8_image() != image  # the new weights' model
    net.int8_predict(x)
    for k in range(2):  # per-window commands, then SGD_STEP
        net.accumulate(xs[k], int(ys[k]))
    net.sgd_step(0.05)
    refused("ODL_ERR_NOT_QUANTIZED", net.int8_predict, x)
    refused("ODL_ERR_NO_SAMPLES", net.sgd_step, 0.05)  # a refused training command erases nothing more


def _predict_like_tflite(net: BoardNetwork, arch: Architecture, xs: np.ndarray) -> None:
    tfl = TFLiteModel(parse_image(arch, net.int8_image()))
    for k, x in enumerate(xs):
        _, logits, probs = net.int8_predict(x)
        run = tfl.run(x)
        np.testing.assert_array_equal(logits, run.logits, err_msg=f"window {k}")
        np.testing.assert_array_equal(probs, run.probs, err_msg=f"window {k}")


@pytest.mark.parametrize("length", [20, 60, 80, 100])
def test_the_paper_model_at_every_length_matches_tflite(length: int, firmware_builder: FirmwareBuilder,
                                                       tmp_path: Path) -> None:
    """The Cortex-M4 kernels (SMLAD tiles of two channels by two windows, the integer Dense rounding, SHADD8
    pools) at each window length the paper uses, with all-8-bit, all-4-bit and 8/4/2/8 weights."""
    arch = paper_model(length, 0).arch
    rng = np.random.default_rng(length)
    model = Model(arch, [(w, (0.1 * rng.normal(size=b.shape)).astype(np.float32)) for w, b in glorot_params(arch, 1)])
    fw = firmware_builder.export_and_build(model, tmp_path / "fw", dataset_windows=WINDOWS)
    with UnicornBoard(fw.elf) as b:
        net = BoardNetwork(MailboxTransport(b), arch)
        xs = rng.normal(size=(14, length, 3)).astype(np.float32)
        net.int8_calibrate(xs[:8], reset=True)
        for bits in ([8, 8, 8, 8], [4, 4, 4, 4], [8, 4, 2, 8]):
            net.int8_quantize(bits)
            _predict_like_tflite(net, arch, xs[8:])


@pytest.mark.parametrize("seed", range(4))
def test_random_architectures_on_the_board_match_tflite(seed: int, firmware_builder: FirmwareBuilder,
                                                        tmp_path: Path) -> None:
    """Shapes the paper's model does not have, through the Cortex-M4 kernels: odd channel counts, k c not a
    multiple of 4 or of 8, padding, strides, dilation, every weight width."""
    rng = np.random.default_rng(500 + seed)
    arch = random_architecture(rng, f"b{seed}", wide=True)
    while not estimate(arch).fits:
        arch = random_architecture(rng, f"b{seed}", wide=True)
    model = Model(arch, [(w, (0.1 * rng.normal(size=b.shape)).astype(np.float32))
                         for w, b in glorot_params(arch, seed)])
    fw = firmware_builder.export_and_build(model, tmp_path / "fw", dataset_windows=WINDOWS)
    with UnicornBoard(fw.elf) as b:
        net = BoardNetwork(MailboxTransport(b), arch)
        xs = rng.normal(size=(14, arch.input_len, arch.input_ch)).astype(np.float32)
        net.int8_calibrate(xs[:8], reset=True)
        net.int8_quantize([8 if arch.layers[i].kind is Kind.BATCHNORM else int(rng.choice([8, 4, 2]))
                           for i in arch.param_layers])
        _predict_like_tflite(net, arch, xs[8:])
