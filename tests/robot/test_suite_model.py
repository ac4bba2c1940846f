"""The suites' variables: every bad one refused with the variable named (before TensorFlow loads), and the
windows a user model trains on: DATA's recordings when given, else numpy's generator with the suite's seed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pyodl.model.architecture import ModelError, paper_architecture
from pyodl.reference import golden
from pyodl.robot.suite_model import RANDOM_PERSONALIZATION_WINDOWS, RANDOM_TEST_WINDOWS, SuiteModel, trainable_layers

ARCH = paper_architecture(20, 3, 4)


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "m.keras"
    path.write_bytes(b"not opened before a build")
    return path


def _table(path: Path, channels: int = 3, labels: tuple[str, ...] = ("a", "b"), rows: int = 60) -> Path:
    names = ",".join(f"c{k}" for k in range(channels))
    lines = [f"subject,label,{names}"]
    for label_index, label in enumerate(labels):
        for r in range(rows):
            lines.append(f"1,{label}," + ",".join(str(label_index * 10 + r + k) for k in range(channels)))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_without_model_nothing_else_applies() -> None:
    assert SuiteModel.from_variables("") is None
    with pytest.raises(ModelError, match="DATA, MODE apply to a MODEL only"):
        SuiteModel.from_variables("", data="x.csv", mode="tl")


@pytest.mark.parametrize(("variables", "message"), [
    ({"model": "missing.keras"}, "MODEL .*missing.keras: no such model file"),
    ({"mode": "half"}, "MODE: must be full or tl, got 'half'"),
    ({"mode": "full", "trainable": "2"}, "TRAINABLE applies to MODE:tl only"),
    ({"trainable": "two"}, "TRAINABLE: 'two' is not a whole number"),
    ({"trainable": "0"}, "TRAINABLE: must be >= 1"),
    ({"optimizer": "rmsprop"}, "OPTIMIZER: unknown optimizer 'rmsprop'"),
    ({"data": "missing.csv"}, "DATA missing.csv: no such file"),
    ({"rate": "fast"}, "RATE: 'fast' is not a number"),
    ({"rate": "0"}, "RATE: must be > 0"),
])
def test_every_bad_variable_is_refused_by_name(model_file: Path, variables: dict[str, str], message: str) -> None:
    with pytest.raises(ModelError, match=message):
        SuiteModel.from_variables(**({"model": str(model_file)} | variables))


def test_data_must_be_a_table(model_file: Path, tmp_path: Path) -> None:
    (tmp_path / "d.txt").write_text("x")
    with pytest.raises(ModelError, match="expected a recordings table"):
        SuiteModel.from_variables(str(model_file), data=str(tmp_path / "d.txt"))


def test_mode_and_trainable_read_as_export_reads_them() -> None:
    assert trainable_layers("", "") is None and trainable_layers("full", "") is None
    assert trainable_layers("tl", "") == 2 and trainable_layers("tl", "3") == 3 and trainable_layers("", "1") == 1


def test_without_data_the_windows_are_the_golden_checks_seeded_ones(model_file: Path) -> None:
    suite = SuiteModel.from_variables(str(model_file))
    assert suite is not None and suite.optimizer.kind == "sgd" and suite.trainable is None
    x, y = suite.batches(ARCH, 3, 5, seed=7)
    gx, gy = golden.random_batches(ARCH, 3, 5, 7)
    assert np.array_equal(x, gx) and np.array_equal(y, gy)
    (px, py), (tx, ty) = suite.split(ARCH, seed=7)
    assert ty.max() < ARCH.num_classes
    assert px.shape == (RANDOM_PERSONALIZATION_WINDOWS, 20, 3) and tx.shape == (RANDOM_TEST_WINDOWS, 20, 3)
    assert py.max() < ARCH.num_classes and not np.array_equal(px, suite.split(ARCH, seed=8)[0][0])


def test_with_data_the_windows_come_from_the_recordings(model_file: Path, tmp_path: Path) -> None:
    suite = SuiteModel.from_variables(str(model_file), data=str(_table(tmp_path / "d.csv")))
    assert suite is not None
    x, y = suite.batches(ARCH, 4, 8, seed=1)
    assert x.shape == (4, 8, 20, 3) and set(np.unique(y)) <= {0, 1}
    # Windows of the recordings, standardised: class b's (values 10 higher) sit above class a's.
    assert x[y == 1].mean() > x[y == 0].mean()
    again = suite.batches(ARCH, 4, 8, seed=1)
    assert np.array_equal(again[0], x) and not np.array_equal(suite.batches(ARCH, 4, 8, seed=2)[1], y)
    (px, _), (tx, _) = suite.split(ARCH, seed=1)
    assert len(px) and len(tx)


def test_data_that_does_not_suit_the_model_is_refused(model_file: Path, tmp_path: Path) -> None:
    few = SuiteModel.from_variables(str(model_file), data=str(_table(tmp_path / "few.csv", channels=2)))
    assert few is not None
    with pytest.raises(ModelError, match="2 channels, the model takes 3"):
        few.batches(ARCH, 1, 1, 0)
    many = SuiteModel.from_variables(str(model_file), data=str(_table(tmp_path / "many.csv",
                                                                      labels=tuple("abcde"))))
    assert many is not None
    with pytest.raises(ModelError, match=r"5 classes .* the model has 4 outputs"):
        many.batches(ARCH, 1, 1, 0)
    short = SuiteModel.from_variables(str(model_file), data=str(_table(tmp_path / "short.csv", rows=10)))
    assert short is not None
    with pytest.raises(ModelError, match="no recording has 20 samples"):
        short.batches(ARCH, 1, 1, 0)
