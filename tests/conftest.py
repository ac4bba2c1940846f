"""Shared fixtures: one host build directory per test process (pytest-xdist workers each get their own), and
one build cache for the whole run (every worker and every process a test starts), so that a model built by
many tests is compiled once."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from pyodl.board.unicorn import UnicornBoard
from pyodl.model.architecture import paper_model
from pyodl.toolchain.build_cache import ENVIRONMENT
from pyodl.toolchain.firmware import Firmware, FirmwareBuilder
from pyodl.toolchain.host_library import HostBuilder

# CI explores the same examples on every run, so a red build is reproducible; locally each run explores
# new ones. Deadlines are off: a TensorFlow trace of a new architecture takes a variable second or so.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", deadline=None, print_blob=True, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture(scope="session", autouse=True)
def build_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The run's build cache (:mod:`pyodl.toolchain.build_cache`): under pytest-xdist the session folder that
    holds every worker's, else this process's. Processes the tests start inherit it."""
    base = tmp_path_factory.getbasetemp()
    folder = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "build-cache"
    previous = os.environ.get(ENVIRONMENT)
    os.environ[ENVIRONMENT] = str(folder)
    yield folder
    if previous is None:
        del os.environ[ENVIRONMENT]
    else:
        os.environ[ENVIRONMENT] = previous


@pytest.fixture(scope="session")
def host_builder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostBuilder]:
    builder = HostBuilder(tmp_path_factory.mktemp("host-build"))
    yield builder
    builder.close()


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    return tmp_path / "model"


@pytest.fixture(scope="session")
def firmware_builder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FirmwareBuilder]:
    builder = FirmwareBuilder(tmp_path_factory.mktemp("arm-build"))
    yield builder
    builder.close()


@pytest.fixture(scope="session")
def paper_firmware(firmware_builder: FirmwareBuilder, tmp_path_factory: pytest.TempPathFactory) -> Firmware:
    """The paper's model at T=40, Full mode, initial weights from seed 0, linked for the STM32L496."""
    return firmware_builder.export_and_build(paper_model(40, 0), tmp_path_factory.mktemp("paper40"))


@pytest.fixture
def paper_board(paper_firmware: Firmware) -> Iterator[UnicornBoard]:
    """A fresh simulated STM32L496 with the paper's firmware loaded (not yet booted)."""
    with UnicornBoard(paper_firmware.elf) as board:
        yield board


# A user's model unlike the paper's, saved as a Keras file: strided Conv1D, BatchNormalization, DepthwiseConv1D,
# global average pooling and Dense, input (64, 6), 4 classes (the Robot suites' MODEL example), and variants.
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
