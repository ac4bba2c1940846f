"""Which tests of a suite run: the paper's rows without ``MODEL``, the user model's rows with it.

A suite's tests are written out in its ``.robot`` file. A test tagged ``model`` runs only when the suites were
given ``--variable MODEL:...``; one tagged ``paper`` (and not ``model``) runs only without it; an untagged test
runs either way (e.g. persist.robot's, which build the suite's model). The keyword library registers
:class:`TestSelection` as its listener, so ``robot`` and ``renode-test`` need no option for it, and the suites
without MODEL keep exactly the paper's rows.
"""

from __future__ import annotations

from typing import Any

MODEL_TAG = "model"
PAPER_TAG = "paper"


def runs(tags: Any, model_given: bool) -> bool:
    """Whether a test with ``tags`` runs when a MODEL was (not) given."""
    names = {str(tag).lower() for tag in tags}
    if MODEL_TAG in names:
        return model_given
    if PAPER_TAG in names:
        return not model_given
    return True


class TestSelection:
    """A library listener: when its suite starts, drops the tests that do not run for this MODEL."""

    ROBOT_LISTENER_API_VERSION = 3
    __test__ = False  # not a pytest test class

    def __init__(self, model_given: bool) -> None:
        self.model_given = model_given

    def start_suite(self, data: Any, result: Any) -> None:
        data.tests = [test for test in data.tests if runs(test.tags, self.model_given)]
