import shlex
import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyodl.cli import main
from pyodl.model.architecture import Architecture, Kind, LayerSpec, ModelError, paper_model
from pyodl.model.export import GENERATED_FILES, c_float, check_shapes, render
from pyodl.toolchain.sources import source_root

COMMITTED = source_root() / "firmware" / "generated"


def test_committed_generated_files_are_reproducible(tmp_path: Path) -> None:
    """firmware/generated must be exactly what the command written in its header produces."""
    header = (COMMITTED / "model.h").read_text().splitlines()[1]
    command = header.split("`")[1]
    assert command.startswith("pyodl export ")
    assert main([*shlex.split(command)[1:], "--out", str(tmp_path)]) == 0
    for name in GENERATED_FILES:
        assert (tmp_path / name).read_text() == (COMMITTED / name).read_text(), f"{name} differs: re-export it"


@given(st.floats(width=32, allow_nan=False, allow_infinity=False))
def test_c_float_literals_round_trip_exactly(value: float) -> None:
    literal = c_float(np.float32(value))
    assert literal.endswith("f")
    assert np.float32(float(literal[:-1])) == np.float32(value)


def test_tl_export_keeps_frozen_layers_const() -> None:
    text = render(paper_model(20), trainable_layers=2)["model_params.c"]
    assert "static const float l0_weights" in text and "static const float l2_weights" in text
    assert 'ODL_SECTION(".odl_params") static float l5_weights' in text
    assert "l0_grad_weights" not in text and "l5_grad_weights" in text


def test_generated_code_compiles_without_warnings(tmp_path: Path) -> None:
    for name, text in render(paper_model(60), trainable_layers=1).items():
        (tmp_path / name).write_text(text)
    src = source_root() / "firmware" / "odl"
    proc = subprocess.run(
        ["cc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-c", f"-I{src}", f"-I{tmp_path}",
         str(tmp_path / "model_params.c"), "-o", str(tmp_path / "model_params.o")],
        capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize(("specs", "input_len", "message"), [
    ([LayerSpec(Kind.CONV1D, "conv", units=4, size=3), LayerSpec(Kind.GAP1D, "gap"),
      LayerSpec(Kind.DENSE, "out", units=2, activation="softmax")], 70_000,
     "the model's input length is 70000; the firmware's shape fields hold at most 65535"),
    ([LayerSpec(Kind.FLATTEN, "flat"), LayerSpec(Kind.DENSE, "out", units=20_000, activation="softmax")], 20_000,
     "layer 'out': 1200000000 weights elements; the firmware counts at most 1073741823"),
    ([LayerSpec(Kind.FLATTEN, "flat"), LayerSpec(Kind.DENSE, "out", units=6, activation="softmax")], 30_000,
     "layer 'flat': its output channels is 90000; the firmware's shape fields hold at most 65535"),
])
def test_shapes_beyond_the_c_fields_are_refused_by_name(specs: list[LayerSpec], input_len: int,
                                                        message: str) -> None:
    with pytest.raises(ModelError, match=message):
        check_shapes(Architecture.build("big", input_len, 3, specs))
