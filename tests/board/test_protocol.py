"""The protocol's vocabulary, read from the firmware's headers: every command and status has a name, and
the mailbox layout the host uses is the one the compiler lays out."""

from __future__ import annotations

from pyodl.board import protocol
from pyodl.toolchain import headers


def test_every_status_of_the_headers_has_a_message() -> None:
    codes = headers.enum("odl_status_t", headers.LIBRARY_HEADER) | headers.enum("odl_app_status_t")
    assert set(protocol.STATUS_NAMES) == set(codes.values())
    unnamed = [name for name, code in codes.items() if protocol.STATUS_NAMES[code] == name]
    assert not unnamed, f"statuses without a message in pyodl/board/protocol.py: {unnamed}"
    assert len(set(protocol.STATUS_NAMES.values())) == len(codes), "two statuses share a message"


def test_commands_are_the_headers_commands() -> None:
    expected = {n.removeprefix("ODL_CMD_"): v for n, v in headers.enum("odl_command_t", prefix="ODL_CMD_").items()}
    expected.pop("NONE")
    assert {c.name: c.value for c in protocol.Command} == expected
    assert protocol.Command.SGD_STEP == 8 and protocol.Command.PREDICT == 10  # the protocol-1 numbering


def test_frame_fields_match_the_mailbox_results() -> None:
    assert protocol.FIELDS.size == protocol.FIELDS_BYTES == 20
    assert protocol.MAILBOX["data"].offset == protocol.MAILBOX_HEADER_BYTES
    assert protocol.INFO_FIELDS[:2] == ("protocol_version", "model_hash")
