"""The C library built for this computer and driven through ctypes: the fast, simulator-free backend.

:class:`HostBuilder` exports a model and builds ``libodl_model.so`` with the project's own CMakeLists.txt
(same sources, same warning and floating-point flags as every other build); :class:`HostNetwork` trains
it sample by sample through the public ``odl_`` API.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from pyodl.export import export
from pyodl.model import Architecture, Model, Params
from pyodl.trainer import Trainer

REPO_ROOT = Path(__file__).resolve().parent.parent
LIBRARY_NAME = "libodl_model.so"


class ToolchainError(RuntimeError):
    """A build tool is missing or the build failed."""


class OdlError(RuntimeError):
    """A status other than ODL_OK returned by the C library."""

    def __init__(self, call: str, status: int, message: str) -> None:
        super().__init__(f"{call} failed with status {status}: {message}")
        self.status = status


def _require_tools() -> None:
    missing = [tool for tool in ("cmake", "cc") if shutil.which(tool) is None]
    if missing:
        raise ToolchainError(
            f"{', '.join(missing)} not found: install them with `sudo apt-get install cmake gcc` "
            "(or run ./scripts/setup.sh)"
        )


class HostBuilder:
    """Builds one model after another in a single CMake build directory, so the library objects are
    compiled once and each model costs one compile of its generated parameters file.

    Not safe to share between processes: give each its own ``build_dir`` (the default is a fresh
    temporary directory)."""

    def __init__(self, build_dir: Path | None = None, source_dir: Path = REPO_ROOT) -> None:
        _require_tools()
        self.source_dir = source_dir
        self._tmp = None if build_dir is not None else tempfile.TemporaryDirectory(prefix="pyodl-host-")
        self.build_dir = build_dir if build_dir is not None else Path(self._tmp.name) / "build"

    def _run(self, args: list[str]) -> None:
        proc = subprocess.run(args, capture_output=True, text=True)
        if proc.returncode != 0:
            raise ToolchainError(f"`{' '.join(args)}` failed:\n{proc.stdout}\n{proc.stderr}")

    def build(self, model_dir: Path) -> Path:
        """Build the model exported in ``model_dir``; returns the library, copied into ``model_dir``
        (a distinct path per model, since the dynamic loader caches libraries by path)."""
        self._run([
            "cmake", "-S", str(self.source_dir), "-B", str(self.build_dir), "-DCMAKE_BUILD_TYPE=Release",
            "-DODL_BUILD_TESTS=OFF", f"-DODL_MODEL_DIR={model_dir.resolve()}",
        ])
        self._run(["cmake", "--build", str(self.build_dir), "--target", "odl_model"])
        library = model_dir / LIBRARY_NAME
        shutil.copyfile(self.build_dir / LIBRARY_NAME, library)
        return library

    def export_and_build(self, model: Model, model_dir: Path, trainable_layers: int | None = None) -> Path:
        export(model, model_dir, trainable_layers)
        return self.build(model_dir)

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()


_F32P = ctypes.POINTER(ctypes.c_float)


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
    }
    for name, args in sigs.items():
        fn = getattr(lib, name)
        fn.argtypes = args
        fn.restype = ctypes.c_int
    lib.odl_status_str.argtypes = [ctypes.c_int]
    lib.odl_status_str.restype = ctypes.c_char_p
    lib.odl_zero_grads.argtypes = [net]
    lib.odl_zero_grads.restype = None


def _ptr(a: np.ndarray) -> ctypes._Pointer:
    return a.ctypes.data_as(_F32P)


class HostNetwork(Trainer):
    """One generated model, trained by the C library in this process.

    Arrays cross the boundary as float32 numpy arrays: a sample is ``(input_len, input_ch)``."""

    def __init__(self, library: Path, arch: Architecture) -> None:
        self.arch = arch
        self._lib = ctypes.CDLL(str(library.resolve()))
        _declare(self._lib)
        self._net = ctypes.c_void_p(ctypes.addressof(ctypes.c_char.in_dll(self._lib, "odl_model")))
        self._call("odl_init")

    def _call(self, name: str, *args: object) -> None:
        status = getattr(self._lib, name)(self._net, *args)
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
        for i, (w, b) in zip(self.arch.param_layers, params, strict=True):
            w = np.ascontiguousarray(w, dtype=np.float32)
            b = np.ascontiguousarray(b, dtype=np.float32)
            self._call("odl_set_params", i, _ptr(w), w.size, _ptr(b), b.size)
