"""CAN input of the agent: python-can's virtual bus and captures replayed in time, decoded to VSS
with the foundation codec, through the agent to the cloud's receiver."""

from __future__ import annotations

import time
from pathlib import Path

import can
import cantools
import numpy as np
import pytest
from edge_testkit import CloudReceiver, make_identity

from drivetrain.core.can import FrameBatch, write_capture
from drivetrain.core.errors import CaptureFormatError, ConfigurationError, TransportError
from drivetrain.core.transport import InProcessTransport
from drivetrain.core.transport.testing import unique_name
from drivetrain.core.vss import builtin_catalog
from drivetrain.edge import (
    BusSource,
    Campaign,
    CanDecoding,
    CaptureReplaySource,
    EdgeAgent,
    MemoryBuffer,
    open_frame_source,
)

DATA = Path(__file__).parents[2] / "src/drivetrain/sim/data"
DBC, MAP = DATA / "drivetrain_bev.dbc", DATA / "drivetrain_bev_vss.toml"
CATALOG = builtin_catalog()


def _drive_message(
    database: cantools.database.Database, speed_kmh: float, counter: int
) -> can.Message:
    message = database.get_message_by_name("VCU_Drive")
    values = {s.name: 0 for s in message.signals}
    values.update(VehicleSpeed=speed_kmh, VCU_Drive_Counter=counter % 16)
    data = message.encode(values, strict=False)
    return can.Message(arbitration_id=message.frame_id, data=data, is_extended_id=False)


def test_frames_on_the_virtual_bus_reach_the_cloud_as_vss_samples() -> None:
    channel = unique_name("vcan")
    database = cantools.database.load_file(DBC)
    sender = can.Bus(interface="virtual", channel=channel)
    source = open_frame_source(f"virtual:{channel}")
    identity = make_identity()
    receiver = CloudReceiver({identity.vin: identity.signing_key.verify_key})
    with InProcessTransport() as bus:
        bus.subscribe("dt/v1/+/#", receiver.handle)
        agent = EdgeAgent(
            identity, bus, MemoryBuffer(), catalog=CATALOG,
            can=CanDecoding.load(DBC, MAP, CATALOG),
        )  # fmt: skip
        agent.install_local([Campaign.from_dict(
            {"id": "speed", "version": 1, "signals": ["Vehicle.Speed"], "period_ms": 10}, CATALOG
        )])  # fmt: skip
        speeds = [12.5, 50.0, 87.25, 130.0]
        for i, speed in enumerate(speeds):
            time.sleep(0.02)  # one frame per 10 ms sampling slot
            sender.send(_drive_message(database, speed, i))
            frames = source.read()
            assert len(frames) == 1
            agent.tick(int(frames.timestamp_s[0] * 1e9) + 10_000_000, frames=frames)
        agent.flush()
        agent.tick()
        bus.drain()
    sender.shutdown()
    source.close()
    got = [(p, v) for p, _, v in receiver.samples()]
    assert got == [("Vehicle.Speed", s) for s in speeds]
    assert agent.can is not None and agent.can.counters.frames == 4


def test_bus_source_reads_without_blocking_and_counts_no_error_frames() -> None:
    channel = unique_name("vcan")
    sender = can.Bus(interface="virtual", channel=channel)
    source = BusSource(can.Bus(interface="virtual", channel=channel))
    try:
        assert len(source.read()) == 0
        sender.send(
            can.Message(arbitration_id=0x18FEF100, data=bytes(range(8)), is_extended_id=True)
        )
        sender.send(can.Message(arbitration_id=0x123, is_error_frame=True))
        sender.send(
            can.Message(arbitration_id=0x7FF, data=bytes(12), is_fd=True, is_extended_id=False)
        )
        frames = source.read()
        assert frames.frame_id.tolist() == [0x18FEF100, 0x7FF]
        assert frames.is_extended.tolist() == [True, False]
        assert frames.length.tolist() == [8, 12] and frames.data.shape == (2, 64)
        assert frames.data[0, :8].tolist() == list(range(8))
    finally:
        sender.shutdown()
        source.close()


def _capture(tmp_path: Path, seconds: int = 10) -> Path:
    n = seconds * 100
    frames = FrameBatch(
        timestamp_s=1_600_000_000.0 + np.arange(n) * 0.01,
        frame_id=np.full(n, 0x100, np.uint32),
        is_extended=np.zeros(n, np.bool_),
        bus=np.zeros(n, np.uint16),
        length=np.full(n, 8, np.uint8),
        data=np.zeros((n, 8), np.uint8),
    )
    path = tmp_path / "capture.log"
    write_capture(path, frames)
    return path


def test_capture_replay_releases_frames_in_time_with_compressed_timestamps(tmp_path: Path) -> None:
    clock = [1000.0]
    source = CaptureReplaySource(_capture(tmp_path), speed=4.0, clock=lambda: clock[0])
    first = source.read()
    assert len(first) == 1 and first.timestamp_s[0] == pytest.approx(1000.0)
    clock[0] += 0.5  # = 2 s of capture at 4x
    second = source.read()
    assert len(second) == 200
    assert second.timestamp_s[-1] == pytest.approx(1000.5)
    assert np.all(second.timestamp_s <= clock[0])  # never dated after it was released
    clock[0] += 100
    rest = source.read(max_frames=300)
    assert len(rest) == 300 and not source.finished
    while not source.finished:
        source.read()
    assert source.frames_read == 1000


@pytest.mark.parametrize(
    ("spec", "error", "message"),
    [
        ("vcan0", ConfigurationError, "expected virtual:CHANNEL"),
        ("serial:ttyS0", ConfigurationError, "unknown bus kind 'serial'"),
        ("log:/nonexistent/capture.log", CaptureFormatError, "does not exist"),
        ("socketcan:nosuchcan9", TransportError, "cannot open CAN bus 'socketcan:nosuchcan9'"),
    ],
)
def test_bad_bus_specs_are_refused_naming_them(
    spec: str, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        open_frame_source(spec)
