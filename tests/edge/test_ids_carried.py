"""A bit at a value its id never had is one event: `constant_bit` scores the frame that sets it,
not every later frame of the id that keeps it (the id's previous frame on the bus, flagged or
not, had it too). Frames that bring it again — a fuzzing frame between genuine ones each time —
are scored every time."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from drivetrain.core.can import FrameBatch
from drivetrain.edge.ids.detectors import ConstantBitDetector
from drivetrain.edge.ids.stream import IdTable, StreamState, advance, index_batch

ID = 0x4FD


def _frames(byte7: list[int]) -> FrameBatch:
    """One id at 50 ms; byte 0 counts, byte 7 as given."""
    n = len(byte7)
    data = np.zeros((n, 8), np.uint8)
    data[:, 0] = np.arange(n) & 0xFF
    data[:, 7] = byte7
    return FrameBatch(
        timestamp_s=(np.arange(n) * 0.05).astype(np.float64),
        frame_id=np.full(n, ID, np.uint32),
        is_extended=np.zeros(n, np.bool_),
        bus=np.zeros(n, np.uint16),
        length=np.full(n, 8, np.uint8),
        data=data,
    )


def _fitted() -> tuple[ConstantBitDetector, IdTable]:
    # benign drives: byte 7 reads 08 or 88 (bit 0x80 toggles, bit 0x04 is never set)
    drives = [_frames([0x08, 0x88] * 200), _frames([0x88, 0x08, 0x08] * 150)]
    ids = IdTable(np.array([ID], np.int64))
    detector = ConstantBitDetector()
    detector.fit(ids, [index_batch(d, ids, StreamState(len(ids) + 1)) for d in drives])
    return detector, ids


def _flagged(detector: ConstantBitDetector, ids: IdTable, byte7: list[int], cut: int) -> list[int]:
    """Frames the detector flags when the stream arrives in two batches (split at ``cut``);
    flagged frames are not accepted, as on the vehicle."""
    frames = _frames(byte7)
    state = StreamState(len(ids) + 1)
    out: list[int] = []
    for part in (np.arange(cut), np.arange(cut, len(byte7))):
        view = index_batch(frames.take(part), ids, state)
        hit: npt.NDArray[np.bool_] = detector.score(view) / detector.floor > 1.0
        out += part[hit].tolist()
        advance(state, index_batch(frames.take(part), ids, state, ~hit))
    return out


def test_a_new_bit_that_holds_is_flagged_once_where_it_is_set() -> None:
    detector, ids = _fitted()
    # bit 0x04 comes on at frame 10 and stays (84/04: the known bit 0x80 keeps toggling)
    byte7 = [0x08, 0x88] * 5 + [0x84, 0x04, 0x84, 0x84, 0x04] * 6
    for cut in (5, 10, 11, 20):  # wherever the batches break, the previous frame is known
        assert _flagged(detector, ids, byte7, cut) == [10]


def test_the_bit_set_again_after_it_went_back_is_a_new_event() -> None:
    detector, ids = _fitted()
    byte7 = [0x08] * 5 + [0x0C] * 5 + [0x08] * 5 + [0x8C] * 5
    assert _flagged(detector, ids, byte7, 7) == [5, 15]


def test_single_frames_with_new_bits_between_genuine_ones_are_each_flagged() -> None:
    detector, ids = _fitted()
    # fuzzing: one forged frame now and then, the genuine frames around it unchanged
    byte7 = [0x08, 0x88, 0xFF, 0x08, 0x88, 0x88, 0xFF, 0x08, 0xFF, 0x88]
    assert _flagged(detector, ids, byte7, 4) == [2, 6, 8]


def test_calibration_still_sees_every_frame_with_the_new_bit() -> None:
    # held-out calibration (``fired``) judges the bit itself: a held-out drive that keeps a new
    # bit distrusts that bit however often it repeats
    detector, ids = _fitted()
    frames = _frames([0x08] * 5 + [0x0C] * 5)
    fired = detector.fired(index_batch(frames, ids, StreamState(len(ids) + 1)), ids)
    assert fired == {(ID, 61)}  # bit 0x04 of byte 7 (bits numbered from byte 0's MSB)
