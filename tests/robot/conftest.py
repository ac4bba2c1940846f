"""A user's model unlike the paper's, saved as a Keras file: strided Conv1D, BatchNormalization, DepthwiseConv1D,
global average pooling and Dense, input (64, 6), 4 classes (the issue's example), and variants of it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


def save_user_model(path: Path, length: int = 64, channels: int = 6, classes: int = 4, filters: int = 16,
                    extra: Any = None) -> Path:
    import keras
    from keras import layers

    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((length, channels)),
        layers.Conv1D(filters, 5, strides=2, padding="same"),
        layers.BatchNormalization(), layers.ReLU(),
        layers.DepthwiseConv1D(3, padding="same", activation="relu"),
        *([extra] if extra is not None else []),
        layers.GlobalAveragePooling1D(), layers.Dense(classes, activation="softmax")])
    model.save(path)
    return path


@pytest.fixture(scope="session")
def user_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``fits``: the issue's model; ``oversized``: the same at T=1024 with 64 filters (its activations exceed the
    SRAM); ``unsupported``: with an LSTM, which the device lacks."""
    from keras import layers

    folder = tmp_path_factory.mktemp("user-models")
    return {"fits": save_user_model(folder / "u.keras"),
            "oversized": save_user_model(folder / "big.keras", length=1024, filters=64),
            "unsupported": save_user_model(folder / "lstm.keras", extra=layers.LSTM(8, return_sequences=True))}
