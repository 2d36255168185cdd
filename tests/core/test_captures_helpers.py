"""Hypothesis strategies and comparison helpers shared by the capture tests."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from drivetrain.core.can import FrameBatch


@st.composite
def frame_batches(
    draw: st.DrawFn,
    *,
    max_bytes: int = 8,
    max_bus: int = 3,
    microsecond_times: bool = False,
    extended_by_value: bool = False,
) -> FrameBatch:
    """Valid frame batches: standard ids <= 0x7FF, extended ids <= 0x1FFFFFFF.

    ``extended_by_value``: the extended flag is ``id > 0x7FF`` (layouts without a flag).
    ``microsecond_times``: timestamps on the microsecond grid (candump's resolution).
    """
    n = draw(st.integers(0, 25))
    if microsecond_times:
        times = st.integers(0, 10**15).map(lambda us: us / 1e6)
    else:
        times = st.floats(0, 2e9, allow_nan=False, allow_infinity=False)
    rows = []
    for _ in range(n):
        if extended_by_value:
            frame_id = draw(st.integers(0, 0x1FFFFFFF))
            extended = frame_id > 0x7FF
        else:
            extended = draw(st.booleans())
            frame_id = draw(st.integers(0, 0x1FFFFFFF if extended else 0x7FF))
        payload = draw(st.binary(min_size=0, max_size=max_bytes))
        rows.append((draw(times), frame_id, extended, draw(st.integers(0, max_bus)), payload))
    width = max(8, max_bytes)
    data = np.zeros((n, width), np.uint8)
    for i, row in enumerate(rows):
        data[i, : len(row[4])] = np.frombuffer(row[4], np.uint8)
    return FrameBatch(
        timestamp_s=np.array([r[0] for r in rows], np.float64),
        frame_id=np.array([r[1] for r in rows], np.uint32),
        is_extended=np.array([r[2] for r in rows], np.bool_),
        bus=np.array([r[3] for r in rows], np.uint16),
        length=np.array([len(r[4]) for r in rows], np.uint8),
        data=data,
    )


def payloads(frames: FrameBatch) -> list[bytes]:
    """Each frame's data bytes (up to its length)."""
    return [bytes(row[:n]) for row, n in zip(frames.data, frames.length.tolist(), strict=True)]


def assert_same_frames(actual: FrameBatch, expected: FrameBatch, *, time_tolerance_s: float = 0.0) -> None:
    """Equal frame by frame (payload compared up to each frame's length)."""
    assert len(actual) == len(expected)
    if time_tolerance_s:
        np.testing.assert_allclose(actual.timestamp_s, expected.timestamp_s, rtol=0, atol=time_tolerance_s)
    else:
        np.testing.assert_array_equal(actual.timestamp_s, expected.timestamp_s)
    np.testing.assert_array_equal(actual.frame_id, expected.frame_id)
    np.testing.assert_array_equal(actual.is_extended, expected.is_extended)
    np.testing.assert_array_equal(actual.bus, expected.bus)
    np.testing.assert_array_equal(actual.length, expected.length)
    assert payloads(actual) == payloads(expected)
