"""The decoder's reused memory: results a caller keeps are never overwritten by later decodes."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from cantools.database.can import Database, Message, Signal

from drivetrain.core.can import BatchDecoder, FrameBatch
from drivetrain.core.can.buffers import BufferPool

FRAMES = 200_000  # large enough that every column comes from the pool


def _database() -> Database:
    return Database(
        [Message(0x10, "M", 8, [Signal("A", 0, 16), Signal("B", 16, 32, is_signed=True)])]
    )


def _frames(seed: int) -> FrameBatch:
    data = np.random.default_rng(seed).integers(0, 256, (FRAMES, 8), dtype=np.uint8)
    return FrameBatch(
        timestamp_s=np.arange(FRAMES, dtype=np.float64) + seed,
        frame_id=np.full(FRAMES, 0x10, np.uint32),
        is_extended=np.zeros(FRAMES, np.bool_),
        bus=np.full(FRAMES, seed, np.uint16),
        length=np.full(FRAMES, 8, np.uint8),
        data=data,
    )


def test_a_kept_result_is_not_overwritten_and_a_dropped_one_is_reused() -> None:
    decoder = BatchDecoder(_database())
    first = decoder.decode(_frames(1))
    kept_value, kept_time = first.value.copy(), first.timestamp_s.copy()
    as_arrow = pa.array(first.value)  # a zero-copy export holds the memory too
    second = decoder.decode(_frames(2))
    assert np.shares_memory(first.value, second.value) is False
    np.testing.assert_array_equal(first.value, kept_value)
    np.testing.assert_array_equal(first.timestamp_s, kept_time)
    np.testing.assert_array_equal(as_arrow.to_numpy(), kept_value)
    address = second.value.ctypes.data
    expected = decoder.decode(_frames(3)).value.copy()  # not kept: its memory is free again
    del first, second
    third = decoder.decode(_frames(3))
    np.testing.assert_array_equal(third.value, expected)
    assert BatchDecoder(_database()).decode(_frames(3)).value.tolist() == third.value.tolist()
    assert third.value.ctypes.data != 0 and address != 0


def test_pool_hands_out_memory_again_only_once_every_view_is_gone() -> None:
    pool = BufferPool()
    a = pool.empty(1 << 20, np.float64)
    a_address = a.ctypes.data
    view = a[10:20]
    del a
    b = pool.empty(1 << 20, np.float64)
    assert b.ctypes.data != a_address  # the view still holds the first buffer
    del view
    c = pool.empty(1 << 20, np.float64)
    assert c.ctypes.data == a_address
    assert c.ctypes.data % (2 << 20) == 0  # large arrays start on a huge-page boundary
    assert pool.empty(10, np.float64).shape == (10,)
