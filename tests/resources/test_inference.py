"""The int8 inference estimate (pyodl.resources.inference) against PREDICT_Q on the simulated board: the
.odl_int8 section exactly (every buffer's size is known), instructions and cycles per window within 10% (the
fit's worst error on its calibration set is 8.5%; these architectures are not in it)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pyodl.cli import main
from pyodl.model.architecture import Model, glorot_params, paper_model, random_architecture
from pyodl.resources.estimate import estimate
from pyodl.resources.inference import estimate_inference, measure_inference
from pyodl.toolchain.firmware import FirmwareBuilder

TOLERANCE = 0.10


def _models() -> list[tuple[Model, str]]:
    out = [(paper_model(40, 0), "8"), (paper_model(100, 0), "8,4,4,8")]
    rng = np.random.default_rng(9000)
    while len(out) < 5:
        arch = random_architecture(rng, f"check{len(out)}", wide=len(out) % 2 == 0)
        if estimate(arch).fits:
            out.append((Model(arch, glorot_params(arch, len(out))), str(rng.choice(["8", "4", "2"]))))
    return out


@pytest.mark.parametrize("index", range(5))
def test_estimate_against_the_board(index: int, firmware_builder: FirmwareBuilder, tmp_path: Path) -> None:
    model, spec = _models()[index]
    est = estimate_inference(model.arch, spec)
    (m,) = measure_inference(model, [spec], firmware_builder, tmp_path, windows=4)
    assert est.ram_bytes == m.int8_section_bytes
    assert abs(est.instructions - m.int8_instructions) <= TOLERANCE * m.int8_instructions, (est.instructions, m)
    assert abs(est.cycles - m.int8_cycles) <= TOLERANCE * m.int8_cycles, (est.cycles, m)


def test_cli(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["estimate", "--inference", "int8", "--bits", "8,4,4,8"]) == 0
    out = capsys.readouterr().out
    assert "int8 inference (weights of 8,4,4,8 bits per parameter layer, activations int8)" in out
    assert "predicted per window (PREDICT_Q):" in out
    assert main(["estimate", "--inference", "int8", "--bits", "8,4"]) == 2
    assert "2 widths for 4 parameter layers" in capsys.readouterr().err
    assert main(["estimate", "--bits", "4"]) == 2


def test_bench_inference(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    assert main(["bench", "--inference", "--inputs", "20", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["bits"] for r in rows] == ["8", "4", "2"]
    for r in rows:
        assert r["int8_ram_bytes"] == r["estimated_int8_ram_bytes"]
        assert abs(r["int8_instructions"] - r["estimated_instructions"]) <= TOLERANCE * r["int8_instructions"]
        assert r["float_instructions"] > 0 and 0.0 <= r["agreement"] <= 1.0
    assert rows[0]["model_bytes"] > rows[1]["model_bytes"] > rows[2]["model_bytes"]
    assert main(["bench", "--inference", "--out", "/tmp/none"]) == 2
