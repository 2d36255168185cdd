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
_U8 = struct.Struct("<B")
_PAIR = struct.Struct("<qq")  # FieldNode {length, null_count}, Buffer {offset, length}
_OUTSIDE: Final = "Arrow IPC message header: an offset points outside it"


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
    """Bounds-checked reads of one flatbuffer (every bad offset is a WireFormatError).

    The reads are written out rather than layered (every telemetry message takes some 80 of
    them, on the ingest hot path): each checks its bounds before ``unpack_from``, which would
    read a negative position from the end.
    """

    __slots__ = ("data", "size")

    def __init__(self, data: memoryview) -> None:
        self.data = data
        self.size = len(data)

    def _read(self, fmt: struct.Struct, at: int) -> int:
        if at < 0 or at + fmt.size > self.size:
            raise WireFormatError(_OUTSIDE)
        value: int = fmt.unpack_from(self.data, at)[0]
        return value

    def root(self) -> int:
        return self._read(_U32, 0)

    def field(self, table: int, index: int) -> int:
        """Absolute position of field ``index`` of the table at ``table``, or 0 if absent."""
        data, size = self.data, self.size
        if table < 0 or table + 4 > size:
            raise WireFormatError(_OUTSIDE)
        vtable = table - _I32.unpack_from(data, table)[0]
        if vtable < 0 or vtable + 2 > size:
            raise WireFormatError(_OUTSIDE)
        slot = 4 + 2 * index
        if slot + 2 > _U16.unpack_from(data, vtable)[0]:
            return 0
        if vtable + slot + 2 > size:
            raise WireFormatError(_OUTSIDE)
        offset: int = _U16.unpack_from(data, vtable + slot)[0]
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


@dataclass(frozen=True, slots=True)
class IpcHeader:
    """What one message's flatbuffer header declares (a pure function of its bytes): its
    kind (1 schema, 2 dictionary batch, 3 record batch), body length, and for batches the
    rows, field nodes ``(length, null_count)``, buffers ``(offset, length)`` in the body, the
    compression codec (None, 0 LZ4 frame, 1 zstd), and for dictionary batches its id and
    delta flag."""

    kind: int
    body_length: int
    rows: int = 0
    nodes: tuple[tuple[int, int], ...] = ()
    buffers: tuple[tuple[int, int], ...] = ()
    codec: int | None = None
    dictionary_id: int = 0
    is_delta: bool = False


@dataclass(frozen=True, slots=True)
class IpcMessage:
    """One message of a checked stream: its header, flatbuffer bytes and body."""

    header: IpcHeader
    metadata: memoryview
    body: memoryview

    @property
    def kind(self) -> int:
        return self.header.kind

    @property
    def rows(self) -> int:
        return self.header.rows

    @property
    def nodes(self) -> tuple[tuple[int, int], ...]:
        return self.header.nodes

    @property
    def buffers(self) -> tuple[tuple[int, int], ...]:
        return self.header.buffers

    @property
    def codec(self) -> int | None:
        return self.header.codec

    @property
    def is_delta(self) -> bool:
        return self.header.is_delta


def check_ipc_stream(body: bytes | memoryview, limits: IpcLimits) -> IpcSize:
    """The sizes the Arrow IPC stream ``body`` declares, if they are within ``limits``.

    Raises:
        PayloadTooLargeError: more rows, dictionary entries, decompressed bytes or messages
            than ``limits`` allow (nothing was decompressed).
        WireFormatError: framing that is not an Arrow IPC stream (truncated, bad offsets).
    """
    return read_ipc_layout(body, limits)[1]


def read_ipc_layout(
    body: bytes | memoryview, limits: IpcLimits
) -> tuple[list[IpcMessage], IpcSize]:
    """The messages of the Arrow IPC stream ``body`` and the sizes they declare, checked
    against ``limits`` as :func:`check_ipc_stream` does."""
    data = memoryview(body)
    position = rows = entries = decompressed = 0
    messages: list[IpcMessage] = []
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
            return messages, IpcSize(rows, entries, decompressed, len(messages))
        if len(messages) >= limits.max_messages:
            raise PayloadTooLargeError(
                f"telemetry body holds more than {limits.max_messages} Arrow IPC messages"
            )
        if size > len(data) - position:
            raise WireFormatError(
                f"Arrow IPC message header of {size} bytes runs past the end of the body"
            )
        metadata = data[position : position + size]
        position += size
        header = _header(metadata)
        if header.body_length > len(data) - position:
            raise WireFormatError(
                f"Arrow IPC message body of {header.body_length} bytes runs past the end of "
                "the body"
            )
        message_body = data[position : position + header.body_length]
        position += header.body_length
        for offset, length in header.buffers:
            if offset + length > len(message_body):
                raise WireFormatError("Arrow IPC buffer lies outside its message body")
        parsed = IpcMessage(header, metadata, message_body)
        if header.kind == _RECORD_BATCH:
            rows += header.rows
        elif header.kind == _DICTIONARY_BATCH:
            entries += header.rows
        decompressed += _decompressed_bytes(parsed)
        messages.append(parsed)
        _check(rows, entries, decompressed, limits)


#: Headers of schema and dictionary messages already read, by their bytes: a vehicle sends
#: the same two, byte for byte, message after message (record batches' headers differ).
_KNOWN_HEADERS: dict[bytes, IpcHeader] = {}
#: Most headers kept (a few hundred bytes each); past it the cache starts afresh.
MAX_KNOWN_HEADERS: Final = 4096


def _header(metadata: memoryview) -> IpcHeader:
    """The header of one message, checked (offsets inside it, no negative sizes)."""
    key = bytes(metadata)
    known = _KNOWN_HEADERS.get(key)
    if known is not None:
        return known
    header = _Flatbuffer(metadata)
    message = header.root()
    kind = header.scalar(message, 1, _U8)
    body_length = header.scalar(message, 3, _I64)
    if body_length < 0:
        raise WireFormatError(
            f"Arrow IPC message body of {body_length} bytes runs past the end of the body"
        )
    if kind == _RECORD_BATCH:
        return _batch(header, header.table(message, 2), kind, body_length)
    if kind == _DICTIONARY_BATCH:
        dictionary = header.table(message, 2)
        if not dictionary:
            raise WireFormatError("Arrow IPC dictionary batch message without its header")
        parsed = _batch(
            header,
            header.table(dictionary, 1),
            kind,
            body_length,
            dictionary_id=header.scalar(dictionary, 0, _I64),
            is_delta=bool(header.scalar(dictionary, 2, _U8)),
        )
    elif kind == _SCHEMA:
        parsed = IpcHeader(kind, body_length)
    else:
        raise WireFormatError(f"Arrow IPC message of type {kind} in a telemetry body")
    if len(_KNOWN_HEADERS) >= MAX_KNOWN_HEADERS:
        _KNOWN_HEADERS.clear()
    _KNOWN_HEADERS[key] = parsed
    return parsed


def _batch(
    header: _Flatbuffer,
    batch: int,
    kind: int,
    body_length: int,
    *,
    dictionary_id: int = 0,
    is_delta: bool = False,
) -> IpcHeader:
    rows = _batch_rows(header, batch)
    nodes = _structs(header, header.table(batch, 1))
    buffers = _structs(header, header.table(batch, 2))
    for offset, length in buffers:
        if offset < 0 or length < 0:
            raise WireFormatError("Arrow IPC buffer lies outside its message body")
    compression = header.table(batch, 3)
    codec = header.scalar(compression, 0, _U8) if compression else None
    return IpcHeader(kind, body_length, rows, nodes, buffers, codec, dictionary_id, is_delta)


def _structs(header: _Flatbuffer, vector: int) -> tuple[tuple[int, int], ...]:
    """A vector of 16-byte structs of two int64 (FieldNode, Buffer)."""
    if not vector:
        return ()
    count = header.vector_length(vector)
    if vector + 4 + _PAIR.size * count > len(header.data):
        raise WireFormatError("Arrow IPC message header: a vector runs past its end")
    return tuple(_PAIR.iter_unpack(header.data[vector + 4 : vector + 4 + _PAIR.size * count]))


def _batch_rows(header: _Flatbuffer, batch: int) -> int:
    if not batch:
        raise WireFormatError("Arrow IPC record batch message without its header")
    length = header.scalar(batch, 0, _I64)
    if length < 0:
        raise WireFormatError(f"Arrow IPC record batch declares {length} rows")
    return length


def _decompressed_bytes(message: IpcMessage) -> int:
    """Bytes the message's buffers take once decompressed, from their length prefixes."""
    total = 0
    for offset, length in message.buffers:
        if message.codec is None or length == 0:
            total += length
            continue
        if length < 8:
            raise WireFormatError("Arrow IPC compressed buffer is shorter than its length prefix")
        declared = _I64.unpack_from(message.body, offset)[0]
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
