"""Putting synthesized frames on a python-can bus, where an edge agent reads them.

``open_virtual_bus("vehicle-0007")`` opens python-can's in-process virtual bus: every bus opened
on the same channel name (in this process) receives what the others send, like ECUs on one wire.
``send_frames(bus, frames)`` sends a ``FrameBatch`` in order, as fast as possible or paced to the
frames' timestamps (``realtime=True``). Log files are written with the foundation's capture
writers: ``drivetrain.core.can.captures.write_capture(path, frames)`` (``.log`` candump,
``.blf``, ``.asc``, ``.csv``), or ``LabelledFrames.write`` for attack ground truth.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import can

from drivetrain.core.can import FrameBatch
from drivetrain.core.errors import TransportError


def open_virtual_bus(channel: str, *, receive_own_messages: bool = False) -> can.BusABC:
    """A python-can virtual bus on ``channel`` (shared by every bus opened on that name).

    Raises:
        TransportError: python-can cannot open it.
    """
    try:
        return can.Bus(
            interface="virtual", channel=channel, receive_own_messages=receive_own_messages
        )
    except (can.CanError, OSError, ValueError) as e:
        raise TransportError(f"cannot open virtual CAN bus {channel!r}: {e}") from e


def frame_messages(frames: FrameBatch, *, channel: str | None = None) -> Iterator[can.Message]:
    """The frames as python-can ``Message`` objects (data frames, classic CAN), in order."""
    data = frames.data
    lengths = frames.length.tolist()
    for i, (t, frame_id, extended) in enumerate(
        zip(frames.timestamp_s.tolist(), frames.frame_id.tolist(), frames.is_extended.tolist())
    ):
        length = lengths[i]
        yield can.Message(
            timestamp=t,
            arbitration_id=frame_id,
            is_extended_id=extended,
            dlc=length,
            data=data[i, :length].tobytes(),
            channel=channel,
            check=False,
        )


def send_frames(
    bus: can.BusABC,
    frames: FrameBatch,
    *,
    realtime: bool = False,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Send every frame on ``bus`` in order; return how many were sent.

    With ``realtime``, frame ``i`` leaves ``timestamp[i] - timestamp[0]`` seconds after the
    first (``clock``/``sleep`` may be replaced, e.g. by a simulation clock).

    Raises:
        TransportError: the bus refused a frame (the message says which, and how many went out).
    """
    sent = 0
    started = clock()
    first = float(frames.timestamp_s[0]) if len(frames) else 0.0
    for message in frame_messages(frames):
        if realtime:
            wait = (message.timestamp - first) - (clock() - started)
            if wait > 0:
                sleep(wait)
        try:
            bus.send(message)
        except can.CanError as e:
            raise TransportError(
                f"bus refused frame {sent} (id 0x{message.arbitration_id:X}) after {sent} sent: {e}"
            ) from e
        sent += 1
    return sent
