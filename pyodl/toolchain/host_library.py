"""The C library built for this computer, for ctypes: :class:`HostBuilder` exports a model and builds
``libodl_model.so`` with the project's own CMakeLists.txt (same sources, same warning and floating-point
flags as every other build)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from pyodl.model.architecture import Model
from pyodl.model.export import export
from pyodl.model.optimizer import SGD, Optimizer
from pyodl.toolchain import tools
from pyodl.toolchain.build_cache import BuildCache
from pyodl.toolchain.sources import source_root

LIBRARY_NAME = "libodl_model.so"


class HostBuilder:
    """Builds one model after another in a single CMake build directory, so the library objects are
    compiled once and each model costs one compile of its generated parameters file.

    Not safe to share between processes: give each its own ``build_dir`` (the default is a fresh
    temporary directory)."""

    def __init__(self, build_dir: Path | None = None, source_dir: Path | None = None) -> None:
        tools.require("cmake", "cc")
        self.source_dir = source_dir if source_dir is not None else source_root()
        self._tmp = None if build_dir is not None else tempfile.TemporaryDirectory(prefix="pyodl-host-")
        self.build_dir = build_dir if build_dir is not None else Path(self._tmp.name) / "build"

    def build(self, model_dir: Path) -> Path:
        """Build the model exported in ``model_dir``; returns the library, copied into ``model_dir``
        (a distinct path per model, since the dynamic loader caches libraries by path), from the build cache
        when one is set and holds this very build (:mod:`pyodl.toolchain.build_cache`)."""
        library = model_dir / LIBRARY_NAME
        cache = BuildCache.from_environment() if self.source_dir == source_root() else None
        key = None if cache is None else cache.key(model_dir, ["host", "Release"], "cc")
        if cache is not None and key is not None and cache.fetch(key, (LIBRARY_NAME,), model_dir) is not None:
            return library
        tools.run([
            "cmake", "-S", str(self.source_dir), "-B", str(self.build_dir), "-DCMAKE_BUILD_TYPE=Release",
            "-DODL_BUILD_TESTS=OFF", f"-DODL_MODEL_DIR={model_dir.resolve()}",
        ])
        log = tools.run(["cmake", "--build", str(self.build_dir), "--target", "odl_model"])
        shutil.copyfile(self.build_dir / LIBRARY_NAME, library)
        if cache is not None and key is not None:
            cache.store(key, [library], log)
        return library

    def export_and_build(self, model: Model, model_dir: Path, trainable_layers: int | None = None,
                         optimizer: Optimizer = SGD) -> Path:
        export(model, model_dir, trainable_layers, optimizer=optimizer)
        return self.build(model_dir)

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
