"""The optimizer a build trains with: Keras's SGD (plain, momentum, Nesterov) or Adam.

It is fixed when the model is exported (its state buffers are sized then, in ``.odl_optim``); only the
learning rate is given at each step. Written on the command line as ``sgd``, ``sgd:momentum=0.9``,
``sgd:momentum=0.9,nesterov`` or ``adam`` (optionally ``adam:beta_1=0.9,beta_2=0.999,epsilon=1e-7``), with
Keras's defaults for what is left out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pyodl.model.architecture import Params

OPTIMIZER_HELP = ("the on-device optimizer, as Keras defines it: sgd (default), sgd:momentum=M[,nesterov], or "
                  "adam[:beta_1=B1,beta_2=B2,epsilon=E] (Keras defaults 0.9, 0.999, 1e-7). Momentum and Adam "
                  "keep 1 and 2 floats of state per trained parameter in RAM (.odl_optim); the state starts at "
                  "zero whenever parameters are written or the trained layers change, as a new Keras "
                  "optimizer does")


@dataclass(frozen=True)
class Optimizer:
    kind: str = "sgd"  # "sgd" or "adam"
    momentum: float = 0.0
    nesterov: bool = False
    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-7

    def __post_init__(self) -> None:
        if self.kind not in ("sgd", "adam"):
            raise ValueError(f"unknown optimizer {self.kind!r} (use sgd or adam)")
        if self.kind == "sgd":
            if not (math.isfinite(self.momentum) and 0.0 <= self.momentum < 1.0):
                raise ValueError(f"momentum must be in [0, 1), got {self.momentum}")
            if self.nesterov and self.momentum == 0.0:
                raise ValueError("nesterov needs a momentum > 0")
        else:
            for name in ("beta_1", "beta_2"):
                value = getattr(self, name)
                if not (math.isfinite(value) and 0.0 <= value < 1.0):
                    raise ValueError(f"{name} must be in [0, 1), got {value}")
            if not (math.isfinite(self.epsilon) and self.epsilon > 0.0):
                raise ValueError(f"epsilon must be a finite number > 0, got {self.epsilon}")

    @property
    def c_kind(self) -> str:
        """The firmware's odl_optimizer_kind_t."""
        if self.kind == "adam":
            return "ODL_OPT_ADAM"
        if self.momentum == 0.0:
            return "ODL_OPT_SGD"
        return "ODL_OPT_NESTEROV" if self.nesterov else "ODL_OPT_MOMENTUM"

    @property
    def slots(self) -> int:
        """Floats of state per trained parameter."""
        return 2 if self.kind == "adam" else (1 if self.momentum else 0)

    @property
    def stateful(self) -> bool:
        return self.slots > 0

    def describe(self) -> str:
        if self.kind == "adam":
            return f"adam:beta_1={self.beta_1:g},beta_2={self.beta_2:g},epsilon={self.epsilon:g}"
        if self.momentum == 0.0:
            return "sgd"
        return f"sgd:momentum={self.momentum:g}" + (",nesterov" if self.nesterov else "")

    @staticmethod
    def parse(text: str) -> Optimizer:
        """``sgd``, ``sgd:momentum=0.9,nesterov``, ``adam:beta_1=0.9,...``; ValueError naming the fault."""
        kind, _, rest = text.strip().partition(":")
        kind = kind.strip().lower()
        allowed = {"sgd": ("momentum", "nesterov"), "adam": ("beta_1", "beta_2", "epsilon")}
        if kind not in allowed:
            raise ValueError(f"unknown optimizer {kind!r} in {text!r} (use sgd, sgd:momentum=M[,nesterov] or adam)")
        options: dict[str, float | bool] = {}
        for item in filter(None, (part.strip() for part in rest.split(","))):
            key, eq, value = (part.strip() for part in item.partition("="))
            if key not in allowed[kind]:
                raise ValueError(f"{kind} has no option {key!r} (its options: {', '.join(allowed[kind])})")
            if key == "nesterov":
                if eq and value.lower() not in ("true", "1"):
                    raise ValueError(f"write nesterov alone to enable it, got {item!r}")
                options[key] = True
                continue
            try:
                options[key] = float(value)
            except ValueError:
                raise ValueError(f"{kind}: {key} needs a number, got {value!r}") from None
        return Optimizer(kind, **options)  # type: ignore[arg-type]


SGD = Optimizer()


@dataclass(frozen=True)
class OptimizerState:
    """What an optimizer carries from one step to the next besides the weights: ``steps``, the updates applied
    since it started (Keras's ``iterations``, which Adam's bias correction reads), and ``slots``: per slot
    (momentum's velocity; Adam's first moment ``m``, then its second ``v``), a (weights, bias) pair per trained
    parameter layer from the lowest, in the layer's Keras layouts. Plain SGD has no slot."""

    steps: int
    slots: tuple[Params, ...]

    def layer_floats(self, j: int) -> np.ndarray:
        """Trained layer ``j``'s slots as the firmware holds them (odl_layer_t.optim_state): slot after slot,
        each the weights then the bias, float32."""
        parts = [np.ravel(part) for slot in self.slots for part in slot[j]]
        return np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, np.float32)

    @staticmethod
    def from_layer_floats(steps: int, slots: int, shapes: list[tuple[tuple[int, ...], tuple[int, ...]]],
                          flats: list[np.ndarray]) -> OptimizerState:
        """The inverse of :meth:`layer_floats`: ``flats[j]`` of trained layer ``j``, whose (weights, bias)
        shapes are ``shapes[j]``."""
        out: list[Params] = [[] for _ in range(slots)]
        for (w_shape, b_shape), flat in zip(shapes, flats, strict=True):
            n_w, n = int(np.prod(w_shape)), int(np.prod(w_shape)) + int(np.prod(b_shape))
            if flat.size != slots * n:
                raise ValueError(f"a layer of {n} parameters keeps {slots * n} floats of state, got {flat.size}")
            for k in range(slots):
                part = flat[k * n:(k + 1) * n]
                out[k].append((part[:n_w].reshape(w_shape).copy(), part[n_w:].reshape(b_shape).copy()))
        return OptimizerState(int(steps), tuple(out))
