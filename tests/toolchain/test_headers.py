"""The header reader against the C compiler: the offsets, sizes and values it reads from the firmware's
headers are the ones gcc lays out and computes (a wrong parse would shift every mailbox field)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyodl.toolchain import headers
from pyodl.toolchain.sources import source_root

pytestmark = pytest.mark.skipif(shutil.which("cc") is None, reason="needs a host C compiler")


def _compile_and_run(tmp_path: Path, body: str) -> list[str]:
    firmware = source_root() / "firmware"
    program = tmp_path / "layout.c"
    program.write_text(f"#include <stddef.h>\n#include <stdio.h>\n#include \"app.h\"\nint main(void) {{\n{body}\n"
                       "return 0;\n}\n")
    exe = tmp_path / "layout"
    subprocess.run(["cc", "-std=c99", "-Wall", "-Werror", f"-I{firmware / 'app'}", f"-I{firmware / 'odl'}",
                    f"-I{firmware / 'generated'}", "-o", str(exe), str(program)], check=True)
    return subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout.split()


@pytest.mark.parametrize("struct", ["odl_mailbox_t", "odl_info_t"])
def test_struct_offsets_are_the_compilers(tmp_path: Path, struct: str) -> None:
    fields = headers.struct_layout(struct)
    body = "\n".join(f'printf("%zu\\n", offsetof({struct}, {name}));' for name in fields)
    offsets = [int(v) for v in _compile_and_run(tmp_path, body)]
    assert offsets == [f.offset for f in fields.values()]


def test_defines_and_enums_are_the_compilers(tmp_path: Path) -> None:
    values = headers.defines() | headers.enum("odl_command_t") | headers.enum("odl_app_status_t")
    values |= headers.enum("odl_status_t", headers.LIBRARY_HEADER)
    body = "\n".join(f'printf("%lu\\n", (unsigned long)({name}));' for name in values)
    assert [int(v) for v in _compile_and_run(tmp_path, body)] == list(values.values())
    assert values["ODL_MAILBOX_HEADER_BYTES"] == headers.struct_layout("odl_mailbox_t")["data"].offset


@pytest.fixture
def fake_header(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setattr(headers, "firmware_file", lambda relative: tmp_path / relative)
    headers._text.cache_clear()
    yield tmp_path / "fake.h"
    headers._text.cache_clear()


def test_a_field_it_cannot_lay_out_is_an_error(fake_header: Path) -> None:
    fake_header.write_text("typedef struct {\n    uint32_t a;\n    uint16_t b; /* not a word */\n} odd_t;\n")
    with pytest.raises(headers.HeaderError, match=r"odd_t has a field pyodl cannot lay out: 'uint16_t b'"):
        headers.struct_layout("odd_t", "fake.h")


def test_missing_names_are_errors(fake_header: Path) -> None:
    fake_header.write_text("#define ODL_A 3u\n")
    assert headers.define("ODL_A", "fake.h") == 3
    with pytest.raises(headers.HeaderError, match="defines no integer ODL_B"):
        headers.define("ODL_B", "fake.h")
    with pytest.raises(headers.HeaderError, match=r"no `typedef enum \{\.\.\.\} missing_t;`"):
        headers.enum("missing_t", "fake.h")
