"""Property-based fuzzing of every parser of untrusted vehicle-link bytes: the envelope, the JSON
header and bodies, the Arrow IPC telemetry body and its size pre-check. Whatever the input, the
only exceptions that come out are format errors (WireFormatError, PayloadTooLargeError for
bodies over the caps) — never RecursionError, ValueError, UnicodeError or an Arrow error."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from wire_strategies import SAMPLE_ROWS

from drivetrain.core.crypto import SigningKey
from drivetrain.core.errors import PayloadTooLargeError, WireFormatError
from drivetrain.core.wire import (
    TELEMETRY_SCHEMA,
    IpcLimits,
    MessageKind,
    check_ipc_stream,
    decode_samples,
    encode_samples,
    events_from_dict,
    load_json_object,
    parse,
    samples_table,
    seal,
)
from drivetrain.core.wire.messages import Ack

_KEY = SigningKey.from_seed(b"f" * 32)
_FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _body(rows: int = 3, texts: bool = True) -> bytes:
    paths = ["Vehicle.Speed", "Vehicle.Cabin.Infotainment.Media.Played.Track"]
    index = np.arange(rows) % 2
    values = np.where(index == 0, 1.5, np.nan)
    text = [None if i == 0 else "song" for i in index] if texts else None
    return encode_samples(samples_table(paths, index, np.arange(rows) + 10**18, values, text))


_GOOD_BODY = _body()
_GOOD_ENVELOPE = seal(
    MessageKind.TELEMETRY, "DTV00000000000001", _GOOD_BODY, body_encoding="arrow-ipc", key=_KEY,
    seq=1,
)  # fmt: skip


# --- the JSON loader ------------------------------------------------------------------------
@_FUZZ
@given(st.binary(max_size=300))
@example(b"[" * 16_000)
@example(b'{"a": ' + b"9" * 4_300 + b"}")
@example(b'{"a": "\\ud800"}')
@example(b'{"a": "\\u0000"}')
@example(b"\xff\xfe{}")
def test_the_json_loader_raises_only_format_errors(data: bytes) -> None:
    try:
        document = load_json_object(data, "body")
    except WireFormatError:
        return
    assert isinstance(document, dict)
    json.dumps(document, ensure_ascii=False).encode("utf-8")  # every string is storable


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=30,
)


@_FUZZ
@given(st.dictionaries(st.text(), _json_values, max_size=5), st.integers(0, 40))
def test_any_json_document_is_read_back_or_refused_as_a_format_error(
    document: dict[str, object], depth: int
) -> None:
    nested: object = document
    for _ in range(depth):
        nested = {"n": [nested]}
    data = json.dumps(nested).encode()  # ensure_ascii: lone surrogates travel as \ud800
    try:
        loaded = load_json_object(data, "body")
    except WireFormatError:
        return
    assert loaded == nested
    json.dumps(loaded, ensure_ascii=False).encode("utf-8")


@_FUZZ
@given(st.dictionaries(st.text(max_size=10), _json_values, max_size=5))
def test_event_and_ack_bodies_raise_only_format_errors(document: dict[str, object]) -> None:
    for parse_body in (events_from_dict, Ack.from_dict):
        for candidate in (document, {"events": [document]}):
            try:
                parse_body(candidate)
            except WireFormatError:
                pass


def test_integers_beyond_64_bits_in_bodies_are_format_errors() -> None:
    with pytest.raises(WireFormatError, match="64-bit"):
        events_from_dict({"events": [{"type": "x", "ts_ns": 2**70}]})
    with pytest.raises(WireFormatError, match="64-bit"):
        Ack.from_dict({"ref": "r", "ref_kind": "desired_state", "status": "applied", "version": -(2**64)})


# --- the envelope -----------------------------------------------------------------------------
def _header_envelope(header: bytes) -> bytes:
    import struct

    return struct.pack(">3sBBBI", b"DTW", 1, 1, 0, len(header)) + header + b"\x00" * 64


@_FUZZ
@given(st.binary(max_size=400))
@example(_header_envelope(b"[" * 16_000))
@example(_header_envelope(b'{"vehicle": "x", "seq": ' + b"1" * 4_400 + b"}"))
@example(_header_envelope(b'{"vehicle": "\\ud800"}'))
def test_the_envelope_parser_raises_only_format_errors(data: bytes) -> None:
    try:
        parse(data)
    except WireFormatError:
        pass


@_FUZZ
@given(st.data())
def test_an_altered_envelope_raises_only_format_errors(data: st.DataObject) -> None:
    payload = bytearray(_GOOD_ENVELOPE)
    for _ in range(data.draw(st.integers(1, 4))):
        payload[data.draw(st.integers(0, len(payload) - 1))] = data.draw(st.integers(0, 255))
    try:
        envelope = parse(bytes(payload))
    except WireFormatError:
        return
    try:
        decode_samples(envelope.body)
    except WireFormatError:
        pass


# --- the Arrow body ---------------------------------------------------------------------------
@_FUZZ
@given(st.data())
def test_an_altered_or_cut_arrow_body_raises_only_format_errors(data: st.DataObject) -> None:
    body = bytearray(_GOOD_BODY)
    if data.draw(st.booleans(), label="cut"):
        body = body[: data.draw(st.integers(0, len(body) - 1))]
    else:
        for _ in range(data.draw(st.integers(1, 6))):
            body[data.draw(st.integers(0, len(body) - 1))] = data.draw(st.integers(0, 255))
    limits = IpcLimits(max_rows=1_000, max_decompressed_bytes=1 << 20)
    try:
        check_ipc_stream(bytes(body), limits)
    except WireFormatError:
        pass
    try:
        decode_samples(bytes(body), limits)
    except WireFormatError:  # PayloadTooLargeError included
        pass


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 3_000), st.integers(1, 3_000))
def test_a_body_is_refused_as_too_large_exactly_when_it_declares_more_rows_than_the_cap(
    rows: int, cap: int
) -> None:
    body = _body(rows, texts=False)
    limits = IpcLimits(max_rows=cap)
    if rows > cap:
        with pytest.raises(PayloadTooLargeError, match="samples"):
            decode_samples(body, limits)
    else:
        assert decode_samples(body, limits).num_rows == rows
        assert check_ipc_stream(body, limits).rows == rows


def test_decompressed_bytes_are_counted_from_the_length_prefixes_without_decompressing() -> None:
    table = samples_table(["Vehicle.X"], [0], [10**18], [float("nan")], ["x" * 4_000_000])
    body = encode_samples(table)
    assert len(body) < 2_000  # a bomb: kilobytes that decompress to megabytes
    before = pa.total_allocated_bytes()
    with pytest.raises(PayloadTooLargeError, match="decompresses to"):
        decode_samples(body, IpcLimits(max_decompressed_bytes=1_000_000))
    assert pa.total_allocated_bytes() - before < 100_000  # nothing was decompressed
    assert check_ipc_stream(body, IpcLimits()).decompressed_bytes >= 4_000_000


def _ipc_with_raw_strings(path_bytes: bytes, text_bytes: bytes) -> bytes:
    """A telemetry body whose path dictionary and text column hold the given raw bytes."""
    dictionary = pa.Array.from_buffers(
        pa.utf8(), 1, [None, pa.py_buffer(np.array([0, len(path_bytes)], np.int32).tobytes()),
                       pa.py_buffer(path_bytes)],
    )  # fmt: skip
    text = pa.Array.from_buffers(
        pa.utf8(), 1, [None, pa.py_buffer(np.array([0, len(text_bytes)], np.int32).tobytes()),
                       pa.py_buffer(text_bytes)],
    )  # fmt: skip
    table = pa.Table.from_arrays(
        [
            pa.DictionaryArray.from_arrays(pa.array([0], pa.int16()), dictionary),
            pa.array([10**18], pa.timestamp("ns", tz="UTC")),
            pa.array([None], pa.float64()),
            text,
        ],
        names=["path", "ts", "value", "text"],
    )
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


@pytest.mark.parametrize(
    ("path", "text"),
    [
        (b"Vehicle.\xff", b"ok"),  # invalid UTF-8 in the path dictionary
        (b"Vehicle.Speed", b"\xc3\x28"),  # invalid UTF-8 in a text value
        (b"Vehicle.Speed", b"\xed\xa0\x80"),  # a lone surrogate, UTF-8 style (CESU)
        (b"Vehicle.Speed", b"a\x00b"),  # NUL: valid UTF-8 that no text column takes
        (b"Vehicle.\x00", b"ok"),
    ],
)
def test_strings_that_are_not_storable_text_are_format_errors(path: bytes, text: bytes) -> None:
    with pytest.raises(WireFormatError, match="invalid|NUL"):
        decode_samples(_ipc_with_raw_strings(path, text))


@settings(max_examples=60, deadline=None)
@given(SAMPLE_ROWS, st.sampled_from(["zstd", None]))
def test_the_buffer_level_decoder_reads_what_pyarrow_reads(
    rows: list[tuple[int, int, float | None, str | None]], compression: str | None
) -> None:
    paths = [f"Vehicle.P{i}" for i in range(5)]
    table = pa.Table.from_arrays(
        [
            pa.DictionaryArray.from_arrays(
                pa.array([r[0] for r in rows], pa.int16()), pa.array(paths, pa.utf8())
            ),
            pa.array([r[1] for r in rows], pa.timestamp("ns", tz="UTC")),
            pa.array([r[2] for r in rows], pa.float64()),
            pa.array([r[3] for r in rows], pa.utf8()),
        ],
        schema=TELEMETRY_SCHEMA,
    )
    sink = pa.BufferOutputStream()
    options = pa.ipc.IpcWriteOptions(compression=compression)
    with pa.ipc.new_stream(sink, TELEMETRY_SCHEMA, options=options) as writer:
        writer.write_table(table)
    body = sink.getvalue().to_pybytes()
    reference = pa.ipc.open_stream(body).read_all()
    assert decode_samples(body).equals(reference)
