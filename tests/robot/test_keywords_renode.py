"""The suites' Renode branch, run here: Robot with ``--variable BACKEND:renode`` and Renode's keywords played by
the Unicorn board (tests/robot/fixtures/renode_standin.py), so every Renode keyword the resource calls and every
monitor command the keyword library sends runs against the real firmware. Checked: the tests pass, every test's
teardown asks the log for an access outside the memory map (after the test's own commands), and a golden test
costs a constant number of monitor commands per training step."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROBOT = Path(__file__).parents[2] / "robot"
FIXTURES = Path(__file__).parent / "fixtures"
LOG_CHECK = "Should Not Be In Log non.existing peripheral"
ERROR_CHECK = "Should Not Be In Log . level=Error"
# A golden test: 10 steps of about 11 commands (tests/board/test_renode_on_unicorn.py), the boot, INFO and
# LAYER_INFO, and reading the 10,084 parameters back in GET_PARAMS chunks (~40 commands of ~10 commands each).
# Window by window, the 10 steps alone took 13,690 (1,369 per step at T=40).
GOLDEN_TEST_MAX_COMMANDS = 900


def _run(tmp_path: Path, *selection: str) -> tuple[int, dict[str, dict]]:
    record = tmp_path / "record.json"
    status = subprocess.run([sys.executable, "-m", "robot", "--outputdir", str(tmp_path), "--variable",
                             "BACKEND:renode", "--pythonpath", str(FIXTURES), "--prerunmodifier",
                             f"renode_standin.ImportStandIn:{record}", "--console", "none", *selection, str(ROBOT)],
                            check=False).returncode
    return status, json.loads(record.read_text())


def test_the_suites_pass_on_their_renode_branch_and_every_teardown_checks_the_log(tmp_path: Path) -> None:
    status, tests = _run(tmp_path, "--suite", "Protocol", "--suite", "Golden", "--test", "Robot.Golden.T=20 TL",
                         "--test", "Robot.Protocol.*")
    assert status == 0, tests
    assert len(tests) == 8 and all(t["status"] == "PASS" for t in tests.values())
    for name, test in tests.items():
        calls = test["calls"]
        assert LOG_CHECK in calls and ERROR_CHECK in calls and "Test Teardown" in calls, name
        teardown = calls.index("Test Teardown")
        check = max(i for i, c in enumerate(calls[:teardown]) if c == ERROR_CHECK)
        assert calls[check - 1] == LOG_CHECK, (name, calls)
        # Only Stop Board's commands (the UART file backend closed) come between the check and the teardown.
        assert set(calls[check + 1:teardown]) <= {"Execute Command"} and teardown - check <= 3, (name, calls)
    golden = tests["Robot.Golden.T=20 TL"]
    assert golden["monitor_commands"] <= GOLDEN_TEST_MAX_COMMANDS, golden["monitor_commands"]
