"""Where the agent's CAN frames come from: a python-can bus or a capture replayed in time.

``open_frame_source`` takes the CLI's ``--bus`` form:

=====================  ============================================================================
``virtual:CHANNEL``    python-can's virtual bus (the simulator publishes there; same process)
``socketcan:can0``     a Linux SocketCAN interface (a real car, or ``vcan0``)
``log:FILE``           a capture (candump ``.log``, ``.asc``, ``.blf``, CSV) replayed in time
=====================  ============================================================================

Every source is non-blocking: ``read()`` returns the frames available now as one
``FrameBatch`` with Unix-time timestamps (seconds), so the agent's tick never waits on the bus.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

import can
import numpy as np

from drivetrain.core.can import (
    CAN_FD_MAX_BYTES,
    CLASSIC_CAN_MAX_BYTES,
    CaptureChunk,
    FrameBatch,
    iter_capture,
)
from drivetrain.core.errors import ConfigurationError, TransportError

#: Most frames one ``read`` returns (a tick's work stays bounded).
DEFAULT_MAX_FRAMES = 50_000


class FrameSource(Protocol):
    """Frames for the agent, without blocking."""

    def read(self, max_frames: int = DEFAULT_MAX_FRAMES) -> FrameBatch:
        """The frames available now (possibly none); timestamps in Unix seconds."""
        ...

    @property
    def finished(self) -> bool:
        """True when no frame will ever come again (a replayed capture at its end)."""
        ...

    def close(self) -> None: ...


class BusSource:
    """Frames received on a python-can bus (``virtual``, ``socketcan``, ...).

    Args:
        bus: an open python-can bus; closed by ``close()``.
        bus_index: the ``FrameBatch.bus`` number given to its frames.
    """

    def __init__(self, bus: can.BusABC, bus_index: int = 0) -> None:
        self.bus = bus
        self.bus_index = bus_index
        self.frames_read = 0

    def read(self, max_frames: int = DEFAULT_MAX_FRAMES) -> FrameBatch:
        messages: list[can.Message] = []
        try:
            while len(messages) < max_frames:
                message = self.bus.recv(timeout=0)
                if message is None:
                    break
                if message.is_error_frame or message.is_remote_frame:
                    continue
                messages.append(message)
        except (can.CanError, OSError) as e:
            raise TransportError(f"CAN bus {self.bus.channel_info}: receive failed: {e}") from e
        self.frames_read += len(messages)
        return frames_from_messages(messages, self.bus_index)

    @property
    def finished(self) -> bool:
        return False

    def close(self) -> None:
        self.bus.shutdown()


def frames_from_messages(messages: list[can.Message], bus_index: int = 0) -> FrameBatch:
    """One ``FrameBatch`` from python-can messages (data zero-padded to the widest frame)."""
    if not messages:
        return FrameBatch.empty()
    width = (
        CAN_FD_MAX_BYTES
        if any(m.dlc > CLASSIC_CAN_MAX_BYTES for m in messages)
        else CLASSIC_CAN_MAX_BYTES
    )
    data = np.zeros((len(messages), width), np.uint8)
    for i, m in enumerate(messages):
        payload = bytes(m.data[: m.dlc])
        data[i, : len(payload)] = np.frombuffer(payload, np.uint8)
    return FrameBatch(
        timestamp_s=np.array([m.timestamp for m in messages], np.float64),
        frame_id=np.array([m.arbitration_id for m in messages], np.uint32),
        is_extended=np.array([m.is_extended_id for m in messages], np.bool_),
        bus=np.full(len(messages), bus_index, np.uint16),
        length=np.array([m.dlc for m in messages], np.uint8),
        data=data,
    )


class CaptureReplaySource:
    """A capture file replayed as if it were live: frames are released when their time (since
    the capture's first frame, divided by ``speed``) has passed, with timestamps moved to now.

    Args:
        path: the capture (any format ``iter_capture`` reads).
        speed: 1.0 = real time, 10.0 = ten times faster. Timestamps are compressed by the
            same factor, so a replayed sample is never dated after the moment it is released.
        clock: wall clock, Unix seconds (injectable for tests).

    Raises:
        CaptureFormatError: the file cannot be read as a capture.
    """

    def __init__(
        self, path: str | Path, *, speed: float = 1.0, clock: Callable[[], float] = time.time
    ) -> None:
        if not speed > 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        self.path = Path(path)
        self.speed = speed
        self._clock = clock
        self._chunks: Iterator[CaptureChunk] = iter_capture(path, chunk_frames=20_000)
        self._current = FrameBatch.empty()
        self._next = 0
        self._done = False
        self._t0: float | None = None
        self._start = clock()
        self.frames_read = 0

    def _fill(self) -> bool:
        while self._next >= len(self._current):
            chunk = next(self._chunks, None)
            if chunk is None:
                self._done = True
                return False
            self._current, self._next = chunk.frames, 0
        return True

    def read(self, max_frames: int = DEFAULT_MAX_FRAMES) -> FrameBatch:
        parts: list[FrameBatch] = []
        wanted = max_frames
        now = self._clock()
        while wanted > 0 and self._fill():
            frames = self._current
            if self._t0 is None:
                self._t0 = float(frames.timestamp_s[self._next])
            replay_s = (frames.timestamp_s[self._next :] - self._t0) / self.speed
            ready = int(np.searchsorted(replay_s, now - self._start, side="right"))
            take = min(ready, wanted)
            if take == 0:
                break
            part = frames.take(np.arange(self._next, self._next + take))
            shifted = self._start + (part.timestamp_s - self._t0) / self.speed  # Unix time
            parts.append(
                FrameBatch(
                    shifted, part.frame_id, part.is_extended, part.bus, part.length, part.data
                )
            )
            self._next += take
            wanted -= take
            if take < ready or self._next < len(frames):
                break
        batch = (
            FrameBatch.concat(parts)
            if len(parts) > 1
            else (parts[0] if parts else FrameBatch.empty())
        )
        self.frames_read += len(batch)
        return batch

    @property
    def finished(self) -> bool:
        return self._done and self._next >= len(self._current)

    def close(self) -> None:
        """Nothing to release beyond the file reader, which closes at its end."""


def open_frame_source(spec: str, *, speed: float = 1.0) -> FrameSource:
    """Open the frame source named by ``spec`` (see the module docstring).

    Raises:
        ConfigurationError: ``spec`` is not one of the three forms.
        TransportError: python-can cannot open the interface (e.g. no such SocketCAN device).
        CaptureFormatError: a ``log:`` file that cannot be read as a capture.
    """
    kind, sep, target = spec.partition(":")
    if not sep or not target:
        raise ConfigurationError(
            f"--bus {spec!r}: expected virtual:CHANNEL, socketcan:INTERFACE or log:FILE"
        )
    if kind == "log":
        return CaptureReplaySource(target, speed=speed)
    if kind not in ("virtual", "socketcan"):
        raise ConfigurationError(
            f"--bus {spec!r}: unknown bus kind {kind!r}; expected virtual, socketcan or log"
        )
    try:
        bus = can.Bus(interface=kind, channel=target)
    except (can.CanError, OSError, ValueError, ImportError) as e:
        raise TransportError(f"cannot open CAN bus {spec!r}: {e}") from e
    return BusSource(bus)
