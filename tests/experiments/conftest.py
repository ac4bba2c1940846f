"""What the experiments' tests share: the bundled watch dataset, loaded once."""

from __future__ import annotations

import pytest

from pyodl.data.watch import load_watch


@pytest.fixture(scope="session")
def watch() -> tuple[list, list[str]]:
    recordings, classes, _ = load_watch()
    return recordings, classes

