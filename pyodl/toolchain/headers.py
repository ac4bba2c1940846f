"""Numbers and layouts read from the firmware's C headers, so the host never keeps a second copy of them.

The parser knows exactly the forms the headers use: ``#define NAME 123u`` (or ``0x...u``), enumerators
written ``NAME = value``, and structs of 32-bit fields (``uint32_t``, ``float``, optionally ``volatile``,
optionally an array whose length is a number or a define). Anything else is an error that names the
header, never a silently wrong offset.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from pyodl.toolchain.sources import firmware_file

APP_HEADER = "app/app.h"
LIBRARY_HEADER = "odl/odl.h"

_DEFINE = re.compile(r"^#define\s+(\w+)\s+(0x[0-9A-Fa-f]+|\d+)u?\b", re.M)
_ENUMERATOR = re.compile(r"\b([A-Z][A-Z0-9_]*)\s*=\s*(0x[0-9A-Fa-f]+|\d+)")
_WORD_FIELD = re.compile(r"^\s*(?:volatile\s+)?(uint32_t|float)\s+([\w\s,\[\]]+);", re.M)


class HeaderError(RuntimeError):
    """A firmware header does not have the form this pyodl reads."""


@dataclass(frozen=True)
class Field:
    name: str
    offset: int  # bytes from the start of the struct
    count: int  # 32-bit words
    ctype: str = "uint32_t"  # or "float"


@cache
def _text(relative: str) -> str:
    return Path(firmware_file(relative)).read_text()


def _strip_comments(text: str) -> str:
    return re.sub(r"/\*.*?\*/", "", text, flags=re.S)


def defines(relative: str = APP_HEADER) -> dict[str, int]:
    """Every ``#define NAME <integer>`` of a header."""
    return {name: int(value, 0) for name, value in _DEFINE.findall(_strip_comments(_text(relative)))}


def define(name: str, relative: str = APP_HEADER) -> int:
    try:
        return defines(relative)[name]
    except KeyError:
        raise HeaderError(f"firmware/{relative} defines no integer {name}") from None


def _typedef_body(relative: str, kind: str, type_name: str) -> str:
    text = _strip_comments(_text(relative))
    match = re.search(rf"typedef\s+{kind}\s*\{{([^{{}}]*)\}}\s*{type_name}\s*;", text)
    if match is None:
        raise HeaderError(f"firmware/{relative} has no `typedef {kind} {{...}} {type_name};`")
    return match.group(1)


def enum(type_name: str, relative: str = APP_HEADER, prefix: str = "") -> dict[str, int]:
    """The explicitly numbered enumerators of ``typedef enum {...} type_name;`` starting with ``prefix``."""
    body = _typedef_body(relative, "enum", type_name)
    return {name: int(value, 0) for name, value in _ENUMERATOR.findall(body) if name.startswith(prefix)}


def struct_layout(type_name: str, relative: str = APP_HEADER,
                  nested: dict[str, str] | None = None) -> dict[str, Field]:
    """Fields of a struct made of 32-bit words, by name, with their byte offsets. ``nested``: struct types its
    fields may have (type name -> header), whose words are laid out in place as ``field.subfield``."""
    body = _typedef_body(relative, "struct", type_name)
    statements = [s.strip() for s in body.split(";") if s.strip()]
    fields: dict[str, Field] = {}
    offset = 0
    for statement in statements:
        match = _WORD_FIELD.match(statement + ";")
        inner = statement.split()
        if match is None and nested and len(inner) == 2 and inner[0] in nested:
            subfields = struct_layout(inner[0], nested[inner[0]]).values()
            for sub in subfields:
                name = f"{inner[1]}.{sub.name}"
                fields[name] = Field(name, offset + sub.offset, sub.count, sub.ctype)
            offset += 4 * sum(sub.count for sub in subfields)
            continue
        if match is None:
            raise HeaderError(f"firmware/{relative}: {type_name} has a field pyodl cannot lay out: {statement!r}")
        for declarator in match.group(2).split(","):
            name, _, length = declarator.strip().partition("[")
            count = 1
            if length:
                size = length.rstrip("]").strip()
                count = int(size, 0) if size[0].isdigit() else _array_length(size, relative)
            fields[name.strip()] = Field(name.strip(), offset, count, match.group(1))
            offset += 4 * count
    return fields


def _array_length(name: str, relative: str) -> int:
    """An array length given by a define; a length that depends on the model (e.g. ODL_DATA_FLOATS) has no
    fixed value and counts as 0 words, so it may only be the last field."""
    return defines(relative).get(name, 0)
