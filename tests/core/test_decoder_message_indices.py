"""BatchDecoder.message_indices: the message of each frame by id and extended flag."""

from __future__ import annotations

import numpy as np
from cantools.database.can import Database, Message, Signal

from drivetrain.core.can import BatchDecoder, FrameBatch


def _batch(ids: list[int], extended: list[bool]) -> FrameBatch:
    n = len(ids)
    return FrameBatch(
        timestamp_s=np.arange(n, dtype=np.float64),
        frame_id=np.array(ids, np.uint32),
        is_extended=np.array(extended, np.bool_),
        bus=np.zeros(n, np.uint16),
        length=np.full(n, 8, np.uint8),
        data=np.zeros((n, 8), np.uint8),
    )


def test_frames_map_to_their_message_and_unknown_ids_to_minus_one() -> None:
    database = Database(
        messages=[
            Message(0x100, "STANDARD", 8, [Signal("A", 0, 8)]),
            Message(0x100, "EXTENDED", 8, [Signal("B", 0, 8)], is_extended_frame=True),
            Message(0x7FF, "TOP", 8, [Signal("C", 0, 8)]),
        ]
    )
    decoder = BatchDecoder(database)
    batch = _batch(
        [0x100, 0x100, 0x7FF, 0x101, 0x800, 0x1FFF_FFFF, 0x7FF],
        [False, True, False, False, False, True, True],
    )

    indices = decoder.message_indices(batch)

    names = [decoder.message_names[i] if i >= 0 else None for i in indices.tolist()]
    assert names == ["STANDARD", "EXTENDED", "TOP", None, None, None, None]
