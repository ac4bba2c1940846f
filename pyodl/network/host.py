"""The C library built for this computer (:class:`pyodl.toolchain.host_library.HostBuilder`), trained in this
process through ctypes: the fast, simulator-free place to run it."""

from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np

from pyodl.model.architecture import Architecture, Params
from pyodl.model.optimizer import OptimizerState
from pyodl.network.base import Adaptive, Network
from pyodl.toolchain import headers

FROZEN_STATUS = headers.enum("odl_status_t", headers.LIBRARY_HEADER)["ODL_ERR_FROZEN"]


class OdlError(RuntimeError):
    """A status other than ODL_OK returned by the C library."""

    def __init__(self, call: str, status: int, message: str) -> None:
        super().__init__(f"{call} failed with status {status}: {message}")
        self.status = status


_F32P = ctypes.POINTER(ctypes.c_float)


class _AdaptiveC(ctypes.Structure):
    _fields_ = [("predicted_class", ctypes.c_uint16), ("cheap_class", ctypes.c_uint16),
                ("cheap_confidence", ctypes.c_uint32), ("full_ran", ctypes.c_uint32)]


def _declare(lib: ctypes.CDLL) -> None:
    net = ctypes.c_void_p
    sigs = {
        "odl_init": [net],
        "odl_set_trainable": [net, ctypes.c_uint],
        "odl_forward": [net, _F32P],
        "odl_get_probs": [net, _F32P, ctypes.c_uint32],
        "odl_accumulate": [net, _F32P, ctypes.c_uint16, _F32P],
        "odl_sgd_step": [net, ctypes.c_float],
        "odl_get_params": [net, ctypes.c_uint, _F32P, ctypes.c_uint32, _F32P, ctypes.c_uint32],
        "odl_set_params": [net, ctypes.c_uint, _F32P, ctypes.c_uint32, _F32P, ctypes.c_uint32],
        "odl_get_grads": [net, ctypes.c_uint, _F32P, ctypes.c_uint32, _F32P, ctypes.c_uint32],
        "odl_optim_size": [net, ctypes.c_uint, ctypes.POINTER(ctypes.c_uint32)],
        "odl_read_optim_slice": [net, ctypes.c_uint, ctypes.c_uint32, _F32P, ctypes.c_uint32],
        "odl_write_optim_slice": [net, ctypes.c_uint, ctypes.c_uint32, _F32P, ctypes.c_uint32],
    }
    for name, args in sigs.items():
        fn = getattr(lib, name)
        fn.argtypes = args
        fn.restype = ctypes.c_int
    lib.odl_status_str.argtypes = [ctypes.c_int]
    lib.odl_status_str.restype = ctypes.c_char_p
    lib.odl_zero_grads.argtypes = [net]
    lib.odl_zero_grads.restype = None
    lib.odl_optimizer_steps.argtypes = [net]
    lib.odl_optimizer_steps.restype = ctypes.c_uint32
    lib.odl_set_optimizer_steps.argtypes = [net, ctypes.c_uint32]
    lib.odl_set_optimizer_steps.restype = None
    lib.odl_host_flush_subnormals.argtypes = []
    lib.odl_host_flush_subnormals.restype = ctypes.c_uint64
    lib.odl_host_restore_fp_mode.argtypes = [ctypes.c_uint64]
    lib.odl_host_restore_fp_mode.restype = None
    q = ctypes.c_void_p
    u8p = ctypes.POINTER(ctypes.c_uint8)
    i8p = ctypes.POINTER(ctypes.c_int8)
    int8_sigs = {
        "odl_int8_calibrate": [q, net, _F32P],
        "odl_int8_quantize": [q, net, u8p, ctypes.c_uint],
        "odl_int8_predict": [q, net, _F32P, ctypes.POINTER(ctypes.c_uint16)],
        "odl_int8_get_scores": [q, net, i8p, i8p, ctypes.c_uint32],
        "odl_int8_image_bytes": [q, net, ctypes.POINTER(ctypes.c_uint32)],
        "odl_int8_image_read": [q, net, ctypes.c_uint32, u8p, ctypes.c_uint32],
        "odl_int8_predict_adaptive": [q, net, _F32P, ctypes.c_uint, ctypes.c_uint32, ctypes.POINTER(_AdaptiveC)],
    }
    for name, args in int8_sigs.items():
        fn = getattr(lib, name)
        fn.argtypes = args
        fn.restype = ctypes.c_int
    lib.odl_int8_calibrate_reset.argtypes = [q, net]
    lib.odl_int8_calibrate_reset.restype = None
    lib.odl_int8_calibrated.argtypes = [q]
    lib.odl_int8_calibrated.restype = ctypes.c_uint32


def _ptr(a: np.ndarray) -> ctypes._Pointer:
    return a.ctypes.data_as(_F32P)


class HostNetwork(Network):
    """One generated model, trained by the C library in this process.

    Arrays cross the boundary as float32 numpy arrays: a sample is ``(input_len, input_ch)``."""

    def __init__(self, library: Path, arch: Architecture) -> None:
        self.arch = arch
        self._lib = ctypes.CDLL(str(library.resolve()))
        _declare(self._lib)
        self._net = ctypes.c_void_p(ctypes.addressof(ctypes.c_char.in_dll(self._lib, "odl_model")))
        self._int8 = ctypes.c_void_p(ctypes.addressof(ctypes.c_char.in_dll(self._lib, "odl_model_int8")))
        self._call("odl_init")

    def _call(self, name: str, *args: object) -> None:
        # TensorFlow's float mode (firmware/host/fp_mode.c) for this call only: numpy shares the thread.
        mode = self._lib.odl_host_flush_subnormals()
        try:
            if name.startswith("odl_int8_"):
                status = getattr(self._lib, name)(self._int8, self._net, *args)
            else:
                status = getattr(self._lib, name)(self._net, *args)
        finally:
            self._lib.odl_host_restore_fp_mode(mode)
        if status != 0:
            raise OdlError(name, status, self._lib.odl_status_str(status).decode())

    def _sample(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.shape != (self.arch.input_len, self.arch.input_ch):
            raise ValueError(
                f"a sample must have shape ({self.arch.input_len}, {self.arch.input_ch}), got {x.shape}"
            )
        return x

    def set_trainable(self, trainable_layers: int) -> None:
        self._call("odl_set_trainable", trainable_layers)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities of one sample."""
        self._call("odl_forward", _ptr(self._sample(x)))
        probs = np.empty(self.arch.num_classes, dtype=np.float32)
        self._call("odl_get_probs", _ptr(probs), probs.size)
        return probs

    def accumulate(self, x: np.ndarray, label: int) -> float:
        if not 0 <= int(label) < self.arch.num_classes:
            raise ValueError(f"label {label} is outside 0..{self.arch.num_classes - 1}")
        loss = ctypes.c_float()
        self._call("odl_accumulate", _ptr(self._sample(x)), int(label), ctypes.byref(loss))
        return float(loss.value)

    def sgd_step(self, learning_rate: float) -> None:
        self._call("odl_sgd_step", float(learning_rate))

    def zero_grads(self) -> None:
        self._lib.odl_zero_grads(self._net)

    def _layer_arrays(self, fn: str, index: int) -> tuple[np.ndarray, np.ndarray]:
        layer = self.arch.layers[index]
        w = np.empty(layer.weight_shape, dtype=np.float32)
        b = np.empty(layer.bias_shape, dtype=np.float32)
        self._call(fn, index, _ptr(w), w.size, _ptr(b), b.size)
        return w, b

    def get_params(self) -> Params:
        return [self._layer_arrays("odl_get_params", i) for i in self.arch.param_layers]

    def get_grads(self, trainable_layers: int) -> Params:
        """Batch-mean gradients accumulated so far, for the last ``trainable_layers`` parameter layers."""
        return [self._layer_arrays("odl_get_grads", i) for i in self.arch.param_layers[-trainable_layers:]]

    def set_params(self, params: Params) -> None:
        """Writes every layer the build keeps in RAM; a frozen layer (const in a TL build) must already hold
        the same values, as on a board."""
        for i, (w, b) in zip(self.arch.param_layers, params, strict=True):
            w = np.ascontiguousarray(w, dtype=np.float32)
            b = np.ascontiguousarray(b, dtype=np.float32)
            try:
                self._call("odl_set_params", i, _ptr(w), w.size, _ptr(b), b.size)
            except OdlError as exc:
                current_w, current_b = self._layer_arrays("odl_get_params", i)
                if exc.status != FROZEN_STATUS or not (np.array_equal(current_w, w) and np.array_equal(current_b, b)):
                    raise

    def _optim_size(self, index: int) -> int:
        size = ctypes.c_uint32()
        self._call("odl_optim_size", index, ctypes.byref(size))
        return int(size.value)

    def get_optimizer_state(self, trainable_layers: int) -> OptimizerState:
        indices = self.arch.param_layers[len(self.arch.param_layers) - trainable_layers:]
        flats, shapes = [], []
        for i in indices:
            flat = np.empty(self._optim_size(i), dtype=np.float32)
            self._call("odl_read_optim_slice", i, 0, _ptr(flat), flat.size)
            flats.append(flat)
            shapes.append((self.arch.layers[i].weight_shape, self.arch.layers[i].bias_shape))
        params = sum(int(np.prod(w)) + int(np.prod(b)) for w, b in shapes)
        slots = sum(f.size for f in flats) // params if params else 0
        return OptimizerState.from_layer_floats(int(self._lib.odl_optimizer_steps(self._net)), slots, shapes, flats)

    def set_optimizer_state(self, state: OptimizerState) -> None:
        """Every layer is checked before any is written, so a refusal leaves the state as it was."""
        trained = len(state.slots[0]) if state.slots else 0
        indices = self.arch.param_layers[len(self.arch.param_layers) - trained:] if trained else []
        flats = [np.ascontiguousarray(state.layer_floats(j)) for j in range(trained)]
        for i, flat in zip(indices, flats, strict=True):
            if flat.size != self._optim_size(i):
                raise ValueError(f"layer {i} keeps {self._optim_size(i)} floats of optimizer state, got {flat.size}")
            if not np.isfinite(flat).all():
                raise ValueError(f"layer {i}: optimizer state must be finite")
        for i, flat in zip(indices, flats, strict=True):
            self._call("odl_write_optim_slice", i, 0, _ptr(flat), flat.size)
        self._lib.odl_set_optimizer_steps(self._net, int(state.steps))

    # The int8 copy (firmware/odl/odl_int8.h).

    def int8_calibrate_reset(self) -> None:
        self._lib.odl_int8_calibrate_reset(self._int8, self._net)

    def int8_calibrate(self, xs: np.ndarray, reset: bool = False) -> int:
        """Widens the calibration ranges with a float forward pass of each window ``(B, input_len, input_ch)``
        (``reset``: forget them first); returns the windows calibrated since the last reset."""
        if reset:
            self.int8_calibrate_reset()
        for x in xs:
            self._call("odl_int8_calibrate", _ptr(self._sample(x)))
        return int(self._lib.odl_int8_calibrated(self._int8))

    def int8_quantize(self, bits: tuple[int, ...] | list[int]) -> None:
        """Quantizes the current parameters; ``bits``: the weight width of each parameter layer."""
        table = (ctypes.c_uint8 * len(bits))(*bits)
        self._call("odl_int8_quantize", table, len(bits))

    def int8_predict(self, x: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
        """The class, the int8 logits and the int8 probabilities of one window."""
        cls = ctypes.c_uint16()
        self._call("odl_int8_predict", _ptr(self._sample(x)), ctypes.byref(cls))
        logits = np.empty(self.arch.num_classes, np.int8)
        probs = np.empty(self.arch.num_classes, np.int8)
        i8p = ctypes.POINTER(ctypes.c_int8)
        self._call("odl_int8_get_scores", logits.ctypes.data_as(i8p), probs.ctypes.data_as(i8p), logits.size)
        return int(cls.value), logits, probs

    def int8_predict_adaptive(self, x: np.ndarray, cheap_len: int, threshold: int) -> Adaptive:
        """The cheap mode on the newest ``cheap_len`` rows, the whole window when its confidence (probability *
        256) is below ``threshold`` (256: always)."""
        r = _AdaptiveC()
        self._call("odl_int8_predict_adaptive", _ptr(self._sample(x)), int(cheap_len), int(threshold),
                   ctypes.byref(r))
        return Adaptive(int(r.predicted_class), bool(r.full_ran), int(r.cheap_class), int(r.cheap_confidence))

    def int8_predict_classes(self, xs: np.ndarray) -> np.ndarray:
        """The int8 model's class for every window."""
        return np.array([self.int8_predict(x)[0] for x in xs], dtype=np.int64)

    def int8_image(self) -> bytes:
        """The quantized model as ``odl_int8_image_read`` lays it out (:func:`pyodl.model.quantized.parse_image`)."""
        size = ctypes.c_uint32()
        self._call("odl_int8_image_bytes", ctypes.byref(size))
        out = (ctypes.c_uint8 * size.value)()
        self._call("odl_int8_image_read", 0, out, size.value)
        return bytes(out)
