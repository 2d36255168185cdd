"""The two CSV capture layouts: reference agreement, round trips, and malformed lines."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_captures_helpers import assert_same_frames, frame_batches, payloads

from drivetrain.core.can import (
    FrameLabels,
    detect_format,
    iter_capture,
    read_capture,
    write_capture,
)
from drivetrain.core.can.csv_blocks import iter_blocks
from drivetrain.core.can.hex_columns import decode_hex_payload
from drivetrain.core.errors import CaptureFormatError

CAPTURES = Path(__file__).resolve().parents[1] / "data" / "captures"
COMMA_HEAD = CAPTURES / "comma2k19_head3000.csv"
_HYPOTHESIS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _csv_module_reference(path: Path) -> list[tuple[float, int, int, bytes]]:
    with path.open(newline="") as f:
        return [
            (float(r["t_s"]), int(r["bus"]), int(r["address"]), bytes.fromhex(r["data_hex"]))
            for r in csv.DictReader(f)
        ]


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode())
    return path


# --- comma2k19 layout -------------------------------------------------------------------------
def test_comma_csv_excerpt_matches_the_csv_module_frame_by_frame() -> None:
    capture = read_capture(COMMA_HEAD)
    reference = _csv_module_reference(COMMA_HEAD)
    assert capture.malformed == ()
    assert len(capture.frames) == len(reference) == 3000
    assert capture.frames.timestamp_s.tolist() == [r[0] for r in reference]
    assert capture.frames.bus.tolist() == [r[1] for r in reference]
    assert capture.frames.frame_id.tolist() == [r[2] for r in reference]
    assert payloads(capture.frames) == [r[3] for r in reference]


@pytest.mark.shared_data
def test_full_comma2k19_capture_matches_the_csv_module(shared_data: Path) -> None:
    path = shared_data / "comma2k19" / "raw_can.csv"
    capture = read_capture(path)
    reference = _csv_module_reference(path)
    assert capture.malformed == ()
    assert len(capture.frames) == len(reference) == 135_468
    assert capture.frames.frame_id.tolist() == [r[2] for r in reference]
    assert capture.frames.bus.tolist() == [r[1] for r in reference]
    assert payloads(capture.frames) == [r[3] for r in reference]
    assert int((capture.frames.length == 0).sum()) == sum(1 for r in reference if not r[3])


def test_streaming_in_small_chunks_gives_the_same_frames_as_one_read() -> None:
    whole = read_capture(COMMA_HEAD).frames
    chunks = list(iter_capture(COMMA_HEAD, chunk_frames=100))
    assert len(chunks) > 10
    assert chunks[-1].bytes_read == COMMA_HEAD.stat().st_size
    from drivetrain.core.can import FrameBatch

    assert_same_frames(FrameBatch.concat([c.frames for c in chunks]), whole)


@_HYPOTHESIS
@given(frames=frame_batches(max_bytes=8, extended_by_value=True, max_bus=200))
def test_comma_csv_round_trips_any_frames(tmp_path: Path, frames) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "rt.csv"
    write_capture(path, frames)
    assert detect_format(path) == "comma-csv"
    back = read_capture(path)
    assert back.malformed == ()
    assert_same_frames(back.frames, frames)


def test_comma_csv_writer_output_is_read_identically_by_the_csv_module(tmp_path: Path) -> None:
    frames = read_capture(COMMA_HEAD).frames
    path = tmp_path / "copy.csv"
    write_capture(path, frames)
    assert _csv_module_reference(path) == _csv_module_reference(COMMA_HEAD)


# --- ROAD layout --------------------------------------------------------------------------------
@pytest.mark.shared_data
def test_road_capture_matches_the_csv_module_with_labels(shared_data: Path) -> None:
    path = shared_data / "road" / "fuzzing_attack_2.csv"
    capture = read_capture(path)
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert capture.malformed == ()
    assert len(capture.frames) == len(rows)
    assert capture.frames.frame_id.tolist() == [int(r["Id"], 16) for r in rows]
    expected = [bytes(int(r[f"Byte{i}"], 16) for i in range(1, 9) if r[f"Byte{i}"]) for r in rows]
    assert payloads(capture.frames) == expected
    assert capture.labels is not None
    assert capture.labels.as_strings() == [r["Label"] for r in rows]
    assert set(capture.labels.names) == {"Benign", "Fuzzing"}


@_HYPOTHESIS
@given(frames=frame_batches(max_bytes=8, max_bus=0))
def test_road_csv_round_trips_frames_and_labels(tmp_path: Path, frames) -> None:  # type: ignore[no-untyped-def]
    labels = FrameLabels(np.arange(len(frames), dtype=np.int32) % 2, ("Benign", "Fuzzing"))
    path = tmp_path / "rt.csv"
    write_capture(path, frames, capture_format="road-csv", labels=labels)
    assert detect_format(path) == "road-csv"
    back = read_capture(path)
    assert back.malformed == ()
    assert_same_frames(back.frames, frames)
    assert back.labels is not None and back.labels.as_strings() == labels.as_strings()


def test_road_csv_without_label_column_is_read(tmp_path: Path) -> None:
    path = _write(tmp_path, "r.csv", "Time,Id,Byte1,Byte2,Byte3,Byte4,Byte5,Byte6,Byte7,Byte8\n"
                  "1.5,0A7,00,51,2C,,,,,\n2.5,18DAF110,FF,,,,,,,\n")
    capture = read_capture(path)
    assert capture.labels is None
    assert capture.frames.frame_id.tolist() == [0x0A7, 0x18DAF110]
    assert capture.frames.is_extended.tolist() == [False, True]
    assert payloads(capture.frames) == [b"\x00\x51\x2c", b"\xff"]


def test_road_csv_bad_id_and_byte_gap_are_reported_with_line_numbers(tmp_path: Path) -> None:
    path = _write(tmp_path, "r.csv", "Time,Id,Byte1,Byte2,Byte3,Byte4,Byte5,Byte6,Byte7,Byte8,Label\n"
                  "1.0,354,20,32,40,00,00,05,A8,80,Benign\n"
                  "1.1,XYZ,20,32,40,00,00,05,A8,80,Benign\n"
                  "1.2,354,20,,40,00,00,05,A8,80,Benign\n"
                  "1.3,354,2G,32,40,00,00,05,A8,80,Benign\n")
    capture = read_capture(path)
    assert len(capture.frames) == 1
    assert [m.line for m in capture.malformed] == [3, 4, 5]
    assert "Id 'XYZ'" in capture.malformed[0].reason
    assert "gap" in capture.malformed[1].reason
    assert "2 hex digits" in capture.malformed[2].reason


# --- malformed lines ---------------------------------------------------------------------------
_BAD_COMMA = (
    "t_s,bus,address,data_hex\n"
    "1.0,0,10,0102\n"        # 2 ok
    "\n"                      # 3 blank: skipped silently
    "2.0,0,11\n"              # 4 too few fields
    "3.0,0,12,zz\n"           # 5 not hex
    "4.0,x,13,01\n"           # 6 bad bus
    "5.0,0,14,0304\n"         # 7 ok
    "6.0,0,15,123\n"          # 8 odd digits
    "abc,0,16,00\n"           # 9 bad time
    "7.0,0,99999999999,00\n"  # 10 id too large
    "8.0,1,2047,\n"           # 11 ok, zero-length frame
)


def test_garbage_lines_are_skipped_and_reported_with_file_and_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "bad.csv", _BAD_COMMA)
    capture = read_capture(path)
    assert capture.frames.frame_id.tolist() == [10, 14, 2047]
    assert capture.frames.length.tolist() == [2, 2, 0]
    assert [m.line for m in capture.malformed] == [4, 5, 6, 8, 9, 10]
    assert str(capture.malformed[0]) == f"{path}:4: expected 4 comma-separated fields, found 3: '2.0,0,11'"
    assert capture.malformed[1].reason == "payload 'zz' is not hexadecimal"
    assert capture.malformed[2].reason.startswith("bus 'x'")
    assert "odd number" in capture.malformed[3].reason
    assert capture.malformed[4].reason.startswith("t_s 'abc'")
    assert capture.malformed[5].reason.startswith("address '99999999999'")


def test_strict_mode_raises_naming_the_file_and_first_bad_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "bad.csv", _BAD_COMMA)
    with pytest.raises(CaptureFormatError, match=r"bad\.csv:4: expected 4 comma-separated fields"):
        read_capture(path, strict=True)


def test_line_numbers_stay_right_across_chunks_and_crlf_endings(tmp_path: Path) -> None:
    lines = ["t_s,bus,address,data_hex"] + [f"{i}.5,0,{i % 2000},0011" for i in range(5000)]
    lines[1234] = "1.0,0,5,nothex"
    lines[4321] = "1.0,0"
    path = _write(tmp_path, "crlf.csv", "\r\n".join(lines) + "\r\n")
    chunks = list(iter_capture(path, chunk_frames=300))
    reports = [m for c in chunks for m in c.malformed]
    assert [m.line for m in reports] == [1235, 4322]
    assert reports[0].excerpt == "1.0,0,5,nothex"
    assert sum(len(c.frames) for c in chunks) == 4998


def test_file_without_trailing_newline_keeps_its_last_frame(tmp_path: Path) -> None:
    path = _write(tmp_path, "t.csv", "t_s,bus,address,data_hex\n1.0,0,1,01\n2.0,0,2,02")
    assert read_capture(path).frames.frame_id.tolist() == [1, 2]


def test_unknown_csv_header_is_refused_naming_the_expected_layouts(tmp_path: Path) -> None:
    path = _write(tmp_path, "x.csv", "time,id,data\n1,2,3\n")
    with pytest.raises(CaptureFormatError, match=r"x\.csv:1: CSV header .* matches no capture layout"):
        read_capture(path)


def test_missing_capture_file_is_a_capture_format_error(tmp_path: Path) -> None:
    with pytest.raises(CaptureFormatError, match="does not exist"):
        read_capture(tmp_path / "nope.csv")


def test_unsupported_extension_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, "x.trc", "whatever\n")
    with pytest.raises(CaptureFormatError, match=r"extension '\.trc'"):
        detect_format(path)


def test_writer_refuses_a_standard_id_above_eleven_bits(tmp_path: Path) -> None:
    frames = read_capture(COMMA_HEAD).frames.take(np.arange(3))
    from dataclasses import replace

    bad = replace(frames, frame_id=np.array([0x800, 1, 2], np.uint32))
    with pytest.raises(ValueError, match="0x800"):
        write_capture(tmp_path / "x.log", bad)


_HEX_TEXT = st.text(alphabet="0123456789abcdefABCDEFxz ,é", max_size=140)


@settings(max_examples=200, deadline=None)
@given(texts=st.lists(st.one_of(st.none(), _HEX_TEXT), max_size=30), binary=st.booleans(),
       offset=st.integers(0, 3))  # fmt: skip
def test_hex_payload_columns_decode_as_bytes_fromhex_does_row_by_row(
    texts: list[str | None], binary: bool, offset: int
) -> None:
    # A slice (offset) and both array types, as pyarrow hands them over; the reference is
    # Python's own hex parser, row by row.
    typ = pa.binary() if binary else pa.string()
    column = pa.array(
        [None] * offset + [t.encode() if binary and t is not None else t for t in texts], typ
    )[offset:]
    data, length, ok = decode_hex_payload(column)
    assert data.shape[0] == len(texts) and data.shape[1] >= 8
    for row, text in enumerate(texts):
        text = text or ""
        try:
            expected = bytes.fromhex(text) if len(text) <= 128 and " " not in text else None
        except ValueError:
            expected = None
        if expected is None or len(text) % 2:
            assert not ok[row] and length[row] == 0, text
            continue
        assert ok[row] and length[row] == len(expected), text
        assert bytes(data[row, : len(expected)]) == expected
        assert not data[row, len(expected) :].any()


class _Unseekable(io.BufferedReader):
    def seekable(self) -> bool:
        return False


@settings(max_examples=200, deadline=None)
@given(lines=st.lists(st.text(alphabet="x,", max_size=80), max_size=30), newline_at_end=st.booleans(),
       block_bytes=st.sampled_from([1, 2, 7, 16, 64, 1000]), seekable=st.booleans())  # fmt: skip
def test_blocks_are_whole_lines_that_add_up_to_the_file(
    lines: list[str], newline_at_end: bool, block_bytes: int, seekable: bool
) -> None:
    # Lines longer than a block grow the reused buffer (seekable) or carry over (a pipe).
    data = ("\n".join(lines) + ("\n" if newline_at_end and lines else "")).encode()
    f = io.BytesIO(data) if seekable else _Unseekable(io.BytesIO(data))
    read = b""
    for block, end_pos in iter_blocks(f, block_bytes):
        read += bytes(block)  # a block is valid until the next is asked for
        assert end_pos == len(read)
        assert read.endswith(b"\n") or len(read) == len(data)
    assert read == data
