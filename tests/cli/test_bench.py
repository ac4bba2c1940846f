from __future__ import annotations

import json
from pathlib import Path

import pytest

from pyodl.cli import main
from pyodl.resources.bench import KEPT_MARKER


def test_bench_writes_results_and_chart(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--inputs", "20", "--modes", "tl", "--batch", "2", "--out", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert "[1/1] T=20 tl" in captured.err
    text = (tmp_path / "RESULTS.md").read_text()
    assert "| 20 | tl |" in text and "63 KB" in text and "at commit" in text and "mJ/batch" in text
    assert (tmp_path / "bench.png").read_bytes()[:4] == b"\x89PNG"
    # Another benchmark's section below the marker survives the next rewrite; the table above it is replaced.
    (tmp_path / "RESULTS.md").write_text("old table\n\n" + KEPT_MARKER + "## Renode round trips\n| a | 1 |\n")
    assert main(["bench", "--inputs", "20", "--modes", "tl", "--batch", "2", "--out", str(tmp_path)]) == 0
    text = (tmp_path / "RESULTS.md").read_text()
    assert "old table" not in text and "| 20 | tl |" in text
    assert text.endswith(KEPT_MARKER + "## Renode round trips\n| a | 1 |\n")


def test_bench_json_gives_cycles_time_and_energy_per_mac_and_batch(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--inputs", "20", "--modes", "full", "--batch", "2", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["cycles_per_mac"] == pytest.approx(row["cycles_measured"] / row["training_macs"])
    assert row["instructions_per_mac"] < row["cycles_per_mac"]  # loads, branches and wait states cost more
    assert row["cycles_per_batch"] == 2 * row["cycles_measured"] + row["step_cycles"]
    assert row["seconds_per_batch_pll80"] == pytest.approx(row["cycles_per_batch"] / 80e6)
    # energy: 91 µA/MHz x 3.3 V over that time: 20 times longer at 4 MHz at a twentieth of the current
    assert row["seconds_per_batch_msi4"] == pytest.approx(20 * row["seconds_per_batch_pll80"])
    assert row["millijoules_per_batch_pll80"] == pytest.approx(row["cycles_per_batch"] * 91e-12 * 3.3 * 1e3)
    assert row["millijoules_per_batch_msi4"] == pytest.approx(row["millijoules_per_batch_pll80"])
    assert abs(row["cycle_error"]) < 0.10 and row["simulator_mips"] > 0
    assert row["paper_millijoules_per_batch"] == pytest.approx(2.65 * 7.90)  # Table III: mW x s at T=20 Full


def test_bench_on_a_board_reports_its_cycles_beside_the_simulated_instructions(
        board_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--backend", "serial", "--port", board_url, "--inputs", "40", "--modes", "full",
                 "--batch", "4", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["clock_hz"] == 80_000_000 and row["board_cycles_per_step"] > 0
    # The bridged Unicorn board's CYCCNT reads the cycle model, as the mailbox measurement does; the firmware's
    # own count leaves out the command's frame handling, which the mailbox has none of.
    assert abs(row["cycle_model_error"]) < 0.01
    assert 1.1 < row["cycles_per_instruction"] < 1.6
    assert row["board_seconds_per_batch"] == pytest.approx(
        (4 * row["board_cycles_per_sample"] + row["board_cycles_per_step"]) / 80e6, rel=0.01)
    assert main(["bench", "--backend", "serial", "--port", board_url]) == 2  # five input sizes: which one?
    assert "one --inputs T and one --modes M" in capsys.readouterr().err
