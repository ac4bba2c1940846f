"""The CI share of the fuzzing campaign (`pyodl fuzz --count 100000` runs the long one)."""

from __future__ import annotations

from pyodl.board.fuzz import fuzz
from pyodl.toolchain.firmware import Firmware


def test_two_thousand_inputs_over_both_transports_find_nothing(paper_firmware: Firmware) -> None:
    report = fuzz(paper_firmware.elf, 2000, seed=0)
    assert report.inputs == 2000 and report.failures == 0, report.to_json()
    # The campaign reached deep enough to mean something: many refusals, and valid commands that trained.
    assert len(report.statuses) >= 10 and report.weight_changes >= 20 and len(report.by_kind) == 8
