"""The receiver's per-message reading of a telemetry body straight into NumPy columns
(``decode_sample_arrays``): the same samples as pyarrow reads, the same refusals as
``decode_samples``, and only format errors out of any altered or cut body."""

from __future__ import annotations

import json
import math
import struct

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from wire_strategies import SAMPLE_ROWS

from drivetrain.core.errors import WireFormatError
from drivetrain.core.wire import (
    TELEMETRY_SCHEMA,
    IpcLimits,
    SampleArrays,
    decode_sample_arrays,
    decode_samples,
    encode_samples,
    load_json_object,
    samples_table,
)
from drivetrain.core.wire.ipc_limits import read_ipc_layout

PATHS = [f"Vehicle.P{i}" for i in range(5)]


def _columns(decoded: SampleArrays | pa.Table) -> tuple[list[str], list[int], list[object],
                                                        list[str | None]]:  # fmt: skip
    """(paths, ts, values, texts) of either form, for comparison (a NaN value as "NaN": NaN is
    not equal to itself, and an altered body may well hold one)."""
    if isinstance(decoded, pa.Table):
        return (
            decoded.column("path").cast(pa.utf8()).to_pylist(),
            decoded.column("ts").cast(pa.int64()).to_pylist(),
            _nan_as_text(decoded.column("value").to_pylist()),
            decoded.column("text").to_pylist(),
        )
    names = decoded.dictionary.to_pylist()
    pairs = zip(decoded.value.tolist(), decoded.value_valid.tolist(), strict=True)
    return (
        [names[i] for i in decoded.path_index.tolist()],
        decoded.ts_ns.tolist(),
        _nan_as_text([v if ok else None for v, ok in pairs]),
        decoded.text.to_pylist(),
    )


def _nan_as_text(values: list[float | None]) -> list[object]:
    return ["NaN" if v is not None and math.isnan(v) else v for v in values]


def _stream(table: pa.Table, compression: str | None = "zstd", chunk: int | None = None) -> bytes:
    sink = pa.BufferOutputStream()
    options = pa.ipc.IpcWriteOptions(compression=compression)
    with pa.ipc.new_stream(sink, TELEMETRY_SCHEMA, options=options) as writer:
        writer.write_table(table, max_chunksize=chunk)
    return bytes(sink.getvalue().to_pybytes())


@settings(max_examples=60, deadline=None)
@given(SAMPLE_ROWS, st.sampled_from(["zstd", None]))
def test_the_columns_are_what_pyarrow_reads(
    rows: list[tuple[int, int, float | None, str | None]], compression: str | None
) -> None:
    table = pa.Table.from_arrays(
        [
            pa.DictionaryArray.from_arrays(
                pa.array([r[0] for r in rows], pa.int16()), pa.array(PATHS, pa.utf8())
            ),
            pa.array([r[1] for r in rows], pa.timestamp("ns", tz="UTC")),
            pa.array([r[2] for r in rows], pa.float64()),
            pa.array([r[3] for r in rows], pa.utf8()),
        ],
        schema=TELEMETRY_SCHEMA,
    )
    body = _stream(table, compression)
    decoded = decode_sample_arrays(body)
    if rows:  # (an empty table is written without a record batch: read as a table)
        assert isinstance(decoded, SampleArrays)
        assert len(decoded) == len(rows)
    assert _columns(decoded) == _columns(pa.ipc.open_stream(body).read_all())


def test_a_vehicle_body_comes_back_as_arrays_and_any_other_layout_as_the_table() -> None:
    index = np.arange(400) % 5
    values = np.where(index == 1, np.nan, np.arange(400, dtype=float))
    texts = ["BEV" if i == 1 else None for i in index]
    table = samples_table(PATHS, index, 10**18 + np.arange(400), values, texts)
    vehicle = decode_sample_arrays(encode_samples(table))
    assert isinstance(vehicle, SampleArrays)
    assert _columns(vehicle) == _columns(table)
    # two record batches (another writer's choice): read by the general path, same samples
    chunked = decode_sample_arrays(_stream(table, chunk=150))
    assert isinstance(chunked, pa.Table)
    assert _columns(chunked) == _columns(table)


def _with_indices(indices: list[int]) -> bytes:
    """A body whose path column holds ``indices`` into a dictionary of five paths (the
    writer does not check them)."""
    table = pa.Table.from_arrays(
        [
            pa.DictionaryArray.from_arrays(
                pa.array(indices, pa.int16()), pa.array(PATHS, pa.utf8()), safe=False
            ),
            pa.array([10**18] * len(indices), pa.timestamp("ns", tz="UTC")),
            pa.array([1.0] * len(indices), pa.float64()),
            pa.nulls(len(indices), pa.utf8()),
        ],
        schema=TELEMETRY_SCHEMA,
    )
    return _stream(table)


@pytest.mark.parametrize("bad", [5, 300, -1, -32768])
def test_an_index_outside_the_dictionary_is_refused_naming_the_column(bad: int) -> None:
    with pytest.raises(WireFormatError, match="'path' has indices outside its dictionary of 5"):
        decode_sample_arrays(_with_indices([0, 1, bad, 2]))
    assert isinstance(decode_sample_arrays(_with_indices([0, 4, 2])), SampleArrays)


def test_a_nul_in_a_text_value_is_refused() -> None:
    body = encode_samples(samples_table(PATHS, [0, 1], [10**18] * 2, [np.nan] * 2, ["a", "b\x00"]))
    with pytest.raises(WireFormatError, match="'text' holds a NUL"):
        decode_sample_arrays(body)


_GOOD = encode_samples(samples_table(PATHS, np.arange(50) % 5, 10**18 + np.arange(50),
                                     np.arange(50, dtype=float)))  # fmt: skip


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_an_altered_or_cut_body_raises_only_format_errors(data: st.DataObject) -> None:
    # the schema and dictionary headers of _GOOD are remembered from the first call on: an
    # altered body that keeps them must still be checked against its own bytes
    body = bytearray(_GOOD)
    if data.draw(st.booleans(), label="cut"):
        body = body[: data.draw(st.integers(0, len(body) - 1))]
    else:
        for _ in range(data.draw(st.integers(1, 6))):
            body[data.draw(st.integers(0, len(body) - 1))] = data.draw(st.integers(0, 255))
    limits = IpcLimits(max_rows=1_000, max_decompressed_bytes=1 << 20)
    try:
        decoded = decode_sample_arrays(bytes(body), limits)
    except WireFormatError:  # PayloadTooLargeError included
        return
    # what it reads, the table reader reads alike
    assert _columns(decoded) == _columns(decode_samples(bytes(body), limits))


def test_the_buffers_of_an_all_null_text_column_are_checked_too() -> None:
    # Every text of _GOOD is null; its offsets buffer moved onto the path indices' bytes
    # (whose zstd frame declares another size) is refused as the table reader refuses it.
    messages, _ = read_ipc_layout(_GOOD, IpcLimits())
    offset, length = messages[2].buffers[7]
    moved = _GOOD.replace(struct.pack("<qq", offset, length), struct.pack("<qq", 0, length), 1)
    assert moved != _GOOD
    for decode in (decode_sample_arrays, decode_samples):
        with pytest.raises(WireFormatError):
            decode(moved)


def test_a_remembered_header_does_not_excuse_a_short_body() -> None:
    assert isinstance(decode_sample_arrays(_GOOD), SampleArrays)  # headers remembered
    for cut in (len(_GOOD) - 9, len(_GOOD) // 2, 200):
        with pytest.raises(WireFormatError):
            decode_sample_arrays(_GOOD[:cut] + _GOOD[-8:])


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16", "utf-16-le", "utf-32"])
@pytest.mark.parametrize("text", ["\x00", "\ud800"])
def test_an_escaped_nul_or_surrogate_is_refused_in_any_encoding(encoding: str, text: str) -> None:
    raw = json.dumps({"vehicle": "V", "note": text}).encode(encoding, "surrogatepass")
    with pytest.raises(WireFormatError, match="U\\+"):
        load_json_object(raw, "header")


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16-le", "utf-32"])
def test_an_unescaped_lone_surrogate_is_refused(encoding: str) -> None:
    # Its bytes (in UTF-8: ED A0 80) carry no backslash, so only strict decoding refuses it.
    raw = '{"vehicle": "V", "note": "\ud800"}'.encode(encoding, "surrogatepass")
    with pytest.raises(WireFormatError, match="not valid JSON"):
        load_json_object(raw, "header")


def test_depth_is_checked_when_brackets_are_many() -> None:
    with pytest.raises(WireFormatError, match="nested deeper than 32"):
        load_json_object(b'{"a":' + b"[" * 40 + b"]" * 40 + b"}", "header")
    # brackets inside strings are no nesting: read after the walk
    assert load_json_object(b'{"a": "' + b"[" * 40 + b'"}', "header") == {"a": "[" * 40}
