"""Latest values reach the twins coalesced under load: a worker keeps the newest sample per
(vehicle, signal) across micro-batches and writes them when due or idle, never an older value
over a newer one."""

from __future__ import annotations

from ingest_helpers import SOC, Fleet, telemetry, wall_clock_ns

from drivetrain.cloud.infra import Database
from drivetrain.cloud.ingest import IngestPipeline, IngestWorker, MemoryLake, MemoryReportedState
from drivetrain.core.transport import InProcessTransport


def test_a_worker_writes_the_newest_value_per_signal_once_it_is_idle(
    database: Database, fleet: Fleet, lake: MemoryLake
) -> None:
    twins = MemoryReportedState()
    pipeline = IngestPipeline(database, lake, twins, twin_flush_s=3600.0)
    now = wall_clock_ns()
    vin, key = fleet.vin("eu1"), fleet.key("eu1")
    # newest SOC first, then older ones: the newest must win whatever the arrival order
    messages = [telemetry(vin, key, [(SOC, now + 10_000, 80.0)], seq=0)]
    messages += [telemetry(vin, key, [(SOC, now + i, float(i))], seq=1 + i) for i in range(20)]
    with InProcessTransport() as bus:
        worker = IngestWorker(bus, pipeline, max_batch_messages=4, max_delay_ms=5).start()
        for message in messages:
            bus.publish(message.topic, message.payload)
        bus.drain(10)
        assert worker.wait_idle(30)
        worker.stop()
    assert pipeline.pending_reports == 0
    assert twins.values[vin][SOC][0] == 80.0
    rows = lake.rows()
    assert rows is not None and rows.num_rows == 21  # every sample is in the lake


def test_pending_values_are_written_only_when_flushed(
    database: Database, fleet: Fleet, lake: MemoryLake
) -> None:
    twins = MemoryReportedState()
    pipeline = IngestPipeline(database, lake, twins, twin_flush_s=60.0)
    vin, key = fleet.vin("eu2"), fleet.key("eu2")
    now = wall_clock_ns()
    pipeline.process([telemetry(vin, key, [(SOC, now, 40.0)], seq=1)])
    pipeline.process([telemetry(vin, key, [(SOC, now + 1, 41.0)], seq=2)])
    assert twins.values == {} and pipeline.pending_reports == 1
    assert pipeline.flush_reported() == 1
    assert twins.values[vin][SOC][0] == 41.0 and pipeline.pending_reports == 0
