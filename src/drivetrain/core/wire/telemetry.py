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
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from drivetrain.core.crypto import SigningKey
from drivetrain.core.errors import WireFormatError
from drivetrain.core.wire.envelope import MessageKind, seal

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


def decode_samples(body: bytes) -> pa.Table:
    """Read a telemetry body back into a table with (at least) the ``TELEMETRY_SCHEMA`` columns.

    Raises:
        WireFormatError: not an Arrow IPC stream, or a required column missing or mistyped.
    """
    try:
        table = pa.ipc.open_stream(pa.py_buffer(body)).read_all()
    except (pa.ArrowInvalid, pa.ArrowException, OSError) as e:
        raise WireFormatError(f"telemetry body is not a readable Arrow IPC stream: {e}") from e
    for expected in TELEMETRY_SCHEMA:
        index = table.schema.get_field_index(expected.name)
        if index < 0:
            raise WireFormatError(f"telemetry body has no column {expected.name!r}")
        actual = table.schema.field(index).type
        if not actual.equals(expected.type):
            raise WireFormatError(
                f"telemetry column {expected.name!r} is {actual}; expected {expected.type}"
            )
    return table.select([f.name for f in TELEMETRY_SCHEMA])


def seal_telemetry(
    vehicle_id: str,
    table: pa.Table,
    *,
    key: SigningKey,
    seq: int,
    message_id: str | None = None,
    sent_ns: int | None = None,
) -> bytes:
    """A signed TELEMETRY envelope carrying ``table`` (its message id is the batch id)."""
    return seal(
        MessageKind.TELEMETRY,
        vehicle_id,
        encode_samples(table),
        body_encoding="arrow-ipc",
        key=key,
        seq=seq,
        message_id=message_id,
        sent_ns=sent_ns,
    )
