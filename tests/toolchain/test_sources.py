"""The firmware sources' layering: the command files (one per command family) share helpers through a file
below them (records.c), never through each other; main's dispatch in commands.c is the one place that calls
into every family."""

from __future__ import annotations

import re

from pyodl.toolchain.sources import source_root

COMMAND_FILES = ("dataset.c", "stream_commands.c", "int8_commands.c")
DEFINITION = re.compile(r"^(?!static)[a-z][\w ]*\*?\s*\b(odl_\w+)\(", re.M)


def _defined(text: str) -> set[str]:
    return set(DEFINITION.findall(text))


def test_no_command_file_calls_into_another() -> None:
    app = source_root() / "firmware" / "app"
    texts = {name: (app / name).read_text() for name in (*COMMAND_FILES, "commands.c")}
    defined = {name: _defined(text) for name, text in texts.items()}
    assert all(defined[name] for name in COMMAND_FILES)  # the pattern finds each file's commands
    crossing = []
    for caller, text in texts.items():
        for callee in COMMAND_FILES:
            if callee == caller:
                continue
            # commands.c dispatches to every family (its command table): only that direction is allowed.
            calls = {f for f in defined[callee] if re.search(rf"\b{f}\(", text)}
            if calls and caller != "commands.c":
                crossing.append(f"{caller} -> {callee}: {sorted(calls)}")
    for callee_name in COMMAND_FILES:
        used = {f for f in defined["commands.c"] if re.search(rf"\b{f}\(", texts[callee_name])}
        if used:
            crossing.append(f"{callee_name} -> commands.c: {sorted(used)}")
    assert crossing == []
