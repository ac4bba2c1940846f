"""The build cache: the same build is compiled once and found by every later builder; any change of what goes
into a build (the model, a source file, an option) is another build; a failed build is never kept."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pyodl.model.architecture import paper_model
from pyodl.model.export import export
from pyodl.toolchain import build_cache, tools
from pyodl.toolchain.build_cache import ENVIRONMENT, BuildCache
from pyodl.toolchain.firmware import FirmwareBuilder
from pyodl.toolchain.host_library import HostBuilder
from pyodl.toolchain.sources import source_root


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv(ENVIRONMENT, str(folder))
    return folder


def _counting(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    calls: list[list[str]] = []
    real = tools.run

    def run(args: list[str], *rest: object, **kw: object) -> str:
        calls.append(args)
        return real(args, *rest, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(tools, "run", run)
    return calls


def test_a_firmware_built_twice_is_compiled_once(cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = FirmwareBuilder(tmp_path / "a").export_and_build(paper_model(20, 0), tmp_path / "m1")
    calls = _counting(monkeypatch)
    second_builder = FirmwareBuilder(tmp_path / "b")
    second = second_builder.export_and_build(paper_model(20, 0), tmp_path / "m2")
    assert calls == [] and second.elf.read_bytes() == first.elf.read_bytes()
    assert "RAM:" in second_builder.log  # the kept build's log, as a build prints it
    FirmwareBuilder(tmp_path / "c").export_and_build(paper_model(20, 1), tmp_path / "m3")  # other weights
    assert calls, "another model must be compiled"
    assert len(list(cache.iterdir())) == 2


def test_a_host_library_built_twice_is_compiled_once(cache: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    first = HostBuilder(tmp_path / "a").export_and_build(paper_model(20, 0), tmp_path / "m1")
    calls = _counting(monkeypatch)
    second = HostBuilder(tmp_path / "b").export_and_build(paper_model(20, 0), tmp_path / "m2")
    assert calls == [] and second.read_bytes() == first.read_bytes() and second.parent == tmp_path / "m2"


def test_a_changed_source_file_or_option_is_another_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    for part in ("CMakeLists.txt", "cmake", "firmware"):
        source = source_root() / part
        (shutil.copytree if source.is_dir() else shutil.copyfile)(source, tree / part)
    monkeypatch.setattr(build_cache, "source_root", lambda: tree)
    model_dir = tmp_path / "model"
    export(paper_model(20, 0), model_dir)
    cache = BuildCache(tmp_path / "cache")
    key = cache.key(model_dir, ["firmware", "1024"], "cc")
    assert cache.key(model_dir, ["firmware", "1024"], "cc") == key
    assert cache.key(model_dir, ["firmware", "2048"], "cc") != key
    with (tree / "firmware" / "odl" / "dense.c").open("a") as f:
        f.write("/* a change */\n")
    assert cache.key(model_dir, ["firmware", "1024"], "cc") != key


def test_a_failed_build_is_not_kept(cache: Path, tmp_path: Path) -> None:
    builder = FirmwareBuilder(tmp_path / "a")
    for attempt in range(2):
        with pytest.raises(tools.ToolchainError, match="does not fit"):
            builder.export_and_build(paper_model(1000, 0), tmp_path / f"big{attempt}")
    assert not cache.exists() or list(cache.iterdir()) == []
