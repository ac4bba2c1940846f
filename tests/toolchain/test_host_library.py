"""The host build of the C library: a missing tool is named with the package that provides it."""

import pytest

from pyodl.toolchain import tools
from pyodl.toolchain.host_library import HostBuilder


def test_missing_toolchain_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tools.shutil, "which", lambda tool: None)
    with pytest.raises(tools.ToolchainError, match="apt-get install cmake gcc"):
        HostBuilder()
