"""The micro-batching worker on the in-process bus: shared subscriptions, micro-batches, acks
after commit, retries when the pipeline fails, clean stop."""

from __future__ import annotations

import threading
import time

import pyarrow as pa
import pytest
from ingest_helpers import SOC, Fleet, telemetry, wall_clock_ns

from drivetrain.cloud.infra import Database
from drivetrain.cloud.ingest import IngestPipeline, MemoryLake, MemoryReportedState
from drivetrain.cloud.ingest.worker import IngestWorker
from drivetrain.core.errors import StorageError
from drivetrain.core.transport import InProcessTransport, Message, vehicle_topic
from drivetrain.core.wire import Ack, MessageKind, seal_json


def _publish_batches(bus: InProcessTransport, fleet: Fleet, count: int) -> list[str]:
    ids = []
    now = wall_clock_ns()
    for i in range(count):
        name = ("eu1", "eu2", "us1")[i % 3]
        message = telemetry(
            fleet.vin(name),
            fleet.key(name),
            [(SOC, now + j, float(i % 100)) for j in range(10)],
            seq=i,
        )
        bus.publish(message.topic, message.payload)
        ids.append(message.topic)
    return ids


def test_two_workers_share_the_stream_and_store_every_batch_once(
    database: Database, fleet: Fleet, lake: MemoryLake
) -> None:
    with InProcessTransport() as bus:
        workers = [
            IngestWorker(
                bus,
                IngestPipeline(database, lake, MemoryReportedState()),
                max_batch_messages=8,
                max_delay_ms=20,
            ).start()
            for _ in range(2)
        ]
        _publish_batches(bus, fleet, 60)
        bus.drain(10)
        for worker in workers:
            assert worker.wait_idle(30)
            worker.stop()
    rows = lake.rows()
    assert rows is not None and rows.num_rows == 600
    per_batch = pa.TableGroupBy(rows, "batch_id").aggregate([("value", "count")])
    assert per_batch.num_rows == 60 and set(per_batch.column("value_count").to_pylist()) == {10}
    stats = [w.stats() for w in workers]
    assert sum(s.acknowledged for s in stats) == 60
    assert all(s.acknowledged > 0 for s in stats)  # both members of the group did work
    assert all(s.micro_batches < s.acknowledged for s in stats)  # messages were batched


def test_events_and_acks_are_consumed_from_their_own_channels(
    database: Database, fleet: Fleet, lake: MemoryLake
) -> None:
    reported = MemoryReportedState()
    vin, key = fleet.vin("eu1"), fleet.key("eu1")
    ack = Ack(ref="b" * 32, ref_kind="desired_state", status="rejected", detail="no", version=0)
    with InProcessTransport() as bus:
        worker = IngestWorker(bus, IngestPipeline(database, lake, reported)).start()
        bus.publish(
            vehicle_topic(vin, "ack"),
            seal_json(MessageKind.ACK, vin, ack.to_dict(), key=key, seq=1),
        )
        bus.drain(10)
        assert worker.wait_idle(30)
        worker.stop()
    assert reported.acks[vin] == [ack]


def test_a_failing_pipeline_is_retried_and_nothing_is_acknowledged_before_it_commits(
    database: Database, fleet: Fleet, lake: MemoryLake
) -> None:
    acked: list[str] = []

    class FlakyLake(MemoryLake):
        failures = 2

        def append(self, region: str, tenant: str, table: pa.Table):  # type: ignore[no-untyped-def]
            if self.failures:
                self.failures -= 1
                assert acked == []  # nothing acknowledged while the batch is not committed
                raise StorageError("lake unavailable")
            return super().append(region, tenant, table)

    flaky = FlakyLake()
    worker = IngestWorker(
        transport=InProcessTransport(),
        pipeline=IngestPipeline(database, flaky, MemoryReportedState()),
        max_batch_messages=5,
        max_delay_ms=10,
    )
    message = telemetry(fleet.vin("eu1"), fleet.key("eu1"), [(SOC, wall_clock_ns(), 5.0)])
    worker._receive(Message(message.topic, message.payload, _ack=lambda: acked.append("x")))
    thread = threading.Thread(target=worker._run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not acked and time.monotonic() < deadline:
        time.sleep(0.05)
    worker.stop()
    thread.join(5)
    assert acked == ["x"] and worker.stats().failures == 2
    rows = flaky.rows()
    assert rows is not None and rows.num_rows == 1


def test_stop_finishes_the_messages_in_hand(
    database: Database, fleet: Fleet, lake: MemoryLake
) -> None:
    with InProcessTransport() as bus:
        worker = IngestWorker(
            bus,
            IngestPipeline(database, lake, MemoryReportedState()),
            max_batch_messages=1000,
            max_delay_ms=60_000,
        ).start()
        _publish_batches(bus, fleet, 12)
        bus.drain(10)
        worker.stop()
        assert not worker.running
    rows = lake.rows()
    assert rows is not None and rows.num_rows == 120
    assert worker.stats().pending == 0


def test_worker_refuses_nonsense_batch_settings(database: Database, lake: MemoryLake) -> None:
    pipeline = IngestPipeline(database, lake, MemoryReportedState())
    with pytest.raises(ValueError, match="max_batch_messages"):
        IngestWorker(InProcessTransport(), pipeline, max_batch_messages=0)


def test_the_worker_forgets_ingested_batch_ids_older_than_the_retention(
    database: Database, fleet: Fleet, lake: MemoryLake
) -> None:
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import select

    from drivetrain.cloud.ingest.models import SeenBatchRow
    from drivetrain.cloud.ingest.records import mark_seen

    with database.session() as session:
        mark_seen(
            session,
            [("a" * 32, fleet.vin("eu1"), "telemetry")],
            datetime.now(UTC) - timedelta(days=3),
        )
        mark_seen(session, [("b" * 32, fleet.vin("eu1"), "telemetry")], datetime.now(UTC))
    pipeline = IngestPipeline(database, lake, MemoryReportedState())
    with InProcessTransport() as bus:
        worker = IngestWorker(bus, pipeline, ledger_retention_s=86_400, prune_interval_s=0)
        worker.start()
        deadline = time.monotonic() + 10
        remaining: list[str] = []
        while time.monotonic() < deadline:
            with database.session() as session:
                remaining = list(session.scalars(select(SeenBatchRow.batch_id)))
            if remaining == ["b" * 32]:
                break
            time.sleep(0.05)
        worker.stop()
    assert remaining == ["b" * 32]


def test_a_stopping_member_of_the_group_leaves_its_share_to_the_others(
    database: Database, fleet: Fleet, lake: MemoryLake
) -> None:
    failures: list[object] = []
    with InProcessTransport(on_handler_error=failures.append) as bus:
        stopped, running = (
            IngestWorker(
                bus,
                IngestPipeline(database, lake, MemoryReportedState()),
                max_batch_messages=4,
                max_delay_ms=10,
            ).start()
            for _ in range(2)
        )
        stopped.stop()  # still subscribed: the bus keeps handing it every other message
        _publish_batches(bus, fleet, 20)
        bus.drain(10)
        assert running.wait_idle(30)
        running.stop()
        assert bus.stats().undelivered == 0
    rows = lake.rows()
    assert rows is not None and rows.num_rows == 200  # every batch stored, none swallowed
    assert failures  # the refusals were reported, not hidden
