"""Which tests of the suites run with and without MODEL: without it exactly the paper's 25 tests of before
(robot/README.md), with it the user model's rows of golden, ram, persist and int8, and protocol's."""

from __future__ import annotations

from pathlib import Path

import pytest
from robot.api import TestSuiteBuilder as SuiteBuilder

from pyodl.robot.selection import TestSelection, runs

ROBOT = Path(__file__).parents[2] / "robot"
MODEL_SUITES = ("golden", "ram", "persist", "int8")


def _selected(model_given: bool) -> dict[str, list[str]]:
    top = SuiteBuilder().build(str(ROBOT))
    out = {}
    for suite in top.suites:
        TestSelection(model_given).start_suite(suite, None)
        out[suite.source.stem] = [t.name for t in suite.tests]
    return out


@pytest.mark.parametrize(("tags", "without", "with_model"), [
    ((), True, True), (("paper",), True, False), (("model",), False, True), (("paper", "model"), False, True),
    (("Model",), False, True)])
def test_a_tag_decides_where_a_test_runs(tags: tuple[str, ...], without: bool, with_model: bool) -> None:
    assert runs(tags, False) is without and runs(tags, True) is with_model


def test_without_model_the_suites_keep_the_papers_rows() -> None:
    selected = _selected(False)
    assert sum(map(len, selected.values())) == 25
    assert selected["golden"] == [f"T={t} {m}" for t in (20, 40, 60, 80, 100) for m in ("Full", "TL")]
    assert selected["ram"] == ["Paper Model Fits At Every Input Size", "Oversized Model Fails To Link"]
    assert not any(name.startswith("Your Model") for names in selected.values() for name in names)


def test_with_a_model_every_model_suite_runs_the_users_rows_only() -> None:
    selected = _selected(True)
    for suite in MODEL_SUITES:
        assert selected[suite], suite
    assert selected["golden"] == ["Your Model Trains Like TensorFlow"]
    assert selected["ram"] == ["Your Model Fits And Trains"]
    assert all(name.startswith("Your Model") for name in selected["int8"])
    # Built by `Build Firmware For Suite Model`: the user's model; and the LOAD row, which a serial line runs.
    assert selected["persist"][-1] == "Your Model: LOAD Brings Back The Saved Copy" and len(selected["persist"]) == 4
