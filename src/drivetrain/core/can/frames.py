"""Columnar containers for CAN frames and decoded signal values.

The codec works on whole batches: readers produce a ``FrameBatch`` (NumPy arrays, one row per
frame), the batch decoder turns it into ``DecodedSignals`` (one row per signal value). Both are
plain frozen dataclasses over arrays so they can be sliced, concatenated and handed to Arrow
without copying row by row.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

#: Classic CAN carries 8 data bytes; CAN FD up to 64.
CLASSIC_CAN_MAX_BYTES = 8
CAN_FD_MAX_BYTES = 64


@dataclass(frozen=True)
class FrameBatch:
    """A batch of CAN frames, one row per frame.

    ``data`` is a 2-D ``uint8`` array of shape ``(n, width)`` where ``width`` is 8 for classic
    CAN or up to 64 for CAN FD; bytes past a frame's ``length`` are zero.
    """

    timestamp_s: npt.NDArray[np.float64]
    frame_id: npt.NDArray[np.uint32]
    is_extended: npt.NDArray[np.bool_]
    bus: npt.NDArray[np.uint16]
    length: npt.NDArray[np.uint8]
    data: npt.NDArray[np.uint8]

    def __post_init__(self) -> None:
        n = len(self.timestamp_s)
        for name in ("frame_id", "is_extended", "bus", "length"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"FrameBatch.{name} has {len(getattr(self, name))} rows, expected {n}")
        if self.data.ndim != 2 or self.data.shape[0] != n:
            raise ValueError(f"FrameBatch.data must have shape (n={n}, width), got {self.data.shape}")

    def __len__(self) -> int:
        return len(self.timestamp_s)

    @classmethod
    def empty(cls, width: int = CLASSIC_CAN_MAX_BYTES) -> FrameBatch:
        return cls(
            timestamp_s=np.empty(0, np.float64),
            frame_id=np.empty(0, np.uint32),
            is_extended=np.empty(0, np.bool_),
            bus=np.empty(0, np.uint16),
            length=np.empty(0, np.uint8),
            data=np.empty((0, width), np.uint8),
        )

    def take(self, rows: npt.NDArray[np.bool_] | npt.NDArray[np.intp]) -> FrameBatch:
        """The frames selected by a boolean mask or an index array."""
        return FrameBatch(
            timestamp_s=self.timestamp_s[rows],
            frame_id=self.frame_id[rows],
            is_extended=self.is_extended[rows],
            bus=self.bus[rows],
            length=self.length[rows],
            data=self.data[rows],
        )

    @classmethod
    def concat(cls, batches: list[FrameBatch]) -> FrameBatch:
        """One batch holding every frame of ``batches`` in order (data padded to the widest)."""
        if not batches:
            return cls.empty()
        width = max(b.data.shape[1] for b in batches)
        data = np.zeros((sum(len(b) for b in batches), width), np.uint8)
        start = 0
        for b in batches:
            data[start : start + len(b), : b.data.shape[1]] = b.data
            start += len(b)
        return cls(
            timestamp_s=np.concatenate([b.timestamp_s for b in batches]),
            frame_id=np.concatenate([b.frame_id for b in batches]),
            is_extended=np.concatenate([b.is_extended for b in batches]),
            bus=np.concatenate([b.bus for b in batches]),
            length=np.concatenate([b.length for b in batches]),
            data=data,
        )


@dataclass(frozen=True)
class DecodedSignals:
    """Decoded signal values, one row per (frame, signal).

    ``message_index``/``signal_index`` point into ``message_names``/``signal_names`` (a
    dictionary encoding: cheap to build, and maps straight onto Arrow dictionary arrays).
    ``value`` is the physical value (raw * scale + offset), exactly as cantools'
    ``decode(..., decode_choices=False)`` returns it, as float64.
    """

    timestamp_s: npt.NDArray[np.float64]
    frame_id: npt.NDArray[np.uint32]
    bus: npt.NDArray[np.uint16]
    message_index: npt.NDArray[np.int32]
    signal_index: npt.NDArray[np.int32]
    value: npt.NDArray[np.float64]
    message_names: tuple[str, ...]
    signal_names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.value)
