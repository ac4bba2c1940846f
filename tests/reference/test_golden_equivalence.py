"""The C library trains exactly like TensorFlow: same batches, same weights within the golden tolerance
(docs/architecture.md) |w_c - w_tf| <= 1e-6 + 1e-5 |w_tf| (float32 summation order is the only difference;
~3e-8 measured).
Where a ReLU or max-pool decision flips on a rounding difference the two trajectories part for good; every
step must then still agree from shared weights (pyodl.reference.golden.lockstep), as golden-check decides."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyodl.board.mailbox import MailboxTransport
from pyodl.board.unicorn import UnicornBoard
from pyodl.model.architecture import (
    MASKED,
    PAPER_INPUT_LENGTHS,
    Architecture,
    Kind,
    LayerSpec,
    Model,
    glorot_params,
    paper_model,
)
from pyodl.model.optimizer import Optimizer
from pyodl.network.base import Network
from pyodl.network.board import BoardNetwork
from pyodl.network.host import HostNetwork
from pyodl.reference import golden
from pyodl.toolchain.firmware import FirmwareBuilder
from pyodl.toolchain.host_library import HostBuilder

# Gradients of the first step, from identical weights: only the summation order differs. Relative
# error is looser than for weights because a gradient element can be a small difference of large terms.
GRAD_ATOL, GRAD_RTOL = 1e-6, 1e-4


def _train_c(net: HostNetwork, x: np.ndarray, y: np.ndarray, lr: float, trainable: int) -> tuple[list, list]:
    """Trains on every batch; returns the per-step losses and the first step's gradients."""
    losses, first_grads = [], None
    for s in range(len(x)):
        losses.append(np.mean([net.accumulate(xi, yi) for xi, yi in zip(x[s], y[s], strict=True)]))
        if s == 0:
            first_grads = net.get_grads(trainable)
        net.sgd_step(lr)
    return losses, first_grads


def _assert_equivalent(model: Model, net: HostNetwork, x: np.ndarray, y: np.ndarray, trainable: int | None) -> None:
    n_trained = trainable or len(model.arch.param_layers)
    c_losses, c_grads = _train_c(net, x, y, 0.01, n_trained)
    run = golden.train(model, x, y, 0.01, trainable)
    diffs = golden.compare(model, net.get_params(), run.params)
    for (cw, cb), (gw, gb) in zip(c_grads, run.gradients[0], strict=True):
        np.testing.assert_allclose(cw, gw, rtol=GRAD_RTOL, atol=GRAD_ATOL)
        np.testing.assert_allclose(cb, gb, rtol=GRAD_RTOL, atol=GRAD_ATOL)
    if all(d.ok for d in diffs):
        np.testing.assert_allclose(c_losses, run.losses, rtol=1e-5, atol=1e-6)
        return
    # The trajectories parted: every step must still agree from shared weights (golden.lockstep), as
    # `pyodl golden-check` decides.
    ratios, _ = golden.lockstep(net, model, x, y, 0.01, trainable)
    assert (ratios <= 1.0).all(), f"lockstep {ratios.max():.2%} of the tolerance; trajectory:\n" + "\n".join(
        map(str, diffs))


@pytest.mark.parametrize("mode", ["full", "tl"])
@pytest.mark.parametrize("t", PAPER_INPUT_LENGTHS)
def test_paper_model_100_steps_of_batch_32(t: int, mode: str, host_builder: HostBuilder, model_dir: Path) -> None:
    """TL is checked on a TL build: the two conv layers are const, as they would be in flash."""
    model = paper_model(t, seed=t)
    trainable = 2 if mode == "tl" else None
    net = HostNetwork(host_builder.export_and_build(model, model_dir, trainable), model.arch)
    x, y = golden.random_batches(model.arch, steps=100, batch=32, seed=1000 + t)
    _assert_equivalent(model, net, x, y, trainable)


def _global(draw: st.DrawFn) -> LayerSpec:
    """What takes the conv blocks to the Dense head: GlobalAvgPool1D, GlobalMaxPool1D or Flatten."""
    kind = draw(st.sampled_from([Kind.GAP1D, Kind.GMP1D, Kind.FLATTEN]))
    return LayerSpec(kind, kind.value)


@st.composite
def architectures(draw: st.DrawFn) -> Architecture:
    """1-3 conv blocks (K 1-7, F 1-64, optional AvgPool 1-4), GAP, GMP or Flatten, 1-2 Dense, 2-12 classes,
    C 1-6, and T long enough that every length stays >= 1."""
    blocks = []
    for b in range(draw(st.integers(1, 3))):
        conv = LayerSpec(Kind.CONV1D, f"conv{b}", units=draw(st.integers(1, 64)), size=draw(st.integers(1, 7)),
                         activation=draw(st.sampled_from(["relu", "none"])))
        pool = draw(st.integers(1, 4))
        blocks.append((conv, LayerSpec(Kind.AVGPOOL1D, f"pool{b}", size=pool) if pool > 1 else None))
    t_min = 1
    for conv, pool in reversed(blocks):  # the shortest input that leaves every length >= 1
        t_min = (t_min * pool.size if pool else t_min) + conv.size - 1
    specs = [layer for block in blocks for layer in block if layer is not None]
    specs.append(_global(draw))
    if draw(st.booleans()):
        specs.append(LayerSpec(Kind.DENSE, "hidden", units=draw(st.integers(1, 64)), activation="relu"))
    specs.append(LayerSpec(Kind.DENSE, "out", units=draw(st.integers(2, 12)), activation="softmax"))
    t = draw(st.integers(t_min, t_min + 24))
    return Architecture.build("sweep", t, draw(st.integers(1, 6)), specs)


@settings(max_examples=50)
@given(arch=architectures(), data=st.data())
def test_random_architectures_full_and_tl(arch: Architecture, data: st.DataObject, host_builder: HostBuilder,
                                          tmp_path_factory: pytest.TempPathFactory) -> None:
    """One Full build per architecture; TL runs on it with a runtime-chosen number of trained layers."""
    seed = data.draw(st.integers(0, 2**16), label="seed")
    model = Model(arch, glorot_params(arch, seed))
    library = host_builder.export_and_build(model, tmp_path_factory.mktemp("sweep"))
    n_params = len(arch.param_layers)
    tl = data.draw(st.integers(1, n_params), label="tl layers")
    x, y = golden.random_batches(arch, steps=20, batch=8, seed=seed)
    for trainable in (None, tl):
        net = HostNetwork(library, arch)  # a fresh load: same library path shares state, so reset params
        net.set_params(model.params)
        if trainable is not None:
            net.set_trainable(trainable)
        _assert_equivalent(model, net, x, y, trainable)


def _window_length(length: int, span: int, stride: int, padding: str) -> int:
    """Keras's output length of a window layer (an oracle independent of pyodl.model.architecture)."""
    if padding == "valid":
        return (length - span) // stride + 1 if length >= span else 0
    return (length - 1) // stride + 1


@st.composite
def window_architectures(draw: st.DrawFn) -> Architecture:
    """Conv1D with strides, dilation, valid/same/causal padding and use_bias=False, DepthwiseConv1D (alone or
    as the first half of a SeparableConv1D), AvgPool1D and MaxPool1D with any
    stride and valid/same padding, BatchNormalization, the HAR activations (ReLU6, LeakyReLU, tanh,
    sigmoid; fused and as layers), GlobalMaxPool1D and the unfused ReLU -> Softmax head, mixed with the paper's
    layers. A
    valid window that would not fit the length left by the layers before it is drawn 'same' instead."""
    length = draw(st.integers(8, 72))
    t = length
    specs = []
    for b in range(draw(st.integers(1, 3))):
        k = draw(st.integers(1, 6))
        dilation = draw(st.sampled_from([1, 1, 2, 3]))
        stride = 1 if dilation > 1 else draw(st.sampled_from([1, 1, 2, 3]))
        padding = draw(st.sampled_from(["valid", "same", "causal"]))
        span = dilation * (k - 1) + 1
        if padding == "valid" and span > length:
            padding = "same"
        act = draw(st.sampled_from(["relu", "none", "relu6", "leaky_relu", "tanh", "sigmoid"]))
        specs.append(LayerSpec(Kind.CONV1D, f"conv{b}", units=draw(st.integers(1, 24)), size=k, stride=stride,
                               dilation=dilation, padding=padding, activation=act,
                               alpha=draw(st.sampled_from([0.2, 0.05])) if act == "leaky_relu" else 0.0,
                               use_bias=draw(st.integers(0, 3)) > 0))
        if draw(st.integers(0, 3)) == 0:  # BatchNormalization on its (drawn) moving statistics
            units = specs[-1].units  # the conv just before it
            mean = tuple(draw(st.lists(st.floats(-1, 1, width=32), min_size=units, max_size=units)))
            inv_std = tuple(draw(st.lists(st.floats(0.5, 2, width=32), min_size=units, max_size=units)))
            specs.append(LayerSpec(Kind.BATCHNORM, f"bn{b}", stats=(mean, inv_std)))
        if draw(st.integers(0, 3)) == 0:
            standalone = draw(st.sampled_from(["relu6", "leaky_relu", "tanh", "sigmoid"]))
            specs.append(LayerSpec(Kind.ACTIVATION, f"act{b}", activation=standalone,
                                   alpha=0.3 if standalone == "leaky_relu" else 0.0))
        length = _window_length(length, span, stride, padding)
        if draw(st.integers(0, 3)) == 0:  # a DepthwiseConv1D after it
            k = draw(st.integers(1, 4))
            padding = "same" if k > length else draw(st.sampled_from(["valid", "same"]))
            separable = draw(st.booleans())  # SeparableConv1D as Keras computes it: no bias, then a 1x1 Conv1D
            specs.append(LayerSpec(Kind.DEPTHWISE1D, f"dw{b}", units=draw(st.integers(1, 2)), size=k,
                                   padding=padding, activation="none" if separable else
                                   draw(st.sampled_from(["relu", "none"])), use_bias=not separable))
            if separable:
                specs.append(LayerSpec(Kind.CONV1D, f"pw{b}", units=draw(st.integers(1, 16)), size=1,
                                       activation="relu"))
            length = _window_length(length, k, 1, padding)
        if draw(st.booleans()):
            kind = draw(st.sampled_from([Kind.MAXPOOL1D, Kind.AVGPOOL1D]))
            pool = draw(st.integers(2, 5))
            stride = draw(st.integers(1, pool))
            padding = draw(st.sampled_from(["valid", "same"]))
            if pool > length:
                padding = "same"
            specs.append(LayerSpec(kind, f"pool{b}", size=pool, stride=stride, padding=padding))
            length = _window_length(length, pool, stride, padding)
    specs.append(_global(draw))
    if draw(st.booleans()):
        specs.append(LayerSpec(Kind.DENSE, "hidden", units=draw(st.integers(1, 32)),
                               activation=draw(st.sampled_from(["relu", "tanh", "sigmoid"]))))
    if draw(st.integers(0, 3)) == 0:  # Dense(relu) -> ReLU() -> Softmax(), the unfused head
        specs += [LayerSpec(Kind.DENSE, "out", units=draw(st.integers(2, 8)), activation="relu"),
                  LayerSpec(Kind.RELU, "relu_out"), LayerSpec(Kind.SOFTMAX, "softmax")]
    else:
        specs.append(LayerSpec(Kind.DENSE, "out", units=draw(st.integers(2, 8)), activation="softmax"))
    return Architecture.build("windows", t, draw(st.integers(1, 4)), specs)


@settings(max_examples=100)
@given(arch=window_architectures(), data=st.data())
def test_random_window_architectures_full_and_tl(arch: Architecture, data: st.DataObject, host_builder: HostBuilder,
                                                 tmp_path_factory: pytest.TempPathFactory) -> None:
    """The layers users bring (strided, dilated, padded Conv1D; strided and padded Avg/MaxPool1D): 20 steps
    of batch 8 in Full and in TL mode, each within the golden tolerance."""
    seed = data.draw(st.integers(0, 2**16), label="seed")
    model = Model(arch, glorot_params(arch, seed))
    library = host_builder.export_and_build(model, tmp_path_factory.mktemp("windows"))
    tl = data.draw(st.integers(1, len(arch.param_layers)), label="tl layers")
    x, y = golden.random_batches(arch, steps=20, batch=8, seed=seed)
    for trainable in (None, tl):
        net = HostNetwork(library, arch)
        net.set_params(model.params)
        if trainable is not None:
            net.set_trainable(trainable)
        _assert_equivalent(model, net, x, y, trainable)


@settings(max_examples=20)
@given(arch=window_architectures(), data=st.data())
def test_random_window_architectures_on_the_board(arch: Architecture, data: st.DataObject,
                                                  firmware_builder: FirmwareBuilder,
                                                  tmp_path_factory: pytest.TempPathFactory) -> None:
    """The same layers in the STM32L496 firmware on the Unicorn board, Full and TL builds (TL with its
    frozen layers const in flash): 20 steps of batch 8, every window through the mailbox."""
    seed = data.draw(st.integers(0, 2**16), label="seed")
    model = Model(arch, glorot_params(arch, seed))
    tl = data.draw(st.integers(1, len(arch.param_layers)), label="tl layers")
    x, y = golden.random_batches(arch, steps=20, batch=8, seed=seed)
    for trainable in (None, tl):
        firmware = firmware_builder.export_and_build(model, tmp_path_factory.mktemp("board"), trainable)
        with UnicornBoard(firmware.elf) as board:
            net = BoardNetwork(MailboxTransport(board), arch)
            losses = [net.train_step(xs, ys, 0.01) for xs, ys in zip(x, y, strict=True)]
            run = golden.train(model, x, y, 0.01, trainable)
            diffs = golden.compare(model, net.get_params(), run.params)
            if all(d.ok for d in diffs):
                np.testing.assert_allclose(losses, run.losses, rtol=1e-5, atol=1e-6)
            else:  # parted trajectories: each step must agree from shared weights
                ratios, _ = golden.lockstep(net, model, x, y, 0.01, trainable)
                assert (ratios <= 1.0).all(), "\n".join(map(str, diffs))


def _ties_model() -> Model:
    """Input (5, 1) -> Conv1D(1, 2) with kernel (1, 1) and no bias -> GlobalMaxPool1D -> Dense(3, softmax): the
    conv sums two neighbouring rows exactly, so integer windows make exact ties of different inputs."""
    arch = Architecture.build("ties", 5, 1, [LayerSpec(Kind.CONV1D, "conv", units=1, size=2, use_bias=False),
                                             LayerSpec(Kind.GMP1D, "gmp"),
                                             LayerSpec(Kind.DENSE, "out", units=3, activation="softmax")])
    dense_w, dense_b = glorot_params(arch, 4)[1]
    return Model(arch, [(np.ones((2, 1, 1), np.float32), np.zeros(0, np.float32)), (dense_w, dense_b)])


# Window sums of two rows: (3, 3, 1, 0) ties twice, (3, 3, 3, 3) four times, (3, 3, 3, 2) three times,
# (3, 1, 0, 5) has one maximum.
TIES = np.array([[1, 2, 1, 0, 0], [1, 2, 1, 2, 1], [0, 3, 0, 3, -1], [2, 1, 0, 0, 5]], np.float32)[None, :, :, None]


@pytest.mark.parametrize("backend", ["host", "board"])
def test_global_max_pool_ties_share_the_gradient_as_in_tensorflow(backend: str, host_builder: HostBuilder,
                                                                   firmware_builder: FirmwareBuilder,
                                                                   model_dir: Path) -> None:
    """TensorFlow's reduce_max gradient splits dL/da evenly between every maximum of a channel (unlike its
    MaxPool's, which routes it to the first): windows (1, 2) and (2, 1) tied at 3 give the conv kernel
    1.5 dL/da per tap, where the first maximum alone would give (1, 2) dL/da. The conv gradient must be
    TensorFlow's within the first-step gradient tolerance (summation order only), and the weights after the
    step within the golden tolerance."""
    model = _ties_model()
    labels = np.array([[0, 1, 2, 0]])
    run = golden.train(model, TIES, labels, 0.1)
    if backend == "host":
        net: Network = HostNetwork(host_builder.export_and_build(model, model_dir), model.arch)
        for xi, yi in zip(TIES[0], labels[0], strict=True):
            net.accumulate(xi, yi)
        (conv_grad, _), _ = net.get_grads(2)
        np.testing.assert_allclose(conv_grad, run.gradients[0][0][0], rtol=GRAD_RTOL, atol=GRAD_ATOL)
        net.sgd_step(0.1)
        params = net.get_params()
    else:
        with UnicornBoard(firmware_builder.export_and_build(model, model_dir).elf) as board:
            net = BoardNetwork(MailboxTransport(board), model.arch)
            net.train_step(TIES[0], labels[0], 0.1)
            params = net.get_params()
    diffs = golden.compare(model, params, run.params)
    assert all(d.ok for d in diffs), "\n".join(map(str, diffs))


def _subnormal_model() -> Model:
    """A ReLU6 whose input is a subnormal where TensorFlow has 0: a BatchNormalization with moving mean
    -FLT_MIN (its shift, 0.5 FLT_MIN, is flushed in TensorFlow) after a ReLU; and a ReLU Dense unit whose only
    input is a subnormal bias (read as 0 in TensorFlow)."""
    specs = [LayerSpec(Kind.CONV1D, "conv", units=2, size=1, activation="relu"),
             LayerSpec(Kind.BATCHNORM, "bn", stats=((-np.finfo(np.float32).tiny, 0.0), (0.5, 1.0))),
             LayerSpec(Kind.ACTIVATION, "act", activation="relu6"),
             LayerSpec(Kind.FLATTEN, "flatten"),
             LayerSpec(Kind.DENSE, "hidden", units=2, activation="relu"),
             LayerSpec(Kind.DENSE, "out", units=2, activation="softmax")]
    arch = Architecture.build("subnormal", 6, 1, specs)
    params = glorot_params(arch, 5)
    (hidden_w, hidden_b) = params[2]
    hidden_w[:, 0] = 0.0
    hidden_b[0] = np.float32(6e-39)
    return Model(arch, params)


def _assert_one_step_as_tensorflow(model: Model, net: Network) -> None:
    x, y = golden.random_batches(model.arch, steps=1, batch=8, seed=3)
    net.train_step(x[0], y[0], 0.1)
    diffs = golden.compare(model, net.get_params(), golden.train(model, x, y, 0.1).params)
    assert all(d.ok for d in diffs), "\n".join(map(str, diffs))


def test_subnormals_flush_to_zero_on_the_host_as_in_tensorflow(host_builder: HostBuilder, model_dir: Path) -> None:
    model = _subnormal_model()
    net = HostNetwork(host_builder.export_and_build(model, model_dir), model.arch)
    _assert_one_step_as_tensorflow(model, net)
    # ... for the library's calls only: numpy in the same thread keeps IEEE subnormals.
    assert np.float32(1e-38) * np.float32(0.5) > 0


def test_subnormals_flush_to_zero_on_the_board_as_in_tensorflow(firmware_builder: FirmwareBuilder,
                                                                model_dir: Path) -> None:
    model = _subnormal_model()
    with UnicornBoard(firmware_builder.export_and_build(model, model_dir).elf) as board:
        _assert_one_step_as_tensorflow(model, BoardNetwork(MailboxTransport(board), model.arch))


OPTIMIZERS = [Optimizer.parse(text) for text in ("sgd:momentum=0.9", "sgd:momentum=0.8,nesterov",
                                                 "adam", "adam:beta_1=0.8,beta_2=0.99,epsilon=1e-5")]


def _smooth(arch: Architecture) -> Architecture:
    """``arch`` with no decision that float rounding can flip: ReLU-type activations become tanh or sigmoid and
    max pools (global ones too) average pools. A stateful optimizer carries every step's rounding into the next,
    so the trajectory itself must hold on a smooth network; with decisions, lockstep from TensorFlow's whole state
    tells a flip from a wrong update (tests/reference/test_golden.py)."""
    specs = []
    for i, layer in enumerate(arch.layers):
        smooth = "tanh" if i % 2 else "sigmoid"
        act = smooth if layer.activation in MASKED else layer.activation
        kind = {Kind.MAXPOOL1D: Kind.AVGPOOL1D, Kind.GMP1D: Kind.GAP1D, Kind.RELU: Kind.ACTIVATION}.get(
            layer.kind, layer.kind)
        if layer.kind is Kind.RELU or (layer.kind is Kind.ACTIVATION and layer.activation in MASKED):
            act = smooth
        specs.append(replace(layer.spec(), kind=kind, activation=act, alpha=0.0))
    return Architecture.build(arch.name, arch.input_len, arch.input_ch, specs)


def _assert_trajectory(model: Model, net: Network, x: np.ndarray, y: np.ndarray, lr: float,
                       trainable: int | None, optimizer: Optimizer) -> None:
    losses = [net.train_step(xs, ys, lr) for xs, ys in zip(x, y, strict=True)]
    run = golden.train(model, x, y, lr, trainable, optimizer)
    diffs = golden.compare(model, net.get_params(), run.params, *golden.tolerance(optimizer, lr, len(x)))
    assert all(d.ok for d in diffs), f"{optimizer.describe()}:\n" + "\n".join(map(str, diffs))
    np.testing.assert_allclose(losses, run.losses, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("optimizer", OPTIMIZERS, ids=Optimizer.describe)
@pytest.mark.parametrize("trainable", [None, 2], ids=["full", "tl"])
def test_paper_model_with_momentum_and_adam(optimizer: Optimizer, trainable: int | None, host_builder: HostBuilder,
                                           model_dir: Path) -> None:
    """Keras's own SGD(momentum, nesterov) and Adam, 30 steps of batch 32 on the paper's model."""
    model = paper_model(40, seed=3)
    net = HostNetwork(host_builder.export_and_build(model, model_dir, trainable, optimizer), model.arch)
    x, y = golden.random_batches(model.arch, steps=30, batch=32, seed=77)
    _assert_trajectory(model, net, x, y, 0.001 if optimizer.kind == "adam" else 0.01, trainable, optimizer)


@settings(max_examples=40)
@given(arch=window_architectures(), data=st.data())
def test_random_architectures_with_momentum_and_adam(arch: Architecture, data: st.DataObject,
                                                     host_builder: HostBuilder,
                                                     tmp_path_factory: pytest.TempPathFactory) -> None:
    """Every optimizer on the wide layer set (smoothed, see _smooth), 20 steps of batch 8, Full and TL."""
    arch = _smooth(arch)
    seed = data.draw(st.integers(0, 2**16), label="seed")
    optimizer = data.draw(st.sampled_from(OPTIMIZERS), label="optimizer")
    model = Model(arch, glorot_params(arch, seed))
    tl = data.draw(st.integers(1, len(arch.param_layers)), label="tl layers")
    x, y = golden.random_batches(arch, steps=20, batch=8, seed=seed)
    for trainable in (None, tl):
        library = host_builder.export_and_build(model, tmp_path_factory.mktemp("optim"), trainable, optimizer)
        _assert_trajectory(model, HostNetwork(library, arch), x, y, 0.01, trainable, optimizer)


@pytest.mark.parametrize("optimizer", OPTIMIZERS[::2], ids=Optimizer.describe)
def test_momentum_and_adam_on_the_board(optimizer: Optimizer, firmware_builder: FirmwareBuilder,
                                        tmp_path: Path) -> None:
    """The firmware's update on the Unicorn board, its state in .odl_optim: the paper's model, TL build."""
    model = paper_model(20, seed=5)
    firmware = firmware_builder.export_and_build(model, tmp_path, 2, optimizer)
    x, y = golden.random_batches(model.arch, steps=20, batch=8, seed=9)
    with UnicornBoard(firmware.elf) as board:
        net = BoardNetwork(MailboxTransport(board), model.arch, optimizer=optimizer)
        _assert_trajectory(model, net, x, y, 0.01, 2, optimizer)


@pytest.mark.parametrize("optimizer", OPTIMIZERS, ids=Optimizer.describe)
def test_writing_parameters_restarts_the_optimizer(optimizer: Optimizer, host_builder: HostBuilder,
                                                   model_dir: Path) -> None:
    """After a few steps, writing the initial weights back gives exactly a fresh optimizer's first step, as
    KerasReference.set_params does: momentum gathered for other weights is not applied to new ones."""
    model = paper_model(20, seed=2)
    net = HostNetwork(host_builder.export_and_build(model, model_dir, None, optimizer), model.arch)
    x, y = golden.random_batches(model.arch, steps=4, batch=4, seed=4)
    net.train_step(x[0], y[0], 0.01)
    first = net.get_params()
    for s in (1, 2, 3):
        net.train_step(x[s], y[s], 0.01)
    net.set_params(model.params)
    net.train_step(x[0], y[0], 0.01)
    for (w, b), (w0, b0) in zip(net.get_params(), first, strict=True):
        np.testing.assert_array_equal(w, w0)
        np.testing.assert_array_equal(b, b0)
