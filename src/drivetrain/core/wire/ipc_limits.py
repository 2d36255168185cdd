"""Size caps for an untrusted Arrow IPC stream, checked before anything is decompressed.

A zstd-compressed Arrow body of a few kilobytes can declare millions of rows: decoding it with
``pyarrow.ipc`` allocates all of them. :func:`check_ipc_stream` walks the stream's framing
instead — each message's flatbuffer header (Arrow ``format/Message.fbs``) and, for compressed
bodies, the 8-byte uncompressed-length prefix of each buffer — and refuses a stream whose
rows, dictionary entries, decompressed bytes or message count exceed the caps, with
:class:`~drivetrain.core.errors.PayloadTooLargeError`. Framing it cannot follow is a
:class:`~drivetrain.core.errors.WireFormatError`. Pure, no allocation proportional to the
declared sizes.

Stream layout (Arrow columnar format, "Encapsulated message format")::

    0xFFFFFFFF  int32 metadata_size  metadata (flatbuffer Message)  body (Message.bodyLength)
    ...
    0xFFFFFFFF  0x00000000                                       end of stream
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from drivetrain.core.errors import PayloadTooLargeError, WireFormatError

_CONTINUATION: Final = 0xFFFFFFFF
# MessageHeader union members (Message.fbs).
_SCHEMA, _DICTIONARY_BATCH, _RECORD_BATCH = 1, 2, 3
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_I32 = struct.Struct("<i")
_I64 = struct.Struct("<q")
_BUFFER = struct.Struct("<qq")  # Buffer {offset, length}


@dataclass(frozen=True, slots=True)
class IpcLimits:
    """Most a telemetry body may declare.

    Attributes:
        max_rows: rows of all record batches together (samples).
        max_dictionary_entries: entries of all dictionary batches together (distinct paths).
        max_decompressed_bytes: the buffers' bytes once decompressed.
        max_messages: IPC messages in the stream (schema, dictionaries, record batches).
    """

    max_rows: int = 100_000
    max_dictionary_entries: int = 100_000
    max_decompressed_bytes: int = 32 * 1024 * 1024
    max_messages: int = 1_000


@dataclass(frozen=True, slots=True)
class IpcSize:
    """What a stream declares: rows, dictionary entries, decompressed bytes, messages."""

    rows: int
    dictionary_entries: int
    decompressed_bytes: int
    messages: int


class _Flatbuffer:
    """Bounds-checked reads of one flatbuffer (every bad offset is a WireFormatError)."""

    def __init__(self, data: memoryview) -> None:
        self.data = data

    def _read(self, fmt: struct.Struct, at: int) -> int:
        if at < 0 or at + fmt.size > len(self.data):
            raise WireFormatError("Arrow IPC message header: an offset points outside it")
        value: int = fmt.unpack_from(self.data, at)[0]
        return value

    def root(self) -> int:
        return self._read(_U32, 0)

    def field(self, table: int, index: int) -> int:
        """Absolute position of field ``index`` of the table at ``table``, or 0 if absent."""
        vtable = table - self._read(_I32, table)
        vtable_size = self._read(_U16, vtable)
        slot = 4 + 2 * index
        if slot + 2 > vtable_size:
            return 0
        offset = self._read(_U16, vtable + slot)
        return table + offset if offset else 0

    def scalar(self, table: int, index: int, fmt: struct.Struct, default: int = 0) -> int:
        at = self.field(table, index)
        return self._read(fmt, at) if at else default

    def table(self, table: int, index: int) -> int:
        """Position of the sub-table (or vector) that field ``index`` points to, or 0."""
        at = self.field(table, index)
        return at + self._read(_U32, at) if at else 0

    def vector_length(self, vector: int) -> int:
        return self._read(_U32, vector)


def check_ipc_stream(body: bytes | memoryview, limits: IpcLimits) -> IpcSize:
    """The sizes the Arrow IPC stream ``body`` declares, if they are within ``limits``.

    Raises:
        PayloadTooLargeError: more rows, dictionary entries, decompressed bytes or messages
            than ``limits`` allow (nothing was decompressed).
        WireFormatError: framing that is not an Arrow IPC stream (truncated, bad offsets).
    """
    data = memoryview(body)
    position = rows = entries = decompressed = messages = 0
    while True:
        if position + 4 > len(data):
            raise WireFormatError("Arrow IPC stream ends without its end-of-stream marker")
        size = _U32.unpack_from(data, position)[0]
        position += 4
        if size == _CONTINUATION:
            if position + 4 > len(data):
                raise WireFormatError("Arrow IPC stream is truncated after a continuation marker")
            size = _U32.unpack_from(data, position)[0]
            position += 4
        if size == 0:
            return IpcSize(rows, entries, decompressed, messages)
        messages += 1
        if messages > limits.max_messages:
            raise PayloadTooLargeError(
                f"telemetry body holds more than {limits.max_messages} Arrow IPC messages"
            )
        if size > len(data) - position:
            raise WireFormatError(
                f"Arrow IPC message header of {size} bytes runs past the end of the body"
            )
        header = _Flatbuffer(data[position : position + size])
        position += size
        message = header.root()
        kind = header.scalar(message, 1, struct.Struct("<B"))
        body_length = header.scalar(message, 3, _I64)
        if body_length < 0 or body_length > len(data) - position:
            raise WireFormatError(
                f"Arrow IPC message body of {body_length} bytes runs past the end of the body"
            )
        message_body = data[position : position + body_length]
        position += body_length
        if kind == _RECORD_BATCH:
            batch = header.table(message, 2)
            rows += _batch_rows(header, batch)
            decompressed += _decompressed_bytes(header, batch, message_body)
        elif kind == _DICTIONARY_BATCH:
            batch = header.table(header.table(message, 2), 1)
            entries += _batch_rows(header, batch) if batch else 0
            decompressed += _decompressed_bytes(header, batch, message_body) if batch else 0
        elif kind != _SCHEMA:
            raise WireFormatError(f"Arrow IPC message of type {kind} in a telemetry body")
        _check(rows, entries, decompressed, limits)


def _batch_rows(header: _Flatbuffer, batch: int) -> int:
    if not batch:
        raise WireFormatError("Arrow IPC record batch message without its header")
    length = header.scalar(batch, 0, _I64)
    if length < 0:
        raise WireFormatError(f"Arrow IPC record batch declares {length} rows")
    return length


def _decompressed_bytes(header: _Flatbuffer, batch: int, body: memoryview) -> int:
    """Bytes the batch's buffers take once decompressed, from their length prefixes."""
    buffers = header.table(batch, 2)
    compressed = header.field(batch, 3) != 0
    if not buffers:
        return 0
    total = 0
    count = header.vector_length(buffers)
    if buffers + 4 + _BUFFER.size * count > len(header.data):
        raise WireFormatError("Arrow IPC message header: its buffer list runs past its end")
    for i in range(count):
        offset, length = _BUFFER.unpack_from(header.data, buffers + 4 + _BUFFER.size * i)
        if offset < 0 or length < 0 or offset + length > len(body):
            raise WireFormatError("Arrow IPC buffer lies outside its message body")
        if not compressed or length == 0:
            total += length
            continue
        if length < 8:
            raise WireFormatError("Arrow IPC compressed buffer is shorter than its length prefix")
        declared = _I64.unpack_from(body, offset)[0]
        if declared == -1:  # stored uncompressed
            total += length - 8
        elif declared < 0:
            raise WireFormatError(f"Arrow IPC compressed buffer declares {declared} bytes")
        else:
            total += declared
    return total


def _check(rows: int, entries: int, decompressed: int, limits: IpcLimits) -> None:
    if rows > limits.max_rows:
        raise PayloadTooLargeError(
            f"telemetry body declares {rows} or more samples; at most {limits.max_rows} "
            "are accepted per message"
        )
    if entries > limits.max_dictionary_entries:
        raise PayloadTooLargeError(
            f"telemetry body declares {entries} or more dictionary entries; at most "
            f"{limits.max_dictionary_entries} are accepted per message"
        )
    if decompressed > limits.max_decompressed_bytes:
        raise PayloadTooLargeError(
            f"telemetry body decompresses to {decompressed} bytes or more; at most "
            f"{limits.max_decompressed_bytes} are accepted per message"
        )
