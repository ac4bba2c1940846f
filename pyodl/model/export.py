"""Model -> C: renders ``model.h`` and ``model_params.c`` for the firmware from jinja2 templates."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import jinja2
import numpy as np

from pyodl.model.architecture import Architecture, Kind, Layer, Model, ModelError
from pyodl.model.memory_plan import LayerPlan, MemoryPlan, has_int8_table, plan_memory
from pyodl.model.optimizer import SGD, Optimizer

GENERATED_FILES = ("model.h", "model_params.c")
# No training step or parameter write on the device may take a parameter beyond +-PARAM_BOUND (it is
# refused whole, weights unchanged). Far above what a trained HAR CNN holds (|w| of a few units; a folded
# BatchNormalization multiplies by 1/sqrt(var + eps) <= ~32), far below float32's overflow, so a diverging
# step (a learning rate of 1e20) is caught before the next forward pass overflows.
PARAM_BOUND = 1e4
VALUES_PER_LINE = 6

_KIND = {
    Kind.CONV1D: "ODL_LAYER_CONV1D",
    Kind.DEPTHWISE1D: "ODL_LAYER_DEPTHWISE1D",
    Kind.DENSE: "ODL_LAYER_DENSE",
    Kind.AVGPOOL1D: "ODL_LAYER_AVGPOOL1D",
    Kind.MAXPOOL1D: "ODL_LAYER_MAXPOOL1D",
    Kind.GAP1D: "ODL_LAYER_GAP1D",
    Kind.GMP1D: "ODL_LAYER_GMP1D",
    Kind.FLATTEN: "ODL_LAYER_FLATTEN",
    Kind.RELU: "ODL_LAYER_RELU",
    Kind.ACTIVATION: "ODL_LAYER_ACTIVATION",
    Kind.BATCHNORM: "ODL_LAYER_BATCHNORM",
    Kind.SOFTMAX: "ODL_LAYER_SOFTMAX",
}
_ACT = {"none": "ODL_ACT_NONE", "relu": "ODL_ACT_RELU", "softmax": "ODL_ACT_SOFTMAX", "relu6": "ODL_ACT_RELU6",
        "leaky_relu": "ODL_ACT_LEAKY_RELU", "tanh": "ODL_ACT_TANH", "sigmoid": "ODL_ACT_SIGMOID"}


def c_float(value: np.float32) -> str:
    """A C literal that parses back to exactly this float32 (9 significant digits always round-trip)."""
    return f"{float(value):.8e}f"


def _rows(values: np.ndarray) -> list[str]:
    flat = [c_float(v) for v in np.asarray(values, dtype=np.float32).ravel()]
    return [", ".join(flat[i : i + VALUES_PER_LINE]) + "," for i in range(0, len(flat), VALUES_PER_LINE)]


@dataclass(frozen=True)
class _LayerView:
    index: int
    layer: Layer
    plan: LayerPlan
    kind: str
    act: str
    in_ptr: str
    out_ptr: str
    n_weights: int
    weights: list[str]
    bias: list[str]
    alpha: str  # leaky_relu's slope as a C literal
    bn_mean: list[str]  # BatchNormalization's fixed statistics, rows of C literals
    bn_inv_std: list[str]

    @property
    def int8_table(self) -> bool:
        """A tanh, sigmoid or LeakyReLU that int8 inference computes through a table."""
        return has_int8_table(self.layer)


def _optimizer_fields(optimizer: Optimizer) -> dict[str, str]:
    """odl_optimizer_t's fields as C literals, each rounded as Keras rounds it (1 - beta in double first)."""
    return {"kind": optimizer.c_kind, "momentum": c_float(np.float32(optimizer.momentum)),
            "beta_1": c_float(np.float32(optimizer.beta_1)), "beta_2": c_float(np.float32(optimizer.beta_2)),
            "one_minus_beta_1": c_float(np.float32(1.0 - optimizer.beta_1)),
            "one_minus_beta_2": c_float(np.float32(1.0 - optimizer.beta_2)),
            "epsilon": c_float(np.float32(optimizer.epsilon))}


def check_param_bound(model: Model, param_bound: float) -> None:
    """The model's own parameters must lie within the bound the device will enforce."""
    if not (np.isfinite(param_bound) and param_bound > 0):
        raise ModelError(f"the parameter bound must be a finite number > 0, got {param_bound}")
    bound = np.float32(param_bound)
    for i, (w, b) in zip(model.arch.param_layers, model.params, strict=True):
        largest = max(float(np.abs(w).max(initial=0.0)), float(np.abs(b).max(initial=0.0)))
        if largest > bound:
            raise ModelError(f"layer '{model.arch.layers[i].name}' holds a parameter of magnitude {largest:g}, beyond "
                             f"the bound {param_bound:g} the device enforces; export with a larger --param-bound")


U16_MAX = 0xFFFF  # odl_layer_t's and odl_net_t's shape fields are uint16_t
# Element counts are uint32_t, and a buffer's byte count must fit too.
MAX_ELEMENTS = 0xFFFFFFFF // 4


def check_shapes(arch: Architecture) -> None:
    """Every shape the generated table stores fits its C field; a model that does not is refused here with
    the layer and the value, not left to the C compiler's overflow warning."""
    for what, value in (("input length", arch.input_len), ("input channels", arch.input_ch),
                        ("number of classes", arch.num_classes), ("number of layers", len(arch.layers))):
        if value > U16_MAX:
            raise ModelError(f"the model's {what} is {value}; the firmware's shape fields hold at most {U16_MAX}")
    for layer in arch.layers:
        for what, value in (("input length", layer.in_len), ("input channels", layer.in_ch),
                            ("output length", layer.out_len), ("output channels", layer.out_ch),
                            ("kernel or pool size", layer.size), ("stride", layer.stride),
                            ("dilation", layer.dilation), ("padding", layer.pad)):
            if value > U16_MAX:
                raise ModelError(f"layer '{layer.name}': its {what} is {value}; the firmware's shape fields hold "
                                 f"at most {U16_MAX}")
        for what, count in (("weights", int(np.prod(layer.weight_shape))), ("input", layer.in_size),
                            ("output", layer.out_size)):
            if count > MAX_ELEMENTS:
                raise ModelError(f"layer '{layer.name}': {count} {what} elements; the firmware counts at most "
                                 f"{MAX_ELEMENTS}")


def render(model: Model, trainable_layers: int | None = None, command: str = "pyodl export",
           optimizer: Optimizer = SGD, param_bound: float = PARAM_BOUND,
           dataset_windows: int = 0) -> dict[str, str]:
    """The generated files' text, keyed by file name."""
    check_shapes(model.arch)
    check_param_bound(model, param_bound)
    plan: MemoryPlan = plan_memory(model.arch, trainable_layers, optimizer, dataset_windows)
    params = dict(zip(model.arch.param_layers, model.params, strict=True))
    views = []
    for i, (layer, lplan) in enumerate(zip(model.arch.layers, plan.layers, strict=True)):
        w, b = params.get(i, (np.zeros(0, np.float32), np.zeros(0, np.float32)))
        views.append(
            _LayerView(i, layer, lplan, _KIND[layer.kind], _ACT[layer.activation], lplan.pointer("input"),
                       lplan.pointer("output"), int(w.size), _rows(w), _rows(b), c_float(np.float32(layer.alpha)),
                       *([_rows(np.asarray(v, np.float32)) for v in layer.stats] if layer.stats else ([], [])))
        )
    digest = model.digest()
    summary = [layer.describe() for layer in model.arch.layers] + [f"note: {note}" for note in model.notes]
    summary.append(f"optimizer: {optimizer.describe()}")
    summary.append(f"parameter bound: +-{param_bound:g} (a step or write beyond it is refused)")
    summary.append(f"{model.arch.param_count} parameters; RAM {plan.ram_bytes()} bytes: " + ", ".join(
        f"{section} {nbytes}" for section, nbytes in plan.section_bytes().items()))
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("pyodl.model", "templates"),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=False,
    )
    context = {
        "command": command,
        "name": model.arch.name,
        "digest": digest,
        "hash32": digest[:8],
        "arch": model.arch,
        "plan": plan,
        "layers": views,
        "summary": summary,
        "section_bytes": plan.section_bytes(),
        "flash_param_bytes": plan.flash_param_bytes(),
        "ram_bytes": plan.ram_bytes(),
        "optimizer": _optimizer_fields(optimizer),
        "optimizer_slots": optimizer.slots,
        "param_bound": c_float(np.float32(param_bound)),
        "zero_bias": max([layer.out_ch for layer in model.arch.layers if layer.has_params and not layer.use_bias],
                         default=0),
    }
    return {name: env.get_template(f"{name}.j2").render(context) for name in GENERATED_FILES}


def export(model: Model, out_dir: Path, trainable_layers: int | None = None,
           command: str = "pyodl export", optimizer: Optimizer = SGD, param_bound: float = PARAM_BOUND,
           dataset_windows: int = 0) -> list[Path]:
    """Write the generated files into ``out_dir`` (created if needed) and return their paths; the build holds
    a dataset region of ``dataset_windows`` records (0: none)."""
    files = render(model, trainable_layers, command, optimizer, param_bound, dataset_windows)  # refusals first
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in files.items():
        path = out_dir / name
        path.write_text(text)
        written.append(path)
    return written

