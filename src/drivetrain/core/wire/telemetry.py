"""The telemetry body (wire format v1): signal samples as one compressed Arrow IPC stream.

Columnar so that a receiver validates and stores a batch with vectorised code and zero
per-sample Python; Arrow IPC so that any Arrow implementation (C++, Rust, Java, JS) can read it.
Buffers are compressed with the IPC format's own zstd codec.

Schema (``TELEMETRY_SCHEMA``), one row per sample:

    path   dictionary<int16, utf8>   VSS path, e.g. "Vehicle.Speed"
    ts     timestamp[ns, UTC]        when the value was measured (vehicle clock)
    value  float64, nullable         numeric and boolean values (booleans as 0.0/1.0)
    text   utf8, nullable            string values; exactly one of value/text is non-null

Receivers must accept extra columns (ignored) so that later versions can add some.

The envelope header of a telemetry batch may carry ``campaign``: the id of the collection
campaign that collected every sample of the batch (``default`` for the default collection;
absent for samples no campaign collected, such as a desired-state report). It is signed with
the rest of the header, so the cloud can file each sample under its campaign.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, cast

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import zstandard

from drivetrain.core.crypto import SigningKey
from drivetrain.core.errors import WireFormatError
from drivetrain.core.wire.envelope import Envelope, MessageKind, seal
from drivetrain.core.wire.ipc_limits import IpcLimits, IpcMessage, read_ipc_layout
from drivetrain.core.wire.session import VehicleSession

TELEMETRY_SCHEMA: Final = pa.schema(
    [
        pa.field("path", pa.dictionary(pa.int16(), pa.utf8()), nullable=False),
        pa.field("ts", pa.timestamp("ns", tz="UTC"), nullable=False),
        pa.field("value", pa.float64()),
        pa.field("text", pa.utf8()),
    ]
)
# One thread: a batch is a few thousand rows, too small for the pool's hand-offs to pay (they
# cost a quarter of the encoding), and a vehicle's CPU has other work.
_IPC_OPTIONS: Final = pa.ipc.IpcWriteOptions(compression="zstd", use_threads=False)
#: Header field naming the campaign that collected a telemetry batch.
CAMPAIGN_HEADER: Final = "campaign"
#: Header field with the W3C trace context of the span that sealed the batch (optional).
TRACEPARENT_HEADER: Final = "traceparent"
_CAMPAIGN_ID: Final = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")


def samples_table(
    paths: Sequence[str],
    path_index: npt.ArrayLike,
    ts_ns: npt.ArrayLike,
    values: npt.ArrayLike,
    texts: Sequence[str | None] | None = None,
) -> pa.Table:
    """Build a telemetry table from a path dictionary and per-sample columns.

    Args:
        paths: the distinct VSS paths of the batch (the dictionary).
        path_index: per sample, the index of its path in ``paths``.
        ts_ns: per sample, nanoseconds since the Unix epoch.
        values: per sample, the numeric value (NaN where the sample is a string).
        texts: per sample, the string value or None; omit when the batch has no strings.

    Raises:
        ValueError: columns of different lengths or an index outside ``paths``.
    """
    index = np.asarray(path_index, dtype=np.int16)
    ts = np.asarray(ts_ns, dtype=np.int64)
    value = np.asarray(values, dtype=np.float64)
    if not (len(index) == len(ts) == len(value)) or (texts is not None and len(texts) != len(ts)):
        raise ValueError("path_index, ts_ns, values (and texts) must have the same length")
    if len(index) and (index.min() < 0 or index.max() >= len(paths)):
        raise ValueError(f"path_index holds values outside 0..{len(paths) - 1}")
    text_array = pa.array(texts, type=pa.utf8()) if texts is not None else pa.nulls(len(ts), pa.utf8())
    value_array = pa.array(value, mask=np.isnan(value) if texts is not None else None)
    columns = [
        pa.DictionaryArray.from_arrays(pa.array(index), pa.array(list(paths), type=pa.utf8())),
        pa.array(ts, type=pa.timestamp("ns", tz="UTC")),
        value_array,
        text_array,
    ]
    return pa.Table.from_arrays(columns, schema=TELEMETRY_SCHEMA)


def encode_samples(table: pa.Table) -> bytes:
    """Serialise a telemetry table as a zstd-compressed Arrow IPC stream.

    Raises:
        ValueError: the table's schema is not ``TELEMETRY_SCHEMA``.
    """
    if not table.schema.equals(TELEMETRY_SCHEMA):
        raise ValueError(f"telemetry table schema is {table.schema}; expected {TELEMETRY_SCHEMA}")
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, TELEMETRY_SCHEMA, options=_IPC_OPTIONS) as writer:
        writer.write_table(table)
    data: bytes = sink.getvalue().to_pybytes()
    return data


def decode_samples(body: bytes, limits: IpcLimits | None = None) -> pa.Table:
    """Read a telemetry body back into a table with (at least) the ``TELEMETRY_SCHEMA`` columns.

    The body is untrusted: its declared sizes are checked against ``limits`` (default
    :class:`IpcLimits`) before anything is decompressed, and every string (the path
    dictionary, the text column) is checked to be valid UTF-8 before it is returned.

    A body laid out the way :func:`encode_samples` writes it (the telemetry schema, one
    dictionary, zstd or no compression) is assembled straight from its buffers, with one
    reused zstd context per thread — pyarrow's IPC reader sets up a codec per buffer, which
    costs more than the rest of a small message's ingestion. Any other valid stream goes
    through ``pyarrow.ipc``.

    Raises:
        PayloadTooLargeError: more rows, dictionary entries or decompressed bytes than
            ``limits`` allow.
        WireFormatError: not an Arrow IPC stream, a required column missing or mistyped,
            invalid UTF-8, a dictionary index outside its dictionary — any failure to read it.
    """
    messages, _ = read_ipc_layout(body, limits or IpcLimits())
    return _table(body, messages)


@dataclass(frozen=True, slots=True)
class SampleArrays:
    """A telemetry body's columns as NumPy arrays, read without building Arrow arrays.

    ``path_index`` indexes ``dictionary`` (every index is inside it); ``value_valid`` is
    False where ``value`` is null; ``text`` is the text column (valid UTF-8, no NUL).
    """

    dictionary: pa.Array
    path_index: npt.NDArray[np.int16]
    ts_ns: npt.NDArray[np.int64]
    value: npt.NDArray[np.float64]
    value_valid: npt.NDArray[np.bool_]
    text: pa.Array

    def __len__(self) -> int:
        return len(self.ts_ns)


def decode_sample_arrays(body: bytes, limits: IpcLimits | None = None) -> SampleArrays | pa.Table:
    """Read a telemetry body as :func:`decode_samples` does, with the same checks, but a body
    laid out as a vehicle writes it (:func:`encode_samples`: the schema, one dictionary
    batch, one record batch with no null path or time) comes back as :class:`SampleArrays`
    straight from its buffers — the receiver's per-message path, a third of the cost of
    building the table. Any other valid body comes back as the table.

    Raises:
        PayloadTooLargeError, WireFormatError: as :func:`decode_samples`.
    """
    messages, _ = read_ipc_layout(body, limits or IpcLimits())
    try:
        arrays = _sample_arrays(messages)
    except WireFormatError:
        raise
    except Exception as e:  # untrusted bytes: every failure is a format error
        raise _unreadable(e) from e
    return arrays if arrays is not None else _table(body, messages)


def _unreadable(error: Exception) -> WireFormatError:
    return WireFormatError(
        f"telemetry body is not a readable Arrow IPC stream: {type(error).__name__}: {error}"
    )


def _table(body: bytes, messages: list[IpcMessage]) -> pa.Table:
    """The table of a stream whose layout ``messages`` was read and checked."""
    try:
        table = _assembled(messages)
        if table is not None:  # each column was validated in full as it was assembled
            _refuse_nul(table, ("text",))  # the path dictionary was checked when decoded
            return table
        table = pa.ipc.open_stream(pa.py_buffer(body), options=_READ_OPTIONS).read_all()
    except WireFormatError:
        raise
    except Exception as e:  # untrusted bytes: every failure is a format error
        raise _unreadable(e) from e
    for expected in TELEMETRY_SCHEMA:
        index = table.schema.get_field_index(expected.name)
        if index < 0:
            raise WireFormatError(f"telemetry body has no column {expected.name!r}")
        actual = table.schema.field(index).type
        if not actual.equals(expected.type):
            raise WireFormatError(
                f"telemetry column {expected.name!r} is {actual}; expected {expected.type}"
            )
    table = table.select([f.name for f in TELEMETRY_SCHEMA])
    for name in ("path", "text"):
        column = table.column(name)
        try:  # full validation: UTF-8 of every string, dictionary indices in range
            column.validate(full=True)
        except Exception as e:  # untrusted bytes: every failure is a format error
            raise WireFormatError(f"telemetry column {name!r} is invalid: {e}") from e
    _refuse_nul(table)
    return table


def _refuse_nul(table: pa.Table, names: Sequence[str] = ("path", "text")) -> None:
    """Refuse a NUL character in the path or text column (valid UTF-8, but no database text
    column takes it: PostgreSQL refuses it)."""
    for name in names:
        column = table.column(name)
        strings = [c.dictionary if name == "path" else c for c in column.chunks]
        if any(_holds_nul(s) for s in strings if s.null_count < len(s)):
            raise WireFormatError(f"telemetry column {name!r} holds a NUL character")


def _holds_nul(strings: pa.Array) -> bool:
    """True if a (non-null) string of the valid UTF-8 array ``strings`` holds a NUL. In UTF-8
    a NUL character is the byte 0 and no other character contains that byte, so the strings'
    bytes are searched at once; only when a 0 byte is there (perhaps under a null slot) are
    the strings matched one by one."""
    offsets, data = strings.buffers()[1:3]
    if data is None or offsets is None:
        return False
    first = int(np.frombuffer(offsets, np.int32, 1, strings.offset * 4)[0])
    last = int(np.frombuffer(offsets, np.int32, 1, (strings.offset + len(strings)) * 4)[0])
    if memoryview(data)[first:last].tobytes().find(b"\x00") < 0:
        return False
    return bool(pc.any(pc.match_substring(strings, "\x00")).as_py())


_READ_OPTIONS: Final = pa.ipc.IpcReadOptions(use_threads=False)
_ZSTD: Final = 1
_EMPTY: Final = pa.py_buffer(b"")
_contexts = threading.local()
#: Decoded path dictionaries kept by :func:`_dictionary` (a few MB at most).
MAX_CACHED_DICTIONARIES: Final = 2048
_dictionaries: dict[bytes, pa.Array] = {}


def _schema_metadata() -> bytes:
    """The schema message header :func:`encode_samples` writes (the fast path's key)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, TELEMETRY_SCHEMA, options=_IPC_OPTIONS):
        pass
    messages, _ = read_ipc_layout(sink.getvalue().to_pybytes(), IpcLimits())
    return bytes(messages[0].metadata)


_SCHEMA_METADATA: Final = _schema_metadata()
#: Buffers per column of the telemetry schema: validity + data, or + offsets for strings.
_BUFFERS_PER_COLUMN: Final = (2, 2, 2, 3)


def _assembled(messages: list[IpcMessage]) -> pa.Table | None:
    """The table of a stream laid out as :func:`encode_samples` writes it, built from its
    buffers; None for any other layout (read by pyarrow instead)."""
    if not messages or bytes(messages[0].metadata) != _SCHEMA_METADATA:
        return None
    dictionary: pa.Array | None = None
    batches: list[pa.Table] = []
    for message in messages[1:]:
        if message.codec not in (None, _ZSTD):
            return None
        if message.kind == 2:  # the path dictionary
            if dictionary is not None or message.is_delta or len(message.buffers) != 3:
                return None
            dictionary = _dictionary(message)
        elif message.kind == 3:
            if dictionary is None or len(message.nodes) != 4 or len(message.buffers) != 9:
                return None
            if any(length != message.rows for length, _ in message.nodes):
                raise WireFormatError("telemetry batch: a column's length differs from the batch's")
            columns, first = [], 0
            for column, count in zip(TELEMETRY_SCHEMA, _BUFFERS_PER_COLUMN, strict=True):
                buffers = message.buffers[first : first + count]
                first += count
                kind = column.type.index_type if column.name == "path" else column.type
                columns.append(_array(kind, message, message.rows, buffers))
            columns[0] = pa.DictionaryArray.from_arrays(columns[0], dictionary, safe=True)
            batches.append(pa.Table.from_arrays(columns, schema=TELEMETRY_SCHEMA))
        else:
            return None
    if not batches:
        return None
    return batches[0] if len(batches) == 1 else pa.concat_tables(batches)


def _sample_arrays(messages: list[IpcMessage]) -> SampleArrays | None:
    """The columns of a stream laid out as a vehicle writes it (see
    :func:`decode_sample_arrays`), read from its buffers; None for any other layout.

    What is checked is what validating the assembled arrays checks: every buffer long
    enough for the rows, every index inside the dictionary, valid UTF-8 without NUL in the
    strings. A validity bitmap is read only where nulls may be (the value and text
    columns); a null path or time takes the general path.
    """
    if len(messages) != 3 or bytes(messages[0].metadata) != _SCHEMA_METADATA:
        return None
    paths, batch = messages[1], messages[2]
    if (
        paths.kind != 2 or batch.kind != 3 or paths.is_delta or len(paths.buffers) != 3
        or paths.codec not in (None, _ZSTD) or batch.codec not in (None, _ZSTD)
        or len(batch.nodes) != 4 or len(batch.buffers) != 9
    ):  # fmt: skip
        return None
    rows = batch.rows
    if any(length != rows for length, _ in batch.nodes):
        raise WireFormatError("telemetry batch: a column's length differs from the batch's")
    buffers = batch.buffers
    if batch.nodes[0][1] or batch.nodes[1][1] or buffers[0][1] or buffers[2][1]:
        return None  # a null path or time (or a bitmap saying there might be)
    dictionary = _dictionary(paths)
    index = _numbers(batch, buffers[1], np.dtype(np.int16), rows, "path")
    # One pass for both bounds: seen unsigned, a negative index is above any dictionary's size.
    if rows and int(index.view(np.uint16).max()) >= len(dictionary):
        raise WireFormatError(
            f"telemetry column 'path' has indices outside its dictionary of "
            f"{len(dictionary)} paths"
        )
    ts = _numbers(batch, buffers[3], np.dtype(np.int64), rows, "ts")
    value = _numbers(batch, buffers[5], np.dtype(np.float64), rows, "value")
    bitmap = _bytes(batch, *buffers[4])
    if bitmap is None:
        value_valid = np.ones(rows, np.bool_)
    else:
        if len(bitmap) * 8 < rows:
            raise WireFormatError(
                f"telemetry column 'value': its validity bitmap holds {len(bitmap)} bytes; "
                f"{rows} rows need {(rows + 7) // 8}"
            )
        value_valid = np.unpackbits(
            np.frombuffer(bitmap, np.uint8, (rows + 7) // 8), count=rows, bitorder="little"
        ).view(np.bool_)
    # Read and validated even when its node says every row is null: the buffers are there to
    # be checked (a bitmap may say otherwise; an offset may point anywhere), as the table
    # reader checks them.
    text = _array(pa.utf8(), batch, rows, buffers[6:9])
    if text.null_count < len(text) and _holds_nul(text):
        raise WireFormatError("telemetry column 'text' holds a NUL character")
    return SampleArrays(dictionary, index, ts, value, value_valid, text)


def _numbers(
    message: IpcMessage, buffer: tuple[int, int], dtype: np.dtype[Any], rows: int, name: str
) -> npt.NDArray[Any]:
    """The first ``rows`` numbers of a fixed-width column's data buffer."""
    data = _bytes(message, *buffer)
    size = 0 if data is None else len(data)
    if size < rows * dtype.itemsize:
        raise WireFormatError(
            f"telemetry column {name!r}: its data buffer holds {size} bytes; {rows} rows "
            f"need {rows * dtype.itemsize}"
        )
    if data is None:
        return np.zeros(0, dtype)
    return np.frombuffer(data, dtype, rows)


def _dictionary(message: IpcMessage) -> pa.Array:
    """The path dictionary of a dictionary batch message. A vehicle sends the same dictionary
    batch (byte for byte) message after message, so its decoded, validated array is kept,
    keyed by the message's exact bytes (header and body): the same bytes decode the same.

    Raises:
        WireFormatError: a path holds a NUL character (checked here, once per dictionary).
    """
    key = bytes(message.metadata) + bytes(message.body)
    dictionary = _dictionaries.get(key)
    if dictionary is None:
        dictionary = _array(pa.utf8(), message, 0, message.buffers)
        if dictionary.null_count < len(dictionary) and _holds_nul(dictionary):
            raise WireFormatError("telemetry column 'path' holds a NUL character")
        if len(_dictionaries) >= MAX_CACHED_DICTIONARIES:
            _dictionaries.clear()
        _dictionaries[key] = dictionary
    return dictionary


def _array(
    kind: pa.DataType, message: IpcMessage, rows: int, buffers: Sequence[tuple[int, int]]
) -> pa.Array:
    """One column from its (possibly compressed) buffers, fully validated."""
    if kind == pa.utf8() and message.kind == 2:
        rows = message.rows
    parts = [_buffer(message, offset, length) for offset, length in buffers]
    # Only the validity bitmap may be absent (no nulls); other buffers are empty at most.
    parts[1:] = [_EMPTY if part is None else part for part in parts[1:]]
    array = pa.Array.from_buffers(kind, rows, parts, -1)
    array.validate(full=True)
    return array


def _buffer(message: IpcMessage, offset: int, length: int) -> pa.Buffer | None:
    data = _bytes(message, offset, length)
    return None if data is None else pa.py_buffer(data)


def _bytes(message: IpcMessage, offset: int, length: int) -> bytes | memoryview | None:
    """A buffer of ``message``'s body, decompressed (None: absent)."""
    if length == 0:
        return None
    raw = message.body[offset : offset + length]
    if message.codec is None:
        return raw
    declared = int.from_bytes(raw[:8], "little", signed=True)
    if declared == -1:
        return raw[8:]
    decompressor = getattr(_contexts, "zstd", None)
    if decompressor is None:
        decompressor = _contexts.zstd = zstandard.ZstdDecompressor()
    try:
        data = cast(bytes, decompressor.decompress(raw[8:], max_output_size=declared))
    except zstandard.ZstdError as e:
        raise WireFormatError(f"telemetry body: a zstd buffer does not decompress: {e}") from e
    if len(data) != declared:
        raise WireFormatError(
            f"telemetry body: a buffer decompressed to {len(data)} bytes; it declared {declared}"
        )
    return data


def seal_telemetry(
    vehicle_id: str,
    table: pa.Table,
    *,
    key: SigningKey | VehicleSession,
    seq: int,
    message_id: str | None = None,
    sent_ns: int | None = None,
    campaign: str | None = None,
    traceparent: str | None = None,
) -> bytes:
    """A TELEMETRY envelope carrying ``table`` (its message id is the batch id), signed with
    ``key`` or MAC'd under a vehicle session (``session.VehicleSession``), with
    the id of the ``campaign`` that collected it in the header when given, and the W3C
    ``traceparent`` of the span that produced it (``drivetrain.core.tracing``) when given.

    Raises:
        ValueError: ``campaign`` is not a campaign id (a programming error).
    """
    if campaign is not None and not _CAMPAIGN_ID.fullmatch(campaign):
        raise ValueError(f"campaign {campaign!r} is not a campaign id")
    extra: dict[str, str] = {}
    if campaign is not None:
        extra[CAMPAIGN_HEADER] = campaign
    if traceparent is not None:
        extra[TRACEPARENT_HEADER] = traceparent
    if isinstance(key, VehicleSession):
        if key.vin != vehicle_id:
            raise ValueError(f"the session is {key.vin}'s, not {vehicle_id}'s")
        return key.seal(
            MessageKind.TELEMETRY, encode_samples(table), body_encoding="arrow-ipc", seq=seq,
            message_id=message_id, sent_ns=sent_ns, extra_header=extra or None,
        )  # fmt: skip
    return seal(
        MessageKind.TELEMETRY,
        vehicle_id,
        encode_samples(table),
        body_encoding="arrow-ipc",
        key=key,
        seq=seq,
        message_id=message_id,
        sent_ns=sent_ns,
        extra_header=extra or None,
    )


def batch_campaign(envelope: Envelope) -> str | None:
    """The campaign a telemetry batch names in its header (None: none).

    Raises:
        WireFormatError: the field is there but not a campaign id.
    """
    value = envelope.extra_header.get(CAMPAIGN_HEADER)
    if value is None:
        return None
    if not isinstance(value, str) or not _CAMPAIGN_ID.fullmatch(value):
        raise WireFormatError(
            f"header field {CAMPAIGN_HEADER!r} is {str(value)[:80]!r}; expected a campaign id "
            "(1-64 of a-z, 0-9, '_', '.', '-')"
        )
    return value
