"""What a ``.keras`` file says about itself, read without Keras: a command checks a model's input against the
data and its arguments in milliseconds, before TensorFlow loads (which takes seconds).

A Keras 3 ``.keras`` file is a zip archive whose ``config.json`` describes the model; the translation into
the device's architecture, weights included, stays in :mod:`pyodl.model.keras_io`.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

from pyodl.model.architecture import ModelError


def checked_path(path: Path, option: str = "") -> Path:
    """``path`` if it names a ``.keras`` file that exists; else a ModelError naming ``option`` and the fault."""
    named = f"{option} {path}" if option else f"{path}"
    if not path.is_file():
        raise ModelError(f"{named}: " + ("not a file" if path.exists() else "no such model file"))
    if path.suffix != ".keras":
        raise ModelError(f"{named}: expected a Keras 3 '.keras' file")
    return path


def _config(path: Path) -> dict[str, Any]:
    checked_path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            return dict(json.loads(archive.read("config.json")))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"{path}: not a Keras 3 '.keras' file ({exc})") from None


def input_shape(path: Path) -> tuple[int | None, ...] | None:
    """The model's input shape without the batch axis, e.g. (40, 3); None when the file does not say it
    plainly (then only Keras can tell)."""
    layers = _config(path).get("config", {}).get("layers", [])
    for layer in layers:
        if layer.get("class_name") == "InputLayer":
            shape = layer.get("config", {}).get("batch_shape")
            return None if shape is None else tuple(shape[1:])
    return None
