"""Synthesized frames on a python-can virtual bus, as an edge agent reads them."""

from __future__ import annotations

import uuid

import can
import numpy as np
import pytest

from drivetrain.core.errors import TransportError
from drivetrain.sim.can import FrameSynthesizer, open_virtual_bus, send_frames


def test_frames_sent_on_a_virtual_bus_arrive_in_order_unchanged(
    suv_synthesizer: FrameSynthesizer,
) -> None:
    frames = suv_synthesizer.synthesize(0.0, 0.5, {"Vehicle.Speed": [72.0]}).for_vehicle(0)
    channel = f"vehicle-{uuid.uuid4()}"
    reader = open_virtual_bus(channel)
    writer = open_virtual_bus(channel)
    try:
        assert send_frames(writer, frames) == len(frames)
        arrived = [reader.recv(timeout=1.0) for _ in range(len(frames))]
        assert reader.recv(timeout=0.01) is None
    finally:
        reader.shutdown()
        writer.shutdown()
    received = [m for m in arrived if m is not None]
    assert len(received) == len(frames)
    assert [m.arbitration_id for m in received] == frames.frame_id.tolist()
    assert [m.is_extended_id for m in received] == frames.is_extended.tolist()
    assert [bytes(m.data) for m in received] == [
        bytes(frames.data[i, : frames.length[i]]) for i in range(len(frames))
    ]
    assert any(m.is_extended_id for m in received)


def test_realtime_sending_paces_frames_to_their_timestamps(
    suv_synthesizer: FrameSynthesizer,
) -> None:
    frames = suv_synthesizer.synthesize(0.0, 0.2, {}, vehicle_ids=[0]).for_vehicle(0)
    now = [0.0]
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    bus = open_virtual_bus(f"paced-{uuid.uuid4()}")
    try:
        send_frames(bus, frames, realtime=True, clock=lambda: now[0], sleep=sleep)
    finally:
        bus.shutdown()
    assert now[0] == pytest.approx(frames.timestamp_s[-1] - frames.timestamp_s[0])
    assert all(w > 0 for w in waits)


def test_a_bus_that_refuses_frames_raises_a_transport_error_naming_the_frame(
    suv_synthesizer: FrameSynthesizer,
) -> None:
    frames = suv_synthesizer.synthesize(0.0, 0.1, {}, vehicle_ids=[0]).for_vehicle(0)

    class BrokenBus(can.BusABC):
        def __init__(self) -> None:
            super().__init__(channel="broken")
            self.sent = 0

        def send(self, msg: can.Message, timeout: float | None = None) -> None:
            if self.sent == 3:
                raise can.CanOperationError("bus off")
            self.sent += 1

        def _recv_internal(self, timeout: float | None) -> tuple[None, bool]:
            return None, False

    bus = BrokenBus()
    with pytest.raises(
        TransportError, match=r"refused frame 3 \(id 0x[0-9A-F]+\) after 3 sent: bus off"
    ):
        send_frames(bus, frames)
    bus.shutdown()
    assert np.all(frames.length <= 8)
