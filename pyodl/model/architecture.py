"""The network description shared by the exporter, the estimator and the golden model.

An :class:`Architecture` is the list of supported layers with their shapes; a :class:`Model` adds the
parameters. Nothing here imports TensorFlow: Keras files are translated in :mod:`pyodl.model.keras_io`.
Shapes are (length, channels), channels-last like Keras; parameters use the Keras layouts
(Conv1D kernel ``(K, C_in, F)``, Dense kernel ``(N_in, N_out)``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from enum import Enum

import numpy as np


class ModelError(ValueError):
    """A model the on-device-learning library cannot run, with the layer and option at fault."""


class Kind(str, Enum):
    CONV1D = "conv1d"
    DEPTHWISE1D = "depthwise1d"  # DepthwiseConv1D: units = depth multiplier
    DENSE = "dense"
    AVGPOOL1D = "avgpool1d"
    MAXPOOL1D = "maxpool1d"
    GAP1D = "gap1d"
    GMP1D = "gmp1d"  # GlobalMaxPooling1D
    FLATTEN = "flatten"
    RELU = "relu"
    ACTIVATION = "activation"  # a standalone ReLU6, LeakyReLU, tanh or sigmoid
    BATCHNORM = "batchnorm"  # inference mode: fixed statistics, trainable gamma (weights) and beta (bias)
    SOFTMAX = "softmax"


ELEMENTWISE = ("relu6", "leaky_relu", "tanh", "sigmoid")  # what a Kind.ACTIVATION layer computes
ACTIVATIONS = ("none", "relu", "softmax", *ELEMENTWISE)
MASKED = ("relu", "relu6", "leaky_relu")  # backward from a bit per element: where the gradient passes
SAVING = ("tanh", "sigmoid")  # backward from a copy of the output
PARAM_KINDS = (Kind.CONV1D, Kind.DEPTHWISE1D, Kind.DENSE, Kind.BATCHNORM)
CONV_KINDS = (Kind.CONV1D, Kind.DEPTHWISE1D)  # take a kernel size, strides, dilation and padding
POOL_KINDS = (Kind.AVGPOOL1D, Kind.MAXPOOL1D)
WINDOW_KINDS = (*CONV_KINDS, *POOL_KINDS)  # layers that slide a window: stride, dilation, padding
# As Keras allows them (its DepthwiseConv1D has no 'causal').
PADDINGS = {Kind.CONV1D: ("valid", "same", "causal"), Kind.DEPTHWISE1D: ("valid", "same"),
            Kind.AVGPOOL1D: ("valid", "same"), Kind.MAXPOOL1D: ("valid", "same")}


@dataclass(frozen=True)
class LayerSpec:
    """What a layer is, before shapes are known: the input to :meth:`Architecture.build`."""

    kind: Kind
    name: str
    units: int = 0  # Conv1D filters, Dense units
    size: int = 0  # Conv1D kernel size, pool size
    activation: str = "none"
    stride: int = 0  # Conv1D and pools; 0: the Keras default (1 for Conv1D, the pool size for pools)
    dilation: int = 1  # Conv1D only
    padding: str = "valid"  # Conv1D: valid, same or causal; pools: valid or same
    alpha: float = 0.0  # leaky_relu's negative slope
    # BatchNormalization's fixed statistics per channel: the moving mean and 1 / sqrt(variance + epsilon).
    stats: tuple[tuple[float, ...], tuple[float, ...]] | None = None
    use_bias: bool = True  # Conv1D, DepthwiseConv1D, Dense: False as Keras's use_bias=False


@dataclass(frozen=True)
class Layer:
    kind: Kind
    name: str
    in_len: int
    in_ch: int
    out_len: int
    out_ch: int
    size: int = 0
    activation: str = "none"
    stride: int = 1
    dilation: int = 1
    padding: str = "valid"
    pad: int = 0  # padding rows before the input (the rows after it follow from out_len)
    alpha: float = 0.0  # leaky_relu's negative slope
    # BatchNormalization's fixed statistics per channel: the moving mean and 1 / sqrt(variance + epsilon).
    stats: tuple[tuple[float, ...], tuple[float, ...]] | None = field(default=None, repr=False)
    use_bias: bool = True  # a parameter layer without bias (Keras use_bias=False) has a (0,) bias

    @property
    def has_params(self) -> bool:
        return self.kind in PARAM_KINDS

    @property
    def in_size(self) -> int:
        return self.in_len * self.in_ch

    @property
    def out_size(self) -> int:
        return self.out_len * self.out_ch

    @property
    def weight_shape(self) -> tuple[int, ...]:
        if self.kind is Kind.BATCHNORM:
            return (self.out_ch,)
        if self.kind is Kind.CONV1D:
            return (self.size, self.in_ch, self.out_ch)
        if self.kind is Kind.DEPTHWISE1D:
            return (self.size, self.in_ch, self.out_ch // self.in_ch)
        if self.kind is Kind.DENSE:
            return (self.in_size, self.out_ch)
        return ()

    @property
    def bias_shape(self) -> tuple[int, ...]:
        if not self.has_params:
            return ()
        return (self.out_ch,) if self.use_bias else (0,)

    @property
    def param_count(self) -> int:
        if not self.has_params:
            return 0
        return int(np.prod(self.weight_shape)) + int(np.prod(self.bias_shape))

    @property
    def masked(self) -> bool:
        """ReLU, ReLU6, LeakyReLU: the backward pass needs a bit per output element."""
        return self.kind is Kind.RELU or self.activation in MASKED

    @property
    def saves_output(self) -> bool:
        """tanh, sigmoid: the backward pass needs a copy of the output."""
        return self.activation in SAVING

    def spec(self) -> LayerSpec:
        """The LayerSpec that builds this layer again (from the same input shape)."""
        units = {Kind.CONV1D: self.out_ch, Kind.DENSE: self.out_ch,
                 Kind.DEPTHWISE1D: self.out_ch // max(self.in_ch, 1)}.get(self.kind, 0)
        return LayerSpec(self.kind, self.name, units=units, size=self.size, activation=self.activation,
                         stride=self.stride if self.kind in WINDOW_KINDS else 0, dilation=self.dilation,
                         padding=self.padding, alpha=self.alpha, stats=self.stats, use_bias=self.use_bias)

    def rows_read(self, m: int) -> list[int]:
        """The input rows output ``m`` of a Conv1D, DepthwiseConv1D or pool reads, padding left out."""
        start = m * self.stride - self.pad
        return [row for row in range(start, start + self.dilation * (self.size - 1) + 1, self.dilation)
                if 0 <= row < self.in_len]

    @property
    def window_options(self) -> str:
        """Stride, dilation and padding where they differ from the paper's layers ('' otherwise)."""
        if self.kind not in WINDOW_KINDS:
            return ""
        default_stride = 1 if self.kind in CONV_KINDS else self.size
        parts = [f"strides={self.stride}"] if self.stride != default_stride else []
        parts += [f"dilation_rate={self.dilation}"] if self.dilation != 1 else []
        parts += [f"padding='{self.padding}'"] if self.padding != "valid" else []
        return ", ".join(parts)

    @property
    def options(self) -> str:
        """Window options and use_bias=False where they differ from the paper's layers ('' otherwise)."""
        return ", ".join(filter(None, [self.window_options, "" if self.use_bias else "use_bias=False"]))

    def describe(self) -> str:
        options = f", {self.options}" if self.options else ""
        if self.kind is Kind.CONV1D:
            what = f"Conv1D({self.out_ch}, {self.size}{options})"
        elif self.kind is Kind.DEPTHWISE1D:
            what = f"DepthwiseConv1D({self.size}, depth_multiplier={self.out_ch // self.in_ch}{options})"
        elif self.kind is Kind.DENSE:
            what = f"Dense({self.out_ch}{options})"
        elif self.kind is Kind.AVGPOOL1D:
            what = f"AvgPool1D({self.size}{options})"
        elif self.kind is Kind.MAXPOOL1D:
            what = f"MaxPool1D({self.size}{options})"
        elif self.kind is Kind.ACTIVATION:
            what = "Activation"
        elif self.kind is Kind.BATCHNORM:
            what = "BatchNorm (inference)"
        else:
            what = {Kind.GAP1D: "GlobalAvgPool1D", Kind.GMP1D: "GlobalMaxPool1D", Kind.FLATTEN: "Flatten",
                    Kind.RELU: "ReLU", Kind.SOFTMAX: "Softmax"}[self.kind]
        slope = f"({self.alpha:g})" if self.activation == "leaky_relu" else ""
        act = f" {self.activation}{slope}" if self.activation != "none" else ""
        return f"{self.name}: {what}{act} ({self.in_len}, {self.in_ch}) -> ({self.out_len}, {self.out_ch})"


@dataclass(frozen=True)
class Window:
    """Where a sliding layer's windows sit, as Keras computes it."""

    out_len: int
    stride: int
    dilation: int
    pad: int


def _window(spec: LayerSpec, in_len: int, where: str) -> Window:
    kind = spec.kind.value if spec.kind in CONV_KINDS else "a pool"
    stride = spec.stride or (1 if spec.kind in CONV_KINDS else spec.size)
    if stride < 1 or spec.dilation < 1:
        raise ModelError(f"{where}: strides and dilation_rate must be >= 1")
    if spec.kind not in CONV_KINDS and spec.dilation != 1:
        raise ModelError(f"{where}: {kind} has no dilation_rate")
    if stride > 1 and spec.dilation > 1:
        raise ModelError(f"{where}: strides > 1 together with dilation_rate > 1 is not supported (nor by Keras)")
    if spec.padding not in PADDINGS[spec.kind]:
        raise ModelError(f"{where}: padding='{spec.padding}' is not supported for {kind} "
                         f"(use {' or '.join(repr(p) for p in PADDINGS[spec.kind])})")
    span = spec.dilation * (spec.size - 1) + 1  # input rows one window covers
    if spec.padding == "valid":
        if span > in_len:
            raise ModelError(f"{where}: a window of {span} rows is longer than its input length {in_len}")
        return Window((in_len - span) // stride + 1, stride, spec.dilation, 0)
    if spec.padding == "causal":
        return Window((in_len - 1) // stride + 1, stride, spec.dilation, span - 1)
    out_len = -(-in_len // stride)  # 'same': ceil(in_len / stride), the padding split as TensorFlow does
    return Window(out_len, stride, spec.dilation, max((out_len - 1) * stride + span - in_len, 0) // 2)


def _out_shape(spec: LayerSpec, in_len: int, in_ch: int) -> tuple[int, int, Window | None]:
    where = f"layer '{spec.name}'"
    if spec.activation not in ACTIVATIONS:
        raise ModelError(f"{where}: activation '{spec.activation}' is not supported (use one of "
                         f"{', '.join(a for a in ACTIVATIONS if a != 'none')})")
    if spec.kind is Kind.ACTIVATION:
        if spec.activation not in ELEMENTWISE:
            raise ModelError(f"{where}: an activation layer computes one of {', '.join(ELEMENTWISE)}")
    elif spec.activation != "none" and spec.kind not in PARAM_KINDS:
        raise ModelError(f"{where}: only Conv1D and Dense take a fused activation")
    if spec.activation == "leaky_relu" and not (np.isfinite(spec.alpha) and spec.alpha >= 0):
        raise ModelError(f"{where}: leaky_relu needs a finite negative slope >= 0, got {spec.alpha}")
    if not spec.use_bias and spec.kind not in (*CONV_KINDS, Kind.DENSE):
        raise ModelError(f"{where}: use_bias=False applies to Conv1D, DepthwiseConv1D and Dense only")
    if spec.kind not in WINDOW_KINDS and (
            spec.stride or spec.dilation != 1 or spec.padding != "valid"):
        raise ModelError(f"{where}: strides, dilation_rate and padding apply to Conv1D and pools only")
    if spec.kind is Kind.CONV1D:
        if spec.units < 1 or spec.size < 1:
            raise ModelError(f"{where}: Conv1D needs filters >= 1 and kernel_size >= 1")
        if spec.size > in_len and spec.padding == "valid" and spec.dilation == 1:
            raise ModelError(f"{where}: kernel_size {spec.size} is longer than its input length {in_len}")
        window = _window(spec, in_len, where)
        return window.out_len, spec.units, window
    if spec.kind is Kind.DEPTHWISE1D:
        if spec.units < 1 or spec.size < 1:
            raise ModelError(f"{where}: DepthwiseConv1D needs depth_multiplier >= 1 and kernel_size >= 1")
        window = _window(spec, in_len, where)
        return window.out_len, in_ch * spec.units, window
    if spec.kind is Kind.DENSE:
        if spec.units < 1:
            raise ModelError(f"{where}: Dense needs units >= 1")
        if in_len != 1:
            raise ModelError(
                f"{where}: Dense on a ({in_len}, {in_ch}) input acts per time step, which is not supported; "
                "put Flatten, GlobalAveragePooling1D or GlobalMaxPooling1D before it"
            )
        return 1, spec.units, None
    if spec.kind in POOL_KINDS:
        if spec.size < 1:
            raise ModelError(f"{where}: pool_size must be >= 1")
        if spec.size > in_len and spec.padding == "valid":
            raise ModelError(f"{where}: pool_size {spec.size} leaves no output from input length {in_len}")
        if spec.size > 0xFFFF:
            raise ModelError(f"{where}: pool_size {spec.size} is larger than the library's 65535")
        window = _window(spec, in_len, where)
        return window.out_len, in_ch, window
    if spec.kind in (Kind.GAP1D, Kind.GMP1D):
        return 1, in_ch, None
    if spec.kind in (Kind.FLATTEN, Kind.SOFTMAX):
        return 1, in_len * in_ch, None
    if spec.kind in (Kind.RELU, Kind.ACTIVATION):
        return in_len, in_ch, None
    if spec.kind is Kind.BATCHNORM:
        if spec.stats is None or len(spec.stats) != 2 or any(len(v) != in_ch for v in spec.stats):
            raise ModelError(f"{where}: BatchNormalization needs a mean and an inverse deviation per channel "
                             f"({in_ch})")
        if not np.isfinite(np.asarray(spec.stats, dtype=np.float64)).all():
            raise ModelError(f"{where}: BatchNormalization statistics contain NaN or infinity")
        return in_len, in_ch, None
    raise ModelError(f"{where}: unknown layer kind {spec.kind}")


@dataclass(frozen=True)
class Architecture:
    name: str
    input_len: int
    input_ch: int
    layers: tuple[Layer, ...]

    @staticmethod
    def build(name: str, input_len: int, input_ch: int, specs: list[LayerSpec]) -> Architecture:
        if input_len < 1 or input_ch < 1:
            raise ModelError(f"input shape ({input_len}, {input_ch}) must have length and channels >= 1")
        if not specs:
            raise ModelError("the model has no layers")
        layers = []
        length, ch = input_len, input_ch
        for spec in specs:
            out_len, out_ch, window = _out_shape(spec, length, ch)
            geometry = {} if window is None else {"stride": window.stride, "dilation": window.dilation,
                                                  "padding": spec.padding, "pad": window.pad}
            stats = None if spec.stats is None else tuple(
                tuple(float(v) for v in np.asarray(part, np.float32)) for part in spec.stats)
            layers.append(Layer(spec.kind, spec.name, length, ch, out_len, out_ch, spec.size, spec.activation,
                                alpha=float(np.float32(spec.alpha)) if spec.activation == "leaky_relu" else 0.0,
                                stats=stats, use_bias=spec.use_bias, **geometry))  # type: ignore[arg-type]
            length, ch = out_len, out_ch
        arch = Architecture(name, input_len, input_ch, tuple(layers))
        arch._check_head()
        return arch

    def _check_head(self) -> None:
        for i, layer in enumerate(self.layers):
            last = i == len(self.layers) - 1
            if (layer.kind is Kind.SOFTMAX or layer.activation == "softmax") and not last:
                raise ModelError(f"layer '{layer.name}': softmax is only supported as the last layer")
        last_layer = self.layers[-1]
        if not (last_layer.kind is Kind.SOFTMAX or last_layer.activation == "softmax"):
            raise ModelError(
                f"layer '{last_layer.name}': the model must end in softmax (the training loss is categorical "
                "cross-entropy on class probabilities)"
            )
        if last_layer.out_size < 2:
            raise ModelError(f"layer '{last_layer.name}': a classifier needs at least 2 classes")
        if last_layer.out_len != 1:
            raise ModelError(f"layer '{last_layer.name}': the output must be a vector of class probabilities")
        if not self.param_layers:
            raise ModelError("the model has no Conv1D or Dense layer: there is nothing to train")

    @property
    def num_classes(self) -> int:
        return self.layers[-1].out_size

    @property
    def input_size(self) -> int:
        return self.input_len * self.input_ch

    @property
    def param_layers(self) -> list[int]:
        """Indices (into ``layers``) of the layers that have parameters."""
        return [i for i, layer in enumerate(self.layers) if layer.has_params]

    @property
    def param_count(self) -> int:
        return sum(layer.param_count for layer in self.layers)

    def first_trained(self, trainable_layers: int) -> int:
        """Index of the lowest layer trained when the last ``trainable_layers`` parameter layers train."""
        params = self.param_layers
        if not 1 <= trainable_layers <= len(params):
            raise ModelError(
                f"trainable layers must be between 1 and {len(params)} (the model's Conv1D/Dense/BatchNormalization "
                "layers), "
                f"got {trainable_layers}"
            )
        return params[-trainable_layers]


Params = list[tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class Model:
    """An architecture with one (weights, bias) pair per parameter layer, in layer order, float32."""

    arch: Architecture
    params: Params = field(repr=False)
    notes: tuple[str, ...] = ()  # what the import changed or dropped, e.g. a Dropout run as the identity

    def __post_init__(self) -> None:
        layers = [self.arch.layers[i] for i in self.arch.param_layers]
        if len(self.params) != len(layers):
            raise ModelError(f"expected parameters for {len(layers)} layers, got {len(self.params)}")
        checked = []
        for layer, (w, b) in zip(layers, self.params, strict=True):
            w = np.asarray(w, dtype=np.float32)
            b = np.asarray(b, dtype=np.float32)
            if w.shape != layer.weight_shape or b.shape != layer.bias_shape:
                raise ModelError(
                    f"layer '{layer.name}': parameters have shapes {w.shape} and {b.shape}, expected "
                    f"{layer.weight_shape} and {layer.bias_shape}"
                )
            if not (np.isfinite(w).all() and np.isfinite(b).all()):
                raise ModelError(f"layer '{layer.name}': parameters contain NaN or infinity")
            checked.append((w, b))
        object.__setattr__(self, "params", checked)

    def digest(self) -> str:
        """SHA-256 of the architecture and parameters: the model's identity on the device."""
        h = hashlib.sha256()
        h.update(f"{self.arch.input_len},{self.arch.input_ch};".encode())
        for layer in self.arch.layers:
            # Window options only when set, so the models of the paper keep their identity.
            options = f",{layer.options}" if layer.options else ""
            options += f",alpha={layer.alpha!r}" if layer.activation == "leaky_relu" else ""
            options += f",stats={layer.stats!r}" if layer.stats is not None else ""
            h.update(f"{layer.kind.value},{layer.out_len},{layer.out_ch},{layer.size},{layer.activation}"
                     f"{options};".encode())
        for w, b in self.params:
            h.update(np.ascontiguousarray(w, dtype="<f4").tobytes())
            h.update(np.ascontiguousarray(b, dtype="<f4").tobytes())
        return h.hexdigest()


def glorot_params(arch: Architecture, seed: int) -> Params:
    """Keras' default initialisation (Glorot uniform kernels, zero biases) from a numpy seed, so a model
    made here is the same on every machine and TensorFlow version."""
    rng = np.random.default_rng(seed)
    params: Params = []
    for i in arch.param_layers:
        layer = arch.layers[i]
        if layer.kind is Kind.BATCHNORM:  # Keras: gamma ones, beta zeros
            params.append((np.ones(layer.weight_shape, np.float32), np.zeros(layer.bias_shape, np.float32)))
            continue
        if layer.kind is Kind.CONV1D:
            fan_in, fan_out = layer.size * layer.in_ch, layer.size * layer.out_ch
        elif layer.kind is Kind.DEPTHWISE1D:  # Keras's fans of a (K, C, dm) kernel
            fan_in, fan_out = layer.size * layer.in_ch, layer.size * layer.weight_shape[2]
        else:
            fan_in, fan_out = layer.in_size, layer.out_ch
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        w = rng.uniform(-limit, limit, size=layer.weight_shape).astype(np.float32)
        params.append((w, np.zeros(layer.bias_shape, dtype=np.float32)))  # (0,) without bias
    return params


PAPER_INPUT_LENGTHS = (20, 40, 60, 80, 100)
# The paper's transfer learning trains the last two parameter layers (its two Dense layers).
PAPER_TL_LAYERS = 2


def paper_architecture(input_len: int = 40, input_ch: int = 3, num_classes: int = 6) -> Architecture:
    """The 1-D CNN of Craighero et al. (2023), Section IV-A: 10,084 parameters for (T, 3) and 6 classes."""
    return Architecture.build(
        "paper",
        input_len,
        input_ch,
        [
            LayerSpec(Kind.CONV1D, "conv1d_1", units=32, size=3, activation="relu"),
            LayerSpec(Kind.AVGPOOL1D, "avgpool1d_1", size=2),
            LayerSpec(Kind.CONV1D, "conv1d_2", units=64, size=3, activation="relu"),
            LayerSpec(Kind.AVGPOOL1D, "avgpool1d_2", size=2),
            LayerSpec(Kind.GAP1D, "gap1d"),
            LayerSpec(Kind.DENSE, "dense_1", units=50, activation="relu"),
            LayerSpec(Kind.DENSE, "dense_2", units=num_classes, activation="softmax"),
        ],
    )


def paper_model(input_len: int = 40, seed: int = 0) -> Model:
    arch = paper_architecture(input_len)
    return Model(arch, glorot_params(arch, seed))


def _random_window(rng: np.random.Generator, spec: LayerSpec) -> LayerSpec:
    """``spec`` with a random stride or dilation and padding, as Keras allows them, and a Conv1D with a
    random HAR activation."""
    if spec.kind in CONV_KINDS:
        dilation = int(rng.integers(1, 4)) if rng.random() < 0.3 else 1
        stride = 1 if dilation > 1 else int(rng.integers(1, 3))
        act = str(rng.choice(["relu", "relu", "relu6", "leaky_relu", "tanh", "sigmoid"]))
        return replace(spec, stride=stride, dilation=dilation, padding=str(rng.choice(PADDINGS[spec.kind])),
                       activation=act, alpha=0.2 if act == "leaky_relu" else 0.0)
    kind = Kind.MAXPOOL1D if rng.random() < 0.5 else Kind.AVGPOOL1D
    return replace(spec, kind=kind, stride=int(rng.integers(1, spec.size + 1)),
                   padding=str(rng.choice(PADDINGS[kind])))


def random_architecture(rng: np.random.Generator, name: str = "random", wide: bool = False) -> Architecture:
    """A HAR-sized 1-D CNN drawn from ``rng``: 1-3 Conv1D blocks (K 2-7, F 4-64, optional AvgPool 2-3),
    GAP or Flatten, an optional hidden Dense, 2-12 classes, C 1-6, T 20-100. For calibration and benchmarks.
    ``wide``: the layers users bring as well: Conv1D strides, dilation, padding and HAR activations
    (ReLU6, LeakyReLU, tanh, sigmoid), BatchNormalization, strided and padded Avg/MaxPool1D, and
    GlobalMaxPool1D in half of the global pools (drawn from the same number, so that every other layer
    of a seed's architecture is the one it drew before GlobalMaxPool1D existed)."""
    while True:
        specs: list[LayerSpec] = []
        for b in range(int(rng.integers(1, 4))):
            conv = LayerSpec(Kind.CONV1D, f"conv{b}", units=int(rng.integers(4, 65)), size=int(rng.integers(2, 8)),
                             activation="relu")
            specs.append(_random_window(rng, conv) if wide else conv)
            if wide and rng.random() < 0.3:  # a DepthwiseConv1D block, as efficient HAR CNNs use
                specs.append(_random_window(rng, LayerSpec(Kind.DEPTHWISE1D, f"dw{b}", units=int(rng.integers(1, 3)),
                                                           size=int(rng.integers(2, 6)), activation="relu")))
            if wide and rng.random() < 0.3:
                c = conv.units
                specs.append(LayerSpec(Kind.BATCHNORM, f"bn{b}", stats=(tuple(rng.uniform(-1, 1, c)),
                                                                        tuple(rng.uniform(0.5, 2, c)))))
            if rng.random() < 0.7:
                pool = LayerSpec(Kind.AVGPOOL1D, f"pool{b}", size=int(rng.integers(2, 4)))
                specs.append(_random_window(rng, pool) if wide else pool)
        pick = rng.random()
        if pick >= 0.6:
            specs.append(LayerSpec(Kind.FLATTEN, "flatten"))
        else:
            specs.append(LayerSpec(Kind.GMP1D, "gmp") if wide and pick < 0.3 else LayerSpec(Kind.GAP1D, "gap"))
        if rng.random() < 0.7:
            specs.append(LayerSpec(Kind.DENSE, "hidden", units=int(rng.integers(8, 65)), activation="relu"))
        specs.append(LayerSpec(Kind.DENSE, "out", units=int(rng.integers(2, 13)), activation="softmax"))
        try:
            return Architecture.build(name, int(rng.integers(20, 101)), int(rng.integers(1, 7)), specs)
        except ModelError:
            continue  # the window shrank below one sample: draw again
