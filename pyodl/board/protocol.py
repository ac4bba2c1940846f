"""The firmware's command set, as both transports carry it (:mod:`pyodl.board.mailbox`,
:mod:`pyodl.board.uart`).

Every number and layout comes from the firmware's headers (``firmware/app/app.h`` for the commands, the
mailbox and the frames; ``firmware/odl/odl.h`` for the library's statuses), read by
:mod:`pyodl.toolchain.headers`: change the header and this module follows. Only the human-readable status
messages are written here, keyed by the C enumerator's name.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Protocol, runtime_checkable

import numpy as np

from pyodl.toolchain import headers

PROTOCOL_VERSION = headers.define("ODL_PROTOCOL_VERSION")
MAILBOX_MAGIC = headers.define("ODL_MAILBOX_MAGIC")
MAILBOX_HEADER_BYTES = headers.define("ODL_MAILBOX_HEADER_BYTES")
SYNC_REQUEST = headers.define("ODL_FRAME_SYNC_REQUEST")
SYNC_RESPONSE = headers.define("ODL_FRAME_SYNC_RESPONSE")
FIELDS_BYTES = headers.define("ODL_FRAME_FIELDS_BYTES")
REPLY_FIELDS_BYTES = headers.define("ODL_FRAME_REPLY_FIELDS_BYTES")
HEADER_BYTES = headers.define("ODL_FRAME_HEADER_BYTES")
FRAME_TIMEOUT_S = headers.define("ODL_FRAME_TIMEOUT_MS") / 1000  # the firmware drops a frame this late
DATA_MIN_FLOATS = headers.define("ODL_DATA_MIN_FLOATS")  # the data area holds a window, or at least this
MAILBOX = headers.struct_layout("odl_mailbox_t")  # field name -> offset and words
INFO_LAYOUT = headers.struct_layout("odl_info_t")  # ODL_CMD_INFO's answer, word by word
INFO_FIELDS = tuple(INFO_LAYOUT)
INFO_FORMAT = "<" + "".join("f" if f.ctype == "float" else "I" for f in INFO_LAYOUT.values())
# STREAM_START's data, its query policy's fields named "policy.<field>".
STREAM_SETUP = headers.struct_layout("odl_stream_setup_t", nested={"odl_stream_config_t": "odl/odl_stream.h"})
STREAM_SETUP_FORMAT = "<" + "".join("f" if f.ctype == "float" else "I" for f in STREAM_SETUP.values())

Command = IntEnum(  # type: ignore[misc]
    "Command",
    {name.removeprefix("ODL_CMD_"): value
     for name, value in headers.enum("odl_command_t", prefix="ODL_CMD_").items() if name != "ODL_CMD_NONE"},
)

_MESSAGES = {
    "ODL_OK": "ok",
    "ODL_ERR_NULL": "NULL pointer",
    "ODL_ERR_MODEL": "inconsistent model table",
    "ODL_ERR_LABEL": "label out of range",
    "ODL_ERR_NONFINITE": "NaN or infinity in an input, the loss or a gradient (nothing changed)",
    "ODL_ERR_LEARNING_RATE": "learning rate is not a finite number > 0",
    "ODL_ERR_NO_SAMPLES": "SGD step with no accumulated sample",
    "ODL_ERR_TRAINABLE": "trainable layer count out of range for this build",
    "ODL_ERR_LAYER": "layer index out of range or layer without parameters",
    "ODL_ERR_FROZEN": "the layer is frozen (const, in flash) in this build",
    "ODL_ERR_SIZE": "element count does not match the layer",
    "ODL_ERR_STEP_REJECTED": "step rejected: a parameter would leave the bound (weights unchanged, batch cleared)",
    "ODL_ERR_PARAM_RANGE": "a parameter is NaN or beyond the model's bound (nothing written)",
    "ODL_ERR_UNSUPPORTED": "no int8 kernel for a layer (LeakyReLU, tanh, sigmoid) or a bit width (nothing quantized)",
    "ODL_ERR_QUANT_RANGE": "a scale ratio beyond int8 fixed point (nothing quantized)",
    "ODL_ERR_NO_CALIBRATION": "no calibration window yet: calibrate before quantizing",
    "ODL_ERR_NOT_QUANTIZED": "no quantized model: calibrate and quantize first (a training sample erases it, "
                             "since it shares the gradients' RAM: quantize again after training)",
    "ODL_ERR_BATCH_OPEN": "a batch is accumulated and the int8 copy shares its RAM: step (or zero the "
                          "gradients) before calibrating or quantizing",
    "ODL_APP_ERR_COMMAND": "unknown command",
    "ODL_APP_ERR_ARGS": "argument out of range",
    "ODL_APP_ERR_LENGTH": "data length does not fit the command",
    "ODL_APP_ERR_NO_SAMPLE": "no window loaded yet",
    "ODL_APP_ERR_CRC": "frame CRC mismatch",
    "ODL_APP_ERR_FRAME": "frame longer than the firmware accepts",
    "ODL_APP_ERR_NO_SLOT": "no flash slot holds a valid copy for this model",
    "ODL_APP_ERR_FLASH": "a flash operation failed (result 0: the controller's error bits)",
}
# The library's statuses, then the application's own (from 32 up).
STATUS_CODES = headers.enum("odl_status_t", headers.LIBRARY_HEADER) | headers.enum("odl_app_status_t")
# A status the headers gained without a message here still reads as its C name.
STATUS_NAMES = {code: _MESSAGES.get(name, name) for name, code in STATUS_CODES.items()}
OPTIMIZER_KINDS = headers.enum("odl_optimizer_kind_t", headers.LIBRARY_HEADER)  # C name -> INFO's optimizer
CLOCK_STATUSES = headers.enum("odl_clock_status_t")  # C name -> INFO's clock_status
STATUS_FROZEN = STATUS_CODES["ODL_ERR_FROZEN"]
STATUS_CRC = STATUS_CODES["ODL_APP_ERR_CRC"]
STATUS_FRAME = STATUS_CODES["ODL_APP_ERR_FRAME"]


class CommandError(RuntimeError):
    """The firmware refused a command; ``status`` is its status code."""

    def __init__(self, command: str, status: int) -> None:
        name = STATUS_NAMES.get(status, "unknown status")
        super().__init__(f"{command} failed with status {status}: {name}")
        self.status = status


class ProtocolError(RuntimeError):
    """The bytes that came back are not a well-formed answer (bad sync, CRC, or a timeout)."""


@dataclass(frozen=True)
class Request:
    command: int
    args: tuple[int, int, int, int] = (0, 0, 0, 0)
    arg_f: float = 0.0
    data: bytes = b""


@dataclass(frozen=True)
class Reply:
    status: int
    results: tuple[int, int, int, int]
    result_f: float
    data: bytes
    cycles: int = 0  # core cycles the command took, from the firmware's DWT cycle counter


class Transport(Protocol):
    """Carries one request to the firmware and its reply back: the RAM mailbox or UART frames."""

    def execute(self, request: Request) -> Reply: ...


@runtime_checkable
class DatasetMemory(Protocol):
    """A transport that writes the firmware's dataset region directly (a simulator's memory, one transfer),
    instead of through STORE_DATASET commands of a data area's worth each."""

    def store_dataset(self, offset: int, data: bytes) -> None: ...


# Four u32 arguments (results) and one float argument (result): the mailbox's and a frame's fields.
FIELDS = struct.Struct("<4If")
# A reply's: the four u32 results, the float result and the command's cycles, as the mailbox holds them.
REPLY_FIELDS = struct.Struct("<4IfI")
if FIELDS.size != FIELDS_BYTES or FIELDS.size != MAILBOX["result_f"].offset + 4 - MAILBOX["result"].offset:
    raise headers.HeaderError("firmware/app/app.h: the frame fields and the mailbox's results differ in size")
if REPLY_FIELDS.size != REPLY_FIELDS_BYTES or MAILBOX["cycles"].offset != MAILBOX["result_f"].offset + 4:
    raise headers.HeaderError("firmware/app/app.h: a reply's fields are not the mailbox's results and cycles")


def pack_fields(request: Request) -> bytes:
    for v in request.args:
        if not 0 <= v <= 0xFFFF_FFFF:
            raise ValueError(f"argument {v} does not fit in 32 bits")
    return FIELDS.pack(*request.args, request.arg_f)


def floats(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype="<f4").astype(np.float32)
