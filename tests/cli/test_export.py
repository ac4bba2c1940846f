from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from pyodl.cli import main
from pyodl.model.keras_io import keras


def test_export_writes_the_two_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "--input", "80", "--trainable-layers", "1", "--out", str(tmp_path)]) == 0
    header = (tmp_path / "model.h").read_text()
    assert "#define ODL_INPUT_LEN 80u" in header and "#define ODL_TRAINABLE_CAPACITY 1u" in header
    assert "pyodl export paper --input 80" in header
    assert (tmp_path / "model_params.c").exists()


def test_export_announces_what_it_changes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    km = keras.Sequential([keras.Input((20, 3)), keras.layers.Conv1D(4, 3, activation="relu"),
                           keras.layers.Dropout(0.3, name="drop"), keras.layers.Flatten(),
                           keras.layers.Dense(3, activation="softmax")])
    path = tmp_path / "dropout.keras"
    km.save(path)
    assert main(["export", str(path), "--out", str(tmp_path / "out")]) == 0
    assert "note: layer 'drop' (Dropout, rate 0.3): the identity on the device" in capsys.readouterr().out
    assert "note: layer 'drop' (Dropout, rate 0.3)" in (tmp_path / "out" / "model.h").read_text()
    assert main(["golden-check", str(path), "--steps", "3", "--batch", "4"]) == 0
    assert "PASS" in capsys.readouterr().out


def test_export_writes_the_parameter_bound_and_refuses_a_model_beyond_it(tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "--param-bound", "50", "--out", str(tmp_path)]) == 0
    header = (tmp_path / "model.h").read_text()
    assert "#define ODL_PARAM_BOUND 5.00000000e+01f" in header and "--param-bound 50" in header
    # Glorot weights of the paper's model reach ~0.3: a bound of 0.01 cannot hold them.
    assert main(["export", "--param-bound", "0.01", "--out", str(tmp_path / "small")]) == 2
    assert "beyond the bound 0.01 the device enforces; export with a larger --param-bound" in capsys.readouterr().err
    assert not (tmp_path / "small").exists()
    assert main(["export", "--param-bound", "nan", "--out", str(tmp_path / "nan")]) == 2
    assert "argument --param-bound: must be a finite number, got nan" in capsys.readouterr().err


def test_tl_builds_fold_frozen_batchnorm(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    km = keras.Sequential([keras.Input((20, 3)), keras.layers.Conv1D(4, 3, name="conv"),
                           keras.layers.BatchNormalization(name="bn"), keras.layers.ReLU(name="relu"),
                           keras.layers.Flatten(), keras.layers.Dense(3, activation="softmax", name="out")])
    bn = km.get_layer("bn")
    bn.set_weights([w + 0.3 * (i + 1) for i, w in enumerate(bn.get_weights())])  # away from 1, 0, 0, 1
    path = tmp_path / "bn.keras"
    km.save(path)
    assert main(["export", str(path), "--trainable-layers", "1", "--out", str(tmp_path / "tl")]) == 0
    assert "note: bn folded into conv" in capsys.readouterr().out
    assert "ODL_LAYER_BATCHNORM" not in (tmp_path / "tl" / "model_params.c").read_text()
    assert main(["export", str(path), "--out", str(tmp_path / "full")]) == 0  # Full trains gamma and beta
    assert "ODL_LAYER_BATCHNORM" in (tmp_path / "full" / "model_params.c").read_text()
    assert main(["golden-check", str(path), "--mode", "tl", "--trainable-layers", "1", "--steps", "3",
                 "--batch", "4"]) == 0
    captured = capsys.readouterr()
    assert "note: bn folded into conv" in captured.err and captured.out.rstrip().endswith("PASS")


def test_the_committed_generated_model_is_what_readmes_command_writes(tmp_path: Path) -> None:
    """firmware/generated/ is kept in the repository: README's "by hand" command must write exactly it (it
    once wrote other files: the committed ones had --dataset-windows 8)."""
    root = Path(__file__).resolve().parents[2]
    (line,) = [ln for ln in (root / "README.md").read_text().splitlines()
               if ln.startswith(".venv/bin/pyodl export ") and "--out firmware/generated" in ln]
    args = shlex.split(line.partition("#")[0])[1:]
    assert args[0] == "export"
    args[args.index("--out") + 1] = str(tmp_path)
    assert main(args) == 0
    committed = root / "firmware" / "generated"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in committed.iterdir())
    for path in tmp_path.iterdir():
        assert path.read_text() == (committed / path.name).read_text(), f"{path.name} differs: export again"
