"""Every Robot test ends with the check that fails it, under Renode, on an access outside the memory map or on
any error logged (the platform's peripherals log an access to a register they do not model).

Renode only logs such an access ("... from non existing peripheral"), and a failing log string registered
with `Register Failing Log String` is checked only when one of Renode's log keywords runs: without an
explicit `Should Not Be In Log` a test passes with the warning in its log. Renode cannot run here, so this
reads the suites the way Robot builds them: every test's teardown must reach that keyword, with the pattern
the setup registers, before anything else."""

from __future__ import annotations

from pathlib import Path

from robot.api import TestSuiteBuilder as SuiteBuilder
from robot.running.builder import ResourceFileBuilder

ROBOT = Path(__file__).parents[2] / "robot"
TEARDOWN = "Test Teardown For Backend"
CHECK = "Platform Errors Should Not Be In The Log"


def _keywords() -> dict[str, object]:
    return {k.name: k for k in ResourceFileBuilder().build(ROBOT / "pyodl.resource").keywords}


def test_every_test_of_every_suite_is_torn_down_by_the_backend_teardown() -> None:
    tests = list(SuiteBuilder().build(str(ROBOT)).all_tests)
    assert len(tests) >= 19
    wrong = [t.longname for t in tests if t.teardown.name != TEARDOWN]
    assert wrong == [], f"tests whose teardown skips the log check: {wrong}"


def test_the_teardown_checks_the_log_first_and_under_renode_only() -> None:
    keywords = _keywords()
    assert keywords[TEARDOWN].body[0].name == CHECK  # before Stop Board, which could fail first
    (branch,) = keywords[CHECK].body
    (renode,) = branch.body
    assert renode.condition == "'${BACKEND}' == 'renode'"
    assert [(step.name, tuple(step.args)) for step in renode.body] == [
        ("Should Not Be In Log", ("non.existing peripheral", "timeout=0", "treatAsRegex=True")),
        ("Should Not Be In Log", (".", "timeout=0", "treatAsRegex=True", "level=Error"))]


def test_the_checked_pattern_is_the_registered_failing_string() -> None:
    (register,) = [step for step in _keywords()["Start Log Checks"].body if step.name == "Register Failing Log String"]
    assert register.args[0] == "non.existing peripheral" and "treatAsRegex=True" in register.args
