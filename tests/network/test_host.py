"""The ctypes bridge: status codes become exceptions, bad inputs are refused and change nothing."""

from pathlib import Path

import numpy as np
import pytest

from pyodl.model.architecture import paper_model
from pyodl.model.keras_io import to_keras
from pyodl.model.optimizer import Optimizer, OptimizerState
from pyodl.network.host import _F32P, HostNetwork, OdlError
from pyodl.toolchain.host_library import HostBuilder


@pytest.fixture(scope="module")
def paper_tl_net(host_builder: HostBuilder, tmp_path_factory: pytest.TempPathFactory) -> HostNetwork:
    model = paper_model(20, seed=7)
    lib = host_builder.export_and_build(model, tmp_path_factory.mktemp("tl"), trainable_layers=2)
    return HostNetwork(lib, model.arch)


def test_forward_matches_keras_predict(host_builder: HostBuilder, model_dir: Path) -> None:
    model = paper_model(60, seed=3)
    net = HostNetwork(host_builder.export_and_build(model, model_dir), model.arch)
    x = np.random.default_rng(0).standard_normal((8, 60, 3)).astype(np.float32)
    expected = to_keras(model).predict(x, verbose=0)
    got = np.stack([net.forward(s) for s in x])
    # Inference only: summation order is the only difference, a few float32 ulps of a probability.
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)


def test_bad_inputs_raise_and_leave_weights_untouched(paper_tl_net: HostNetwork) -> None:
    net = paper_tl_net
    before = net.get_params()
    x = np.zeros((20, 3), np.float32)
    with pytest.raises(ValueError, match=r"shape \(20, 3\)"):
        net.accumulate(np.zeros((21, 3), np.float32), 0)
    with pytest.raises(ValueError, match=r"label 6 is outside 0\.\.5"):
        net.accumulate(x, 6)
    x[3, 1] = np.nan
    with pytest.raises(OdlError, match="NaN or infinity") as err:
        net.accumulate(x, 0)
    assert err.value.status == 4
    with pytest.raises(OdlError, match="no sample has been accumulated"):
        net.sgd_step(0.01)
    net.accumulate(np.ones((20, 3), np.float32), 1)
    with pytest.raises(OdlError, match="learning rate"):
        net.sgd_step(float("nan"))
    net.zero_grads()
    net.set_params(net.get_params())  # a const layer may be "set" to the values it holds, as on a board
    changed = [(w + 1.0, b) for w, b in net.get_params()]
    with pytest.raises(OdlError, match="frozen in this build"):
        net.set_params(changed)  # the first layers are const in a TL build
    with pytest.raises(OdlError, match="between 1 and the build's trainable capacity"):
        net.set_trainable(3)
    beyond = [(w.copy(), b.copy()) for w, b in net.get_params()]
    beyond[-1][1][0] = 1e5  # beyond the default bound, 1e4
    with pytest.raises(OdlError, match="beyond the model's bound; nothing was written"):
        net.set_params(beyond)
    for (w0, b0), (w1, b1) in zip(before, net.get_params(), strict=True):
        assert np.array_equal(w0, w1) and np.array_equal(b0, b1)


def test_a_rejected_step_changes_nothing_and_clears_the_batch(paper_tl_net: HostNetwork) -> None:
    net = paper_tl_net
    x = np.random.default_rng(2).normal(size=(4, 20, 3)).astype(np.float32)
    before = net.get_params()
    with pytest.raises(OdlError, match="step rejected") as err:
        net.train_step(x, np.array([0, 1, 2, 3]), 1e20)
    assert err.value.status == 11
    for (w0, b0), (w1, b1) in zip(before, net.get_params(), strict=True):
        assert np.array_equal(w0, w1) and np.array_equal(b0, b1)
    with pytest.raises(OdlError, match="no sample has been accumulated"):
        net.sgd_step(0.01)


def test_optimizer_state_round_trip_resumes_a_run_bit_for_bit(host_builder: HostBuilder, model_dir: Path) -> None:
    """Adam's m, v and step count read and written (odl_read_optim_slice, odl_write_optim_slice): a run stopped
    after three steps and resumed from its weights and state takes the fourth step exactly as if it had gone on;
    from the weights alone (the optimizer restarted) it does not."""
    model = paper_model(20, seed=7)
    net = HostNetwork(host_builder.export_and_build(model, model_dir, 2, Optimizer.parse("adam")), model.arch)
    x = np.random.default_rng(3).normal(size=(4, 8, 20, 3)).astype(np.float32)
    y = np.random.default_rng(4).integers(0, 6, size=(4, 8))
    for s in range(3):
        net.train_step(x[s], y[s], 0.01)
    params, state = net.get_params(), net.get_optimizer_state(2)
    assert state.steps == 3 and len(state.slots) == 2 and len(state.slots[0]) == 2
    assert [part.shape for part in state.slots[1][0]] == [p.shape for p in params[2]]
    assert all(np.any(part != 0) for slot in state.slots for layer in slot for part in layer)
    assert np.all(state.slots[1][1][0] >= 0)  # v, a mean of squares
    net.train_step(x[3], y[3], 0.01)
    went_on = net.get_params()

    net.set_params(params)  # restarts the optimizer
    restarted = net.get_optimizer_state(2)
    assert restarted.steps == 0 and all(not np.any(part) for slot in restarted.slots for layer in slot
                                        for part in layer)
    net.set_optimizer_state(state)
    back = net.get_optimizer_state(2)
    assert back.steps == 3
    for got, want in zip(back.slots, state.slots, strict=True):
        assert all(np.array_equal(g, w) for (gw, gb), (ww, wb) in zip(got, want, strict=True)
                   for g, w in ((gw, ww), (gb, wb)))
    net.train_step(x[3], y[3], 0.01)
    assert all(np.array_equal(a, b) for (aw, ab), (bw, bb) in zip(net.get_params(), went_on, strict=True)
               for a, b in ((aw, bw), (ab, bb)))

    net.set_params(params)
    net.train_step(x[3], y[3], 0.01)  # a fresh optimizer's first step
    assert not np.array_equal(net.get_params()[3][0], went_on[3][0])


def test_bad_optimizer_state_is_refused_before_anything_is_written(host_builder: HostBuilder,
                                                                   model_dir: Path) -> None:
    model = paper_model(20, seed=7)
    net = HostNetwork(host_builder.export_and_build(model, model_dir, 2, Optimizer.parse("sgd:momentum=0.9")),
                      model.arch)
    net.train_step(np.ones((2, 20, 3), np.float32), np.array([0, 1]), 0.01)
    before = net.get_optimizer_state(2)
    assert before.steps == 1 and len(before.slots) == 1
    bad = [(w.copy(), b.copy()) for w, b in before.slots[0]]
    bad[1][1][0] = np.nan
    with pytest.raises(ValueError, match="must be finite"):
        net.set_optimizer_state(OptimizerState(5, (bad,)))
    with pytest.raises(ValueError, match="keeps 306 floats of optimizer state, got 305"):
        net.set_optimizer_state(OptimizerState(5, ([before.slots[0][0], (bad[1][0], bad[1][1][:-1])],)))
    after = net.get_optimizer_state(2)
    assert after.steps == 1 and all(np.array_equal(a, b) for (aw, ab), (bw, bb) in
                                    zip(after.slots[0], before.slots[0], strict=True) for a, b in ((aw, bw), (ab, bb)))
    with pytest.raises(OdlError, match="frozen in this build"):
        net.get_optimizer_state(3)  # the conv layers are const in a TL build and keep no state
    flat = np.full(4, np.nan, np.float32)
    with pytest.raises(OdlError, match="NaN or infinity") as err:  # the library's own check, past the bridge's
        net._call("odl_write_optim_slice", model.arch.param_layers[-1], 0, flat.ctypes.data_as(_F32P), 4)
    assert err.value.status == 4


def test_a_training_sample_erases_the_int8_copy(paper_tl_net: HostNetwork) -> None:
    """The same rule in the host library as on the board (where .odl_int8 lies on .odl_grads): a batch's
    first sample erases the int8 copy and its calibration, and both are refused while a batch is open."""
    net = paper_tl_net
    xs = np.random.default_rng(5).standard_normal((4, 20, 3)).astype(np.float32)
    net.int8_calibrate(xs, reset=True)
    net.int8_quantize([8, 8, 8, 8])
    before = net.int8_predict(xs[0])
    net.accumulate(xs[1], 2)
    with pytest.raises(OdlError, match="quantize again") as err:
        net.int8_predict(xs[0])
    assert err.value.status == 16
    with pytest.raises(OdlError, match="a batch is accumulated") as err:
        net.int8_quantize([8, 8, 8, 8])
    assert err.value.status == 17
    with pytest.raises(OdlError, match="a batch is accumulated"):
        net.int8_calibrate(xs)
    net.zero_grads()
    net.int8_calibrate(xs, reset=True)
    net.int8_quantize([8, 8, 8, 8])
    after = net.int8_predict(xs[0])
    assert after[0] == before[0] and all(np.array_equal(a, b) for a, b in zip(after[1:], before[1:], strict=True))
