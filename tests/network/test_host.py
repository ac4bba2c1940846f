"""The ctypes bridge: status codes become exceptions, bad inputs are refused and change nothing."""

from pathlib import Path

import numpy as np
import pytest

from pyodl.model.architecture import paper_model
from pyodl.model.keras_io import to_keras
from pyodl.network.host import HostNetwork, OdlError
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
