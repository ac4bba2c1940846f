"""Built files kept by the hash of everything that went into them, so that a model built twice is compiled
once: the C sources and build scripts, the generated model, the build's options and the compiler.

Off unless the environment names a folder (``PYODL_BUILD_CACHE``): the test suite sets one per run, where
the same model is built by many tests and in many processes. Entries are written aside and renamed into
place, so processes sharing the folder never read half an entry; a build that fails is never kept.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from pyodl.toolchain.sources import source_root

ENVIRONMENT = "PYODL_BUILD_CACHE"
_BUILD_INPUTS = ("CMakeLists.txt", "cmake", "firmware")
_LOG = "build.log"


@functools.cache
def _compiler_version(compiler: str) -> str:
    """The compiler's own description of itself: a new compiler is another build."""
    try:
        return subprocess.run([compiler, "--version"], capture_output=True, text=True, check=False).stdout
    except OSError:
        return "missing"


def _tree_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for top in _BUILD_INPUTS:
        path = root / top
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        for file in files:
            if "generated" in file.relative_to(root).parts:  # a build's model comes from its model_dir
                continue
            digest.update(str(file.relative_to(root)).encode() + b"\0" + file.read_bytes() + b"\0")
    return digest.hexdigest()


class BuildCache:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @staticmethod
    def from_environment() -> BuildCache | None:
        folder = os.environ.get(ENVIRONMENT)
        return BuildCache(Path(folder)) if folder else None

    def key(self, model_dir: Path, options: list[str], compiler: str) -> str:
        """What a build depends on: the sources, the generated model files in ``model_dir``, the build options
        (anything naming a path of this build left out) and the compiler."""
        digest = hashlib.sha256()
        digest.update(_tree_digest(source_root()).encode())
        for name in ("model.h", "model_params.c"):
            digest.update(name.encode() + b"\0" + (model_dir / name).read_bytes() + b"\0")
        digest.update(json.dumps([options, _compiler_version(compiler)]).encode())
        return digest.hexdigest()[:32]

    def fetch(self, key: str, names: tuple[str, ...], into: Path) -> str | None:
        """Copies a kept build's files into ``into``; returns its build log, or None when there is none."""
        entry = self.folder / key
        if not all((entry / name).is_file() for name in (*names, _LOG)):
            return None
        for name in names:
            shutil.copyfile(entry / name, into / name)
        return (entry / _LOG).read_text()

    def store(self, key: str, files: list[Path], log: str) -> None:
        entry = self.folder / key
        if entry.exists():
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        aside = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=self.folder))
        try:
            for file in files:
                shutil.copyfile(file, aside / file.name)
            (aside / _LOG).write_text(log)
            os.replace(aside, entry)  # another process may have won the race: its entry is the same build
        except OSError:
            if not entry.exists():
                raise
        finally:
            shutil.rmtree(aside, ignore_errors=True)
