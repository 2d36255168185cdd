"""candump, ASC and BLF captures through python-can: round trips and malformed lines."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import can
import pytest
from hypothesis import HealthCheck, given, settings
from test_captures_helpers import assert_same_frames, frame_batches, payloads

from drivetrain.core.can import detect_format, iter_capture, read_capture, write_capture
from drivetrain.core.errors import CaptureFormatError

CAPTURES = Path(__file__).resolve().parents[1] / "data" / "captures"
_HYPOTHESIS = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def test_candump_line_from_the_documentation_is_read(tmp_path: Path) -> None:
    path = tmp_path / "c.log"
    path.write_text("(1436509052.249713) vcan0 044#2A366C2BBA\n")
    assert detect_format(path) == "candump"
    frames = read_capture(path).frames
    assert frames.timestamp_s.tolist() == [1436509052.249713]
    assert frames.frame_id.tolist() == [0x044]
    assert frames.bus.tolist() == [0]
    assert payloads(frames) == [bytes.fromhex("2A366C2BBA")]


@_HYPOTHESIS
@given(frames=frame_batches(max_bytes=8, microsecond_times=True))
def test_candump_round_trips_any_frames(tmp_path: Path, frames) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "rt.log"
    write_capture(path, frames)
    back = read_capture(path)
    assert back.malformed == ()
    assert_same_frames(back.frames, frames)


@_HYPOTHESIS
@given(frames=frame_batches(max_bytes=64, microsecond_times=True))
def test_candump_round_trips_can_fd_payloads(tmp_path: Path, frames) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "fd.log"
    write_capture(path, frames)
    assert_same_frames(read_capture(path).frames, frames)


def test_candump_written_by_us_is_read_identically_by_python_can(tmp_path: Path) -> None:
    frames = read_capture(CAPTURES / "comma2k19_head3000.csv").frames
    path = tmp_path / "c.log"
    write_capture(path, frames)
    with can.CanutilsLogReader(path) as reader:
        messages = list(reader)
    assert [m.arbitration_id for m in messages] == frames.frame_id.tolist()
    assert [bytes(m.data) for m in messages] == payloads(frames)


def test_candump_garbage_lines_are_reported_and_reading_resumes(tmp_path: Path) -> None:
    path = tmp_path / "bad.log"
    path.write_text(
        "(1.000000) can0 123#0102\n"
        "garbage here\n"
        "(2.000000) vcan1 1ABCDEF0#01020\n"
        "(x) can0 123#01\n"
        "(3.000000) vcan1 1ABCDEF0#0102\n"
    )
    capture = read_capture(path)
    assert capture.frames.frame_id.tolist() == [0x123, 0x1ABCDEF0]
    assert capture.frames.is_extended.tolist() == [False, True]
    assert capture.frames.bus.tolist() == [0, 1]
    assert [m.line for m in capture.malformed] == [2, 3, 4]
    assert "odd number of hex digits" in capture.malformed[1].reason
    with pytest.raises(CaptureFormatError, match=r"bad\.log:2: not a candump frame line"):
        read_capture(path, strict=True)


def test_candump_streams_in_chunks(tmp_path: Path) -> None:
    frames = read_capture(CAPTURES / "comma2k19_head3000.csv").frames
    path = tmp_path / "c.log"
    write_capture(path, frames)
    chunks = list(iter_capture(path, chunk_frames=1000))
    assert [len(c.frames) for c in chunks] == [1000, 1000, 1000, 0]


@pytest.mark.parametrize("suffix", [".asc", ".blf"])
def test_vector_logs_round_trip_through_python_can_writers(tmp_path: Path, suffix: str) -> None:
    frames = read_capture(CAPTURES / "comma2k19_head3000.csv").frames
    # both formats stamp the start as a calendar date: use present-day epoch times
    frames = replace(frames, timestamp_s=frames.timestamp_s + 1.7e9)
    path = tmp_path / f"c{suffix}"
    write_capture(path, frames)
    back = read_capture(path)
    assert back.malformed == ()
    # ASC stores times to the microsecond relative to a start stamped to the millisecond;
    # BLF to the nanosecond relative to a millisecond start.
    assert_same_frames(back.frames, frames, time_tolerance_s=2e-3)


def test_asc_line_python_can_cannot_read_is_reported_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.asc"
    path.write_text(
        "date Mon Jan 01 00:00:00.000 2024\nbase hex  timestamps absolute\n"
        "Begin Triggerblock Mon Jan 01 00:00:00.000 2024\n"
        " 0.000100 1  123             Rx   d 2 01 02\n"
        " 0.000200 1  124             Rx   d 2 0G 02\n"
        " 0.000300 1  125             Rx   d 1 05\n"
        "End TriggerBlock\n"
    )
    capture = read_capture(path)
    assert capture.frames.frame_id.tolist() == [0x123]
    assert [m.line for m in capture.malformed] == [5]
    assert "rest of the file was not read" in capture.malformed[0].reason
