"""The golden model itself: it must be what Keras' own training does, or comparing with it proves nothing."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from pyodl.model.architecture import Architecture, Kind, LayerSpec, Model, paper_model
from pyodl.model.keras_io import keras, to_keras
from pyodl.model.optimizer import Optimizer
from pyodl.network.host import HostNetwork
from pyodl.reference import golden
from pyodl.toolchain.host_library import HostBuilder


@pytest.mark.parametrize("trainable", [None, 2])
def test_golden_equals_keras_fit(trainable: int | None) -> None:
    model = paper_model(20, seed=1)
    x, y = golden.random_batches(model.arch, steps=5, batch=8, seed=0)
    run = golden.train(model, x, y, 0.01, trainable)

    km = to_keras(model)
    for i in model.arch.param_layers[: len(model.arch.param_layers) - (trainable or 4)]:
        km.get_layer(model.arch.layers[i].name).trainable = False
    km.compile(optimizer=keras.optimizers.SGD(0.01), loss="categorical_crossentropy")
    onehot = np.eye(6, dtype=np.float32)[y.reshape(-1)]
    km.fit(x.reshape(-1, 20, 3), onehot, batch_size=8, epochs=1, shuffle=False, verbose=0)
    fitted = [tuple(km.get_layer(model.arch.layers[i].name).get_weights()) for i in model.arch.param_layers]
    diffs = golden.compare(model, fitted, run.params)
    assert all(d.max_abs == 0.0 for d in diffs), diffs
    assert run.losses.shape == (5,) and len(run.gradients) == 5
    assert len(run.gradients[0]) == (trainable or 4)


def test_frozen_layers_do_not_move() -> None:
    model = paper_model(20, seed=2)
    x, y = golden.random_batches(model.arch, steps=3, batch=4, seed=0)
    run = golden.train(model, x, y, 0.5, trainable_layers=1)
    for (w0, b0), (w1, b1) in zip(model.params[:3], run.params[:3], strict=True):
        assert np.array_equal(w0, w1) and np.array_equal(b0, b1)
    assert not np.array_equal(model.params[3][0], run.params[3][0])


def test_bad_batches_are_refused() -> None:
    model = paper_model(20)
    x, y = golden.random_batches(model.arch, 2, 4, seed=0)
    with pytest.raises(ValueError, match=r"shape \(steps, batch, 20, 3\)"):
        golden.train(model, x[:, :, :10], y)
    with pytest.raises(ValueError, match="labels must have shape"):
        golden.train(model, x, y[:, :3])
    with pytest.raises(ValueError, match=r"classes 0\.\.5"):
        golden.train(model, x, y + 6)
    x[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        golden.train(model, x, y)


def test_compare_fails_on_nan_and_beyond_tolerance() -> None:
    model = paper_model(20)
    params = model.params
    shifted = [(w + np.float32(1e-3), b) for w, b in params]
    assert not all(d.ok for d in golden.compare(model, shifted, params))
    nan = [(np.full_like(w, np.nan), b) for w, b in params]
    assert all(not d.ok for d in golden.compare(model, nan, params))
    assert all(d.ok and d.max_abs == 0 for d in golden.compare(model, params, params))


def _dense_model(act: str, pool: bool = False, standalone: bool = False) -> Model:
    """Input (2, 1) -> [MaxPool1D(2)] -> Flatten -> Dense(2, act) -> Dense(2, softmax): the hidden
    pre-activations are x0 + x1 and x0 - x1 (max(x0, x1) and its negation with the pool); the second sets the
    layer's magnitude, against which a near miss of the first is measured. ``standalone``: the activation as
    its own layer after a linear Dense."""
    specs = [LayerSpec(Kind.MAXPOOL1D, "pool", size=2)] if pool else []
    specs += [LayerSpec(Kind.FLATTEN, "flat"),
              LayerSpec(Kind.DENSE, "hidden", units=2, activation="none" if standalone else act)]
    specs += [LayerSpec(Kind.ACTIVATION, "act", activation=act)] if standalone else []
    specs += [LayerSpec(Kind.DENSE, "out", units=2, activation="softmax")]
    arch = Architecture.build("kinks", 2, 1, specs)
    hidden = [[1.0, -1.0]] if pool else [[1.0, 1.0], [1.0, -1.0]]
    params = [(np.array(hidden, np.float32), np.zeros(2, np.float32)),
              (np.eye(2, dtype=np.float32), np.zeros(2, np.float32))]
    return Model(arch, params)


def test_kink_samples_are_the_near_misses_of_a_decision() -> None:
    """A pre-activation within rounding of 0 (or of 6 for ReLU6) is flagged; far from it, or exactly at it
    (both sides decide alike), it is not; a max pool's near tie is flagged, an exact tie is not."""
    xs = np.array([[[1.0], [-1.0 + 1e-7]], [[0.5], [0.25]], [[1.0], [-1.0]], [[-0.3], [-0.4]]], np.float32)
    assert golden.kink_samples(_dense_model("relu"), xs).tolist() == [True, False, False, False]
    near_six = np.array([[[3.0], [3.0 + 2e-6]], [[3.0], [2.0]]], np.float32)
    assert golden.kink_samples(_dense_model("relu6"), near_six).tolist() == [True, False]
    assert golden.kink_samples(_dense_model("relu6", standalone=True), near_six).tolist() == [True, False]
    ties = np.array([[[2.0], [2.0 + 1e-6]], [[2.0], [2.0]], [[2.0], [1.0]]], np.float32)
    assert golden.kink_samples(_dense_model("sigmoid", pool=True), ties).tolist() == [True, False, False]


def test_kink_samples_flag_a_near_tie_of_a_global_max_pool() -> None:
    """A GlobalMaxPool1D's window is the whole sequence: its two largest inputs within rounding of each other
    are flagged, wherever they sit; an exact tie (both sides share the gradient alike), two values apart, or a
    near tie below the maximum is not."""
    arch = Architecture.build("gmp", 4, 2, [LayerSpec(Kind.GMP1D, "gmp"),
                                            LayerSpec(Kind.DENSE, "out", units=2, activation="softmax")])
    model = Model(arch, [(np.eye(2, dtype=np.float32), np.zeros(2, np.float32))])
    channel = [[0.0, 2.0, -1.0, 2.0 + 1e-6],  # near tie, first and last rows
               [2.0, 0.0, 2.0, 1.0],  # exact tie
               [2.0, 1.0, 0.5, 0.0],  # a clear maximum
               [3.0, 1.0, 1.0 + 1e-7, 0.0]]  # the near tie is below the maximum: it decides nothing
    xs = np.zeros((4, 4, 2), np.float32)
    xs[:, :, 1] = np.asarray(channel, np.float32)  # channel 0 all zeros: an exact tie throughout
    assert golden.kink_samples(model, xs).tolist() == [True, False, False, False]


def test_lockstep_passes_a_correct_build_and_fails_a_wrong_one(tmp_path: Path) -> None:
    model = paper_model(20, seed=2)
    x, y = golden.random_batches(model.arch, steps=3, batch=4, seed=5)
    net = HostNetwork(HostBuilder(tmp_path / "b").export_and_build(model, tmp_path / "m"), model.arch)
    ratios, left_out = golden.lockstep(net, model, x, y, 0.01)
    assert ratios.shape == (3,) and (ratios < 0.1).all() and left_out == 0

    real = net.sgd_step
    net.sgd_step = lambda lr: real(lr * 1.001)  # type: ignore[method-assign]  # a wrong update
    ratios, _ = golden.lockstep(net, model, x, y, 0.01)
    assert (ratios > 1).all()


OPTIMIZERS = [Optimizer.parse(text) for text in ("sgd:momentum=0.9", "sgd:momentum=0.8,nesterov", "adam",
                                                 "adam:beta_1=0.8,beta_2=0.99,epsilon=1e-5")]


@pytest.mark.parametrize("optimizer", OPTIMIZERS, ids=Optimizer.describe)
def test_keras_reference_optimizer_state_is_keras_own_and_resumes_a_run(optimizer: Optimizer) -> None:
    """The slots KerasReference reads are the ones Keras updates, in the firmware's order (the velocity
    m = momentum m - lr g; Adam's m and v without bias correction) with its step count; written into another
    reference after the weights, they make its next step Keras's own next step, bit for bit."""
    model = paper_model(20, seed=4)
    x, y = golden.random_batches(model.arch, steps=3, batch=4, seed=6)
    a = golden.KerasReference(model, optimizer)
    a.set_trainable(2)
    grads = []
    for s in range(2):
        a.train_step(x[s], y[s], 0.01)
        grads.append([g for layer in a.gradients for g in layer])
    state = a.get_optimizer_state()
    assert state.steps == 2 and len(state.slots) == len(golden.slot_names(optimizer))
    assert all(len(slot) == 2 for slot in state.slots)
    got = [[part for layer in slot for part in layer] for slot in state.slots]
    f32 = np.float32
    for k, (g1, g2) in enumerate(zip(*grads, strict=True)):  # Keras's recurrences, in float32 as it runs them
        if optimizer.kind == "adam":
            m = v = np.zeros_like(g1)
            for g in (g1, g2):
                m = m + (g - m) * f32(1 - optimizer.beta_1)
                v = v + (g * g - v) * f32(1 - optimizer.beta_2)
            np.testing.assert_allclose(got[0][k], m, rtol=1e-6, atol=1e-12)
            np.testing.assert_allclose(got[1][k], v, rtol=1e-6, atol=1e-18)
        else:
            velocity = np.zeros_like(g1)
            for g in (g1, g2):
                velocity = velocity * f32(optimizer.momentum) - g * f32(0.01)
            np.testing.assert_allclose(got[0][k], velocity, rtol=1e-6, atol=1e-12)
    params = a.get_params()
    a.train_step(x[2], y[2], 0.01)

    b = golden.KerasReference(model, optimizer)
    b.set_trainable(2)
    b.set_params(params)
    b.set_optimizer_state(state)
    resumed = b.get_optimizer_state()
    assert resumed.steps == 2 and all(np.array_equal(p, q) for sp, sq in zip(resumed.slots, state.slots, strict=True)
                                      for lp, lq in zip(sp, sq, strict=True) for p, q in zip(lp, lq, strict=True))
    b.train_step(x[2], y[2], 0.01)
    assert all(d.max_abs == 0.0 for d in golden.compare(model, b.get_params(), a.get_params()))
    b.set_params(params)  # the weights alone: a fresh optimizer, another step
    b.train_step(x[2], y[2], 0.01)
    assert not all(d.max_abs == 0.0 for d in golden.compare(model, b.get_params(), a.get_params()))


@pytest.fixture(scope="module")
def adam_net(tmp_path_factory: pytest.TempPathFactory) -> HostNetwork:
    model = paper_model(20, seed=2)
    tmp = tmp_path_factory.mktemp("adam")
    return HostNetwork(HostBuilder(tmp / "b").export_and_build(model, tmp / "m", None, Optimizer.parse("adam")),
                       model.arch)


def test_lockstep_restarts_the_whole_state_and_catches_what_a_restarted_optimizer_hides(adam_net: HostNetwork) -> None:
    """Each step starts both sides from TensorFlow's weights, m, v and step count: a correct Adam build passes
    every step at once (the state read back matches too). A build that restarts the optimizer at each step
    (the old lockstep, the slots not restored), ignores the step count (the bias correction of a first step
    every time), or keeps a wrong m while updating its weights right, computes every first step right: each
    fails from the second step on."""
    model, adam = Model(adam_net.arch, paper_model(20, seed=2).params), Optimizer.parse("adam")
    x, y = golden.random_batches(model.arch, steps=4, batch=8, seed=5)
    ratios, left_out = golden.lockstep(adam_net, model, x, y, 0.01, None, adam)
    assert ratios.shape == (4,) and (ratios < 0.5).all() and left_out == 0

    real_set, real_step = adam_net.set_optimizer_state, adam_net.sgd_step

    def wrong_m_kept(lr: float) -> None:
        real_step(lr)
        state = adam_net.get_optimizer_state(4)
        real_set(replace(state, slots=([(w * np.float32(1.001), b) for w, b in state.slots[0]], state.slots[1])))

    plants = {"slots not restored": {"set_optimizer_state": lambda state: None},
              "step count ignored": {"set_optimizer_state": lambda state: real_set(replace(state, steps=0))},
              "a wrong m kept": {"sgd_step": wrong_m_kept}}
    for name, patches in plants.items():
        for attr, fn in patches.items():
            setattr(adam_net, attr, fn)
        try:
            ratios, _ = golden.lockstep(adam_net, model, x, y, 0.01, None, adam)
        finally:
            for attr in patches:
                delattr(adam_net, attr)
        assert (ratios[1:] > 1).all(), (name, ratios)
        if name != "a wrong m kept":  # its first step already stores the wrong m
            assert ratios[0] <= 1, (name, ratios)


def test_lockstep_gives_adam_a_verdict_where_its_trajectories_part(host_builder: HostBuilder, model_dir: Path) -> None:
    """The paper's model (T=20, seed 5), 30 Adam steps of batch 16: the C library's trajectory leaves
    TensorFlow's (a rounding-level decision that Adam, dividing by the gradient's own size, carries on), yet every
    step taken from TensorFlow's whole state agrees, weights and slots. Restoring the weights alone, the slots
    left as the weights' write cleared them, fails the same steps."""
    model, adam = paper_model(20, seed=5), Optimizer.parse("adam")
    net = HostNetwork(host_builder.export_and_build(model, model_dir, None, adam), model.arch)
    x, y = golden.random_batches(model.arch, steps=30, batch=16, seed=6)
    for s in range(30):
        net.train_step(x[s], y[s], 0.01)
    trajectory = golden.compare(model, net.get_params(), golden.train(model, x, y, 0.01, None, adam).params,
                                *golden.tolerance(adam, 0.01, 30))
    assert max(d.worst_ratio for d in trajectory) > 2
    ratios, _ = golden.lockstep(net, model, x, y, 0.01, None, adam)
    assert (ratios <= 1).all(), ratios.max()

    net.set_optimizer_state = lambda state: None  # type: ignore[method-assign]
    ratios, _ = golden.lockstep(net, model, x, y, 0.01, None, adam)
    assert (ratios[1:] > 1).all(), ratios
