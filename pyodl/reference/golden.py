"""The TensorFlow golden model: the reference every C build is compared with.

:class:`KerasReference` trains a model exactly as ``keras.Model.fit`` would (categorical cross-entropy,
batch-mean reduction, Keras's SGD, momentum or Adam, frozen layers for transfer learning); :func:`train` runs N steps
of it on given batches and records the loss and the gradients of every step; :func:`compare` holds a C
build's weights against it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from pyodl.model.architecture import MASKED, Architecture, Kind, LayerSpec, Model, Params
from pyodl.model.keras_io import keras, keras_optimizer, layer_params, set_layer_params, to_keras
from pyodl.model.optimizer import SGD, Optimizer, OptimizerState
from pyodl.network.base import Network

# Golden tolerance of DESIGN.md: float32 C vs TF after up to 100 SGD steps. The only differences are
# summation order and rounding (~3e-8 absolute measured), so this leaves a wide margin without ever
# accepting a wrong formula, whose errors are orders of magnitude larger.
ATOL = 1e-6
RTOL = 1e-5
# Adam's step lr * m_hat / sqrt(v_hat) does not scale with the gradient: a gradient element that is a small
# difference of large terms (agreeing between C and TF to ~1e-4 relative only, see the first-step gradient
# checks) still moves its weight by up to ~lr, and its rounding error by up to ~lr * 1e-4. So under Adam the
# absolute tolerance grows by this much per step and unit of learning rate. A wrong update (no bias
# correction, a swapped beta) is off by a sizeable fraction of lr at the first step already.
ADAM_STEP_ATOL = 1e-4


def tolerance(optimizer: Optimizer = SGD, learning_rate: float = 0.01, steps: int = 1) -> tuple[float, float]:
    """(atol, rtol) of the golden comparison after ``steps`` updates by ``optimizer``."""
    if optimizer.kind == "adam":
        return ATOL + ADAM_STEP_ATOL * learning_rate * steps, RTOL
    return ATOL, RTOL


@dataclass(frozen=True)
class GoldenRun:
    params: Params  # after the last step, every parameter layer
    losses: np.ndarray  # (steps,) batch-mean loss before each update
    gradients: list[Params]  # per step, the batch-mean gradients of the trained layers


def random_batches(arch: Architecture, steps: int, batch: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Standard-normal windows (the scale of accelerometer data in g) and uniform labels, shaped as
    :func:`train` takes them: (steps, batch, T, C) and (steps, batch)."""
    rng = np.random.default_rng(seed)
    windows = rng.standard_normal((steps, batch, arch.input_len, arch.input_ch)).astype(np.float32)
    labels = rng.integers(0, arch.num_classes, size=(steps, batch))
    return windows, labels


def check_batches(model: Model, windows: np.ndarray, labels: np.ndarray) -> None:
    """``windows`` (steps, B, T, C) float32 and ``labels`` (steps, B) integer classes, or ValueError."""
    arch = model.arch
    if windows.ndim != 4 or windows.shape[2:] != (arch.input_len, arch.input_ch):
        raise ValueError(
            f"windows must have shape (steps, batch, {arch.input_len}, {arch.input_ch}), got {windows.shape}"
        )
    if labels.shape != windows.shape[:2]:
        raise ValueError(f"labels must have shape {windows.shape[:2]}, got {labels.shape}")
    if not np.isfinite(windows).all():
        raise ValueError("windows contain NaN or infinity")
    if labels.size and (labels.min() < 0 or labels.max() >= arch.num_classes):
        raise ValueError(f"labels must be classes 0..{arch.num_classes - 1}")


class KerasReference:
    """The model in TensorFlow, trained as ``keras.Model.fit`` trains it: Keras's ``optimizer`` on the
    batch-mean categorical cross-entropy, frozen layers for transfer learning. What the firmware must
    compute; the golden check and personalization's ``--trainer tf`` both train with it. As on the device,
    the optimizer starts afresh whenever the trained layers change or parameters are written."""

    def __init__(self, model: Model, optimizer: Optimizer = SGD) -> None:
        import tensorflow as tf

        self._tf = tf
        self.arch = model.arch
        self.optimizer = optimizer
        self.km: Any = to_keras(model)
        self._loss_fn = keras.losses.CategoricalCrossentropy()
        self.gradients: Params = []  # of the last step, for the trained layers
        self.set_trainable(len(self.arch.param_layers))

    def set_trainable(self, trainable_layers: int) -> None:
        """Train only the last ``trainable_layers`` parameter layers."""
        tf, arch = self._tf, self.arch
        first = arch.first_trained(trainable_layers)
        for i in arch.param_layers:
            self.km.get_layer(arch.layers[i].name).trainable = i >= first
        # A Keras optimizer serves the variables it was built with only: a new set needs a new one, which
        # also starts with no momentum, as the firmware's odl_set_trainable does.
        optimizer = keras_optimizer(self.optimizer)
        variables = self.km.trainable_variables
        km, loss_fn = self.km, self._loss_fn

        @tf.function
        def step(x: Any, y: Any) -> Any:
            with tf.GradientTape() as tape:
                loss = loss_fn(y, km(x, training=True))
            grads = tape.gradient(loss, variables)
            optimizer.apply_gradients(zip(grads, variables, strict=True))
            return loss, grads

        self._optimizer = optimizer
        self._step = step

    def train_step(self, xs: np.ndarray, labels: np.ndarray, learning_rate: float) -> float:
        """One SGD step on a batch ``(B, input_len, input_ch)``; returns the batch-mean loss before it."""
        tf = self._tf
        self._optimizer.learning_rate = learning_rate
        onehot = np.eye(self.arch.num_classes, dtype=np.float32)[labels]
        loss, grads = self._step(tf.constant(xs, tf.float32), tf.constant(onehot))
        g = iter([np.asarray(t) for t in grads])
        trained = [self.arch.layers[i] for i in self.arch.param_layers
                   if self.km.get_layer(self.arch.layers[i].name).trainable]
        self.gradients = [(next(g), next(g) if layer.use_bias else np.zeros(0, np.float32)) for layer in trained]
        return float(loss)

    def predict_classes(self, xs: np.ndarray) -> np.ndarray:
        return np.argmax(self.km.predict(xs, verbose=0, batch_size=256), axis=1).astype(np.int64)

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """The class probabilities of one window ``(input_len, input_ch)``, float32 (a direct call: for a stream,
        a window at a time, ``predict``'s batching costs more than the model)."""
        out = self.km(self._tf.constant(np.asarray(x, np.float32)[None]), training=False)
        return np.asarray(out, dtype=np.float32)[0]

    def set_params(self, params: Params) -> None:
        for i, (w, b) in zip(self.arch.param_layers, params, strict=True):
            set_layer_params(self.km.get_layer(self.arch.layers[i].name), w, b)
        # New weights, a new run: no momentum and step count 0, as odl_set_params. (The learning rate, also
        # one of these variables, is set again at every step.)
        for variable in self._optimizer.variables:
            variable.assign(np.zeros(variable.shape, variable.dtype))

    def get_params(self) -> Params:
        return [layer_params(self.km.get_layer(self.arch.layers[i].name)) for i in self.arch.param_layers]

    def _trained_variables(self) -> list[list[Any]]:
        """Per trained parameter layer from the lowest, its Keras variables: the weights (a BatchNormalization's
        gamma), then the bias (beta) when it has one, the order of :func:`layer_params`."""
        layers = [self.km.get_layer(self.arch.layers[i].name) for i in self.arch.param_layers]
        return [list(layer.trainable_variables) for layer in layers if layer.trainable]

    def _slot_lists(self) -> list[list[Any]]:
        """Keras's slot variables, one list per slot in the firmware's order, each indexed as the optimizer
        indexes the variables it was built with: SGD's ``momentums`` (the velocity, which Keras 3 keeps as
        ``m = momentum * m - lr * g`` for plain and Nesterov momentum alike, as optimizer.c), Adam's
        ``_momentums`` (m) and ``_velocities`` (v), both without bias correction, as optimizer.c keeps them."""
        optimizer = self._optimizer
        if not optimizer.built:  # Keras builds the slots at the first step; a state may be written before it
            optimizer.build(self.km.trainable_variables)
        if self.optimizer.kind == "adam":
            return [optimizer._momentums, optimizer._velocities]
        return [optimizer.momentums] if self.optimizer.momentum else []

    def get_optimizer_state(self) -> OptimizerState:
        """The optimizer's step count (``iterations``) and slots of the trained layers, as the firmware keeps
        them (:meth:`pyodl.network.base.Network.get_optimizer_state`)."""
        optimizer, empty = self._optimizer, np.zeros(0, np.float32)
        slots = tuple(
            [(np.array(slot[optimizer._get_variable_index(v[0])].numpy()),
              np.array(slot[optimizer._get_variable_index(v[1])].numpy()) if len(v) > 1 else empty)
             for v in self._trained_variables()]
            for slot in self._slot_lists())
        return OptimizerState(int(np.asarray(optimizer.iterations)), slots)

    def set_optimizer_state(self, state: OptimizerState) -> None:
        """Writes the step count and the trained layers' slots (after :meth:`set_params`, which clears them)."""
        optimizer, lists, variables = self._optimizer, self._slot_lists(), self._trained_variables()
        if len(state.slots) != len(lists) or any(len(slot) != len(variables) for slot in state.slots):
            raise ValueError(f"{self.optimizer.describe()} on {len(variables)} trained layers keeps "
                             f"{len(lists)} slots per layer, got {len(state.slots)}")
        for slot, values in zip(lists, state.slots, strict=True):
            for v, (w, b) in zip(variables, values, strict=True):
                slot[optimizer._get_variable_index(v[0])].assign(w)
                if len(v) > 1:
                    slot[optimizer._get_variable_index(v[1])].assign(b)
        optimizer.iterations.assign(int(state.steps))


def train(model: Model, windows: np.ndarray, labels: np.ndarray, learning_rate: float = 0.01,
          trainable_layers: int | None = None, optimizer: Optimizer = SGD) -> GoldenRun:
    """Train a copy of ``model`` in TensorFlow, one ``optimizer`` step per batch ``windows[s]``.

    ``trainable_layers``: train only the last N parameter layers (None: all, Full mode)."""
    check_batches(model, windows, labels)
    reference = KerasReference(model, optimizer)
    if trainable_layers is not None:
        reference.set_trainable(trainable_layers)
    losses = []
    gradients: list[Params] = []
    for s in range(windows.shape[0]):
        losses.append(reference.train_step(windows[s], labels[s], learning_rate))
        gradients.append(reference.gradients)
    return GoldenRun(reference.get_params(), np.asarray(losses, np.float32), gradients)


# A ReLU-type pre-activation (or a max pool's runner-up) this close to its decision point, relative to the
# largest magnitude in its layer for that sample, can fall on either side depending on summation order:
# float32 rounding of a sum of such terms is ~1e-7 of that magnitude, so 1e-5 leaves a wide margin.
KINK_RELATIVE = 1e-5


def _split_activations(arch: Architecture) -> tuple[Architecture, list[tuple[int, tuple[float, ...]]]]:
    """``arch`` with every fused ReLU-type activation moved into its own layer, and, per layer whose input
    must be inspected, (index in the twin, its kinks): ReLU-type layers' inputs and max pools' inputs (an
    empty tuple: a near tie is the decision)."""
    specs, watch = [], []
    for layer in arch.layers:
        fused = layer.activation in MASKED and layer.kind is not Kind.ACTIVATION  # not a standalone layer
        specs.append(replace(layer.spec(), activation="none") if fused else layer.spec())
        if layer.kind in (Kind.MAXPOOL1D, Kind.GMP1D):
            watch.append((len(specs) - 1, ()))
        kinks = (0.0, 6.0) if layer.activation == "relu6" else (0.0,)
        if layer.masked and not fused:  # a standalone ReLU, ReLU6 or LeakyReLU
            watch.append((len(specs) - 1, kinks))
        if fused:
            kind = Kind.RELU if layer.activation == "relu" else Kind.ACTIVATION
            specs.append(LayerSpec(kind, f"{layer.name}__act", activation="none" if kind is Kind.RELU else
                                   layer.activation, alpha=layer.alpha))
            watch.append((len(specs) - 1, kinks))
    return Architecture.build(arch.name, arch.input_len, arch.input_ch, specs), watch


def kink_samples(model: Model, xs: np.ndarray) -> np.ndarray:
    """Which samples of ``xs`` (N, T, C) put a ReLU, ReLU6 or LeakyReLU input, or a max pool's two largest
    inputs, within rounding of the decision (KINK_RELATIVE): there the C library and TensorFlow may decide
    differently without either being wrong."""
    twin_arch, watch = _split_activations(model.arch)
    km = to_keras(Model(twin_arch, model.params))
    inputs = keras.Model(km.inputs, [km.layers[i].input for i, _ in watch])([xs])
    inputs = inputs if isinstance(inputs, list | tuple) else [inputs]
    flagged = np.zeros(len(xs), dtype=bool)
    for (i, kinks), value in zip(watch, inputs, strict=True):
        z = np.asarray(value, dtype=np.float64).reshape(len(xs), -1)
        scale = np.abs(z).max(axis=1, keepdims=True) * KINK_RELATIVE + 1e-30
        if kinks:
            # Exactly at the kink both sides decide alike (x > 0 is false on both): only a near miss counts.
            flagged |= np.any([(np.abs(z - k) <= scale) & (z != k) for k in kinks], axis=(0, 2))
            continue
        layer = twin_arch.layers[i]  # a max pool: the gap between each window's two largest inputs
        grid = np.asarray(value, dtype=np.float64)
        for m in range(layer.out_len):
            # A global max pool's one window is the whole sequence.
            rows = list(range(layer.in_len)) if layer.kind is Kind.GMP1D else layer.rows_read(m)
            if len(rows) < 2:
                continue
            top = np.sort(grid[:, rows, :], axis=1)
            gap = top[:, -1, :] - top[:, -2, :]
            # An exact tie (two ReLU zeros) goes to the first on both sides (a global max pool's is shared
            # alike on both sides); a near one may not.
            flagged |= np.any((gap <= scale) & (gap > 0), axis=1)
    return flagged


def lockstep(net: Network, model: Model, windows: np.ndarray, labels: np.ndarray, learning_rate: float = 0.01,
             trainable_layers: int | None = None, optimizer: Optimizer = SGD) -> tuple[np.ndarray, int]:
    """Every step from the same whole training state: TensorFlow trains on the batches ``windows`` as
    :func:`train` does, and before its step s its state (the weights, and the optimizer's slots and step count:
    momentum's velocity, Adam's m, v and iterations) is written into ``net`` (the C library on the host or a
    board) and back into TensorFlow; both take step s, and the weights (tolerance of one step,
    :func:`tolerance`) and the slots and step count (:func:`compare_slots`) are compared. Returns each step's
    worst ratio to the tolerance (<= 1 passes) and how many samples were left out (below).

    Two float32 trajectories of a network with ReLUs or max pools part for good once a pre-activation or a
    pool's two largest inputs sit within a rounding of each other and the two sides decide differently; the
    weights then differ by a gradient's worth, which no tolerance for rounding allows. A stateful optimizer
    carries every rounding into the steps after it (Adam divides by the gradient's own size, so a rounding-level
    decision moves a weight by up to a learning rate). Lockstep compares what the C code computes, one step at a
    time from TensorFlow's whole state, with the same tolerance, so that such a flip is told apart from a wrong
    formula (whose error shows at every step): SGD, momentum and Adam get the same verdict, and an update that
    reads or keeps its state wrong (a step count, a bias correction, a beta, a slot not stored) fails as an
    update computed wrong does. A step that still fails is taken again without the samples that put a decision
    within rounding (:func:`kink_samples`); TensorFlow's trajectory goes on with the whole batch's step."""
    check_batches(model, windows, labels)
    reference = KerasReference(model, optimizer)
    net.set_trainable(len(model.arch.param_layers) if trainable_layers is None else trainable_layers)
    if trainable_layers is not None:
        reference.set_trainable(trainable_layers)
    trained = len(model.arch.param_layers) if trainable_layers is None else trainable_layers
    ratios, left_out = [], 0
    for s in range(windows.shape[0]):
        start, state = reference.get_params(), reference.get_optimizer_state()
        xs, ys = windows[s], labels[s]
        trajectory: tuple[Params, OptimizerState] | None = None
        for attempt in range(2):
            for side in (net, reference):
                side.set_params(start)  # restarts the optimizer: its state goes in after the weights
                side.set_optimizer_state(state)
            net.train_step(xs, ys, learning_rate)
            reference.train_step(xs, ys, learning_rate)
            if attempt == 0:
                trajectory = reference.get_params(), reference.get_optimizer_state()
            weights = compare(model, net.get_params(), reference.get_params(), *tolerance(optimizer, learning_rate, 1))
            slots = compare_slots(model, optimizer, net.get_optimizer_state(trained), reference.get_optimizer_state(),
                                  reference.gradients, learning_rate)
            ratio = max(d.worst_ratio for d in weights + slots)
            kinks = kink_samples(Model(model.arch, start), xs) if attempt == 0 and ratio > 1.0 else None
            if kinks is None or not kinks.any() or kinks.all():
                break
            xs, ys = xs[~kinks], ys[~kinks]
            left_out += int(kinks.sum())
        if attempt and trajectory is not None:  # back on TensorFlow's own trajectory, the whole batch's step
            reference.set_params(trajectory[0])
            reference.set_optimizer_state(trajectory[1])
        ratios.append(ratio)
    return np.asarray(ratios), left_out


# The optimizer's slots after one step from the same state are linear in that step's gradient g: momentum's
# velocity takes lr * g, Adam's m takes (1 - beta_1) g and its v (1 - beta_2) g^2, whose error is up to
# (2 |g| + dg) times g's error dg. Given the same state, the two sides' gradients differ by summation order
# only, within GRAD_ATOL + GRAD_RTOL |g| (looser than the weights' tolerance because a gradient element can be
# a small difference of large terms; the first-step gradient checks of tests/reference hold the C library to
# it), so a slot may differ by its coefficient times that, plus the float32 rounding of the slot itself
# (RTOL |slot|). A wrong slot update (a swapped beta, a missing term, a slot not kept) is off by a sizeable part
# of the gradient's term, orders of magnitude more.
GRAD_ATOL = 1e-6
GRAD_RTOL = 1e-4


def slot_names(optimizer: Optimizer) -> tuple[str, ...]:
    """The firmware's slots, in order: momentum's velocity, Adam's first and second moments."""
    return ("m", "v") if optimizer.kind == "adam" else ("velocity",) if optimizer.momentum else ()


def compare_slots(model: Model, optimizer: Optimizer, candidate: OptimizerState, golden: OptimizerState,
                  gradients: Params, learning_rate: float) -> list[LayerDiff]:
    """Per trained layer and slot, how far ``candidate``'s slots are from ``golden``'s after one step from the
    same state whose (golden) batch-mean gradients were ``gradients``, as a fraction of the tolerance (see
    GRAD_ATOL); a step count that differs fails whole ("step count", ratio infinity)."""
    names = slot_names(optimizer)
    if len(candidate.slots) != len(names) or len(golden.slots) != len(names):
        raise ValueError(f"{optimizer.describe()} keeps {len(names)} slots, got {len(candidate.slots)} and "
                         f"{len(golden.slots)}")
    trained = [model.arch.layers[i].name for i in model.arch.param_layers[len(model.arch.param_layers)
                                                                             - len(gradients):]]
    diffs = []
    if candidate.steps != golden.steps:
        diffs.append(LayerDiff("step count", float(abs(candidate.steps - golden.steps)), float("inf"), float("inf")))
    for k, name in enumerate(names):
        for j, layer in enumerate(trained):
            c = np.concatenate([np.ravel(part) for part in candidate.slots[k][j]]).astype(np.float64)
            g = np.concatenate([np.ravel(part) for part in golden.slots[k][j]]).astype(np.float64)
            grad = np.abs(np.concatenate([np.ravel(part) for part in gradients[j]]).astype(np.float64))
            if c.shape != g.shape or g.shape != grad.shape:
                raise ValueError(f"layer '{layer}' {name}: {c.size} values against {g.size} ({grad.size} gradients)")
            dg = GRAD_ATOL + GRAD_RTOL * grad
            coefficient = {"velocity": learning_rate, "m": 1.0 - optimizer.beta_1,
                           "v": (1.0 - optimizer.beta_2) * (2.0 * grad + dg)}[name]
            diff = np.abs(c - g)
            ratio = diff / (coefficient * dg + RTOL * np.abs(g))
            worst = float(np.max(ratio, initial=0.0)) if np.isfinite(ratio).all() else float("inf")
            rel = diff / np.maximum(np.abs(g), np.finfo(np.float32).tiny)
            diffs.append(LayerDiff(f"{layer} {name}", float(np.max(diff, initial=0.0)),
                                   float(np.max(rel, initial=0.0)), worst))
    return diffs


@dataclass(frozen=True)
class LayerDiff:
    name: str
    max_abs: float
    max_rel: float
    worst_ratio: float  # max over elements of |diff| / (atol + rtol |w_tf|); <= 1 passes

    @property
    def ok(self) -> bool:
        return self.worst_ratio <= 1.0


def compare(model: Model, candidate: Params, golden: Params, atol: float = ATOL,
            rtol: float = RTOL) -> list[LayerDiff]:
    """Per parameter layer (weights and bias together), how far ``candidate`` is from ``golden``, as a
    fraction of the tolerance ``atol + rtol |golden|`` (see :func:`tolerance`)."""
    diffs = []
    for i, (cw, cb), (gw, gb) in zip(model.arch.param_layers, candidate, golden, strict=True):
        c = np.concatenate([np.ravel(cw), np.ravel(cb)]).astype(np.float64)
        g = np.concatenate([np.ravel(gw), np.ravel(gb)]).astype(np.float64)
        if c.shape != g.shape:
            raise ValueError(f"layer '{model.arch.layers[i].name}': {c.size} values against {g.size}")
        diff = np.abs(c - g)
        rel = diff / np.maximum(np.abs(g), np.finfo(np.float32).tiny)
        ratio = diff / (atol + rtol * np.abs(g))
        # NaN anywhere must fail, not compare as "not greater than".
        worst = float(np.max(ratio)) if np.isfinite(ratio).all() else float("inf")
        diffs.append(LayerDiff(model.arch.layers[i].name, float(np.max(diff)), float(np.max(rel)), worst))
    return diffs
