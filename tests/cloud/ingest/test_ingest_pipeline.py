"""The pipeline against a real state database (SQLite and PostgreSQL): routing by region and
tenant, pseudonyms, consent, exactly-once, reported state, events and acks, counters."""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa
import pytest
from ingest_helpers import LATITUDE, NOW_NS, SECOND, SOC, SPEED, Fleet, telemetry
from sqlalchemy import func, select

from drivetrain.cloud.fleet import get_vehicle
from drivetrain.cloud.infra import Database
from drivetrain.cloud.ingest import IngestPipeline, MemoryLake, MemoryReportedState, RawMessage
from drivetrain.cloud.ingest.models import SeenBatchRow
from drivetrain.cloud.ingest.service import ingest_stats, list_dead_letters, list_vehicle_events
from drivetrain.cloud.privacy import set_consent, vehicle_pseudonym
from drivetrain.core.errors import StorageError
from drivetrain.core.transport import vehicle_topic
from drivetrain.core.wire import Ack, MessageKind, VehicleEvent, events_to_dict, seal_json


def _counts(
    database: Database, tenant: str | None = "acme"
) -> dict[tuple[str, str], tuple[int, int]]:
    with database.session() as session:
        stats = ingest_stats(session, tenant=tenant)
    return {(v.vin, o.outcome): (o.messages, o.samples) for v in stats.vehicles for o in v.outcomes}


def test_valid_batch_lands_in_its_regions_lake_under_a_pseudonym(
    pipeline: IngestPipeline, fleet: Fleet, lake: MemoryLake, database: Database
) -> None:
    message = telemetry(
        fleet.vin("eu1"), fleet.key("eu1"), [(SOC, NOW_NS, 80.0), (SOC, NOW_NS + SECOND, 79.5)]
    )
    report = pipeline.process([message])
    assert report.samples_accepted == 2 and report.rows_written == 2
    rows = lake.rows("EU", "acme")
    assert rows is not None and rows.num_rows == 2
    with database.session() as session:
        pseudonym = vehicle_pseudonym(session, "acme", fleet.vin("eu1"))
    assert set(rows.column("vehicle").to_pylist()) == {pseudonym}
    assert fleet.vin("eu1") not in str(rows.to_pylist())
    assert rows.column("category").to_pylist() == ["technical"] * 2
    assert rows.column("value").to_pylist() == [80.0, 79.5]
    assert lake.rows("US") is None


def test_one_micro_batch_is_split_by_region_and_tenant(
    pipeline: IngestPipeline, fleet: Fleet, lake: MemoryLake
) -> None:
    messages = [
        telemetry(fleet.vin(name), fleet.key(name), [(SOC, NOW_NS, float(i))])
        for i, name in enumerate(["eu1", "us1", "gx1", "eu2"])
    ]
    pipeline.process(messages)
    assert set(lake.tables) == {("EU", "acme"), ("US", "acme"), ("EU", "globex")}
    eu = lake.rows("EU", "acme")
    assert eu is not None and sorted(eu.column("value").to_pylist()) == [0.0, 3.0]
    us = lake.rows("US", "acme")
    assert us is not None and us.column("value").to_pylist() == [1.0]


def test_pseudonyms_differ_between_tenants_and_never_equal_the_vin(
    pipeline: IngestPipeline, fleet: Fleet, lake: MemoryLake
) -> None:
    pipeline.process(
        [
            telemetry(fleet.vin("eu1"), fleet.key("eu1"), [(SOC, NOW_NS, 1.0)]),
            telemetry(fleet.vin("gx1"), fleet.key("gx1"), [(SOC, NOW_NS, 2.0)]),
        ]
    )
    acme, globex = lake.rows("EU", "acme"), lake.rows("EU", "globex")
    assert acme is not None and globex is not None
    ids = {acme.column("vehicle")[0].as_py(), globex.column("vehicle")[0].as_py()}
    assert len(ids) == 2 and all(len(i) == 24 for i in ids)
    assert not ids & {fleet.vin("eu1"), fleet.vin("gx1")}


def test_redelivered_batch_is_stored_once_and_counted_as_duplicate(
    pipeline: IngestPipeline, fleet: Fleet, lake: MemoryLake, database: Database
) -> None:
    message = telemetry(fleet.vin("eu1"), fleet.key("eu1"), [(SOC, NOW_NS, 50.0)] * 3)
    first = pipeline.process([message, message])  # twice in one micro-batch
    second = pipeline.process([message])  # and again later
    assert [r.status for r in first.results] == ["stored", "duplicate"]
    assert [r.status for r in second.results] == ["duplicate"]
    rows = lake.rows()
    assert rows is not None and rows.num_rows == 3
    counts = _counts(database)
    assert counts[(fleet.vin("eu1"), "duplicate")] == (2, 0)
    assert counts[(fleet.vin("eu1"), "accepted")] == (1, 3)
    with database.session() as session:
        assert list_dead_letters(session, tenant=None) == []


def test_consent_decides_which_categories_are_stored(
    pipeline: IngestPipeline, fleet: Fleet, lake: MemoryLake, database: Database
) -> None:
    samples = [(SOC, NOW_NS, 50.0), (SPEED, NOW_NS, 88.0), (LATITUDE, NOW_NS, 48.1)]
    report = pipeline.process([telemetry(fleet.vin("eu1"), fleet.key("eu1"), samples)])
    assert report.samples_accepted == 1 and report.samples_not_consented == 2
    assert report.not_consented_by_category == {"driving_behaviour": 1, "location": 1}
    rows = lake.rows()
    assert rows is not None and rows.column("path").to_pylist() == [SOC]
    with database.session() as session:
        set_consent(
            session,
            vin=fleet.vin("eu1"),
            tenant="acme",
            categories=["technical", "location"],
            source="driver-app",
            actor="test",
        )
    again = pipeline.process([telemetry(fleet.vin("eu1"), fleet.key("eu1"), samples, seq=2)])
    assert again.not_consented_by_category == {"driving_behaviour": 1}
    rows = lake.rows()
    assert rows is not None and sorted(rows.column("category").to_pylist()) == [
        "location",
        "technical",
        "technical",
    ]
    assert _counts(database)[(fleet.vin("eu1"), "not_consented")] == (2, 3)
    with database.session() as session:  # dropped by policy: never a dead letter
        assert list_dead_letters(session, tenant="acme") == []


def test_invalid_samples_are_dead_lettered_while_the_rest_of_the_batch_proceeds(
    pipeline: IngestPipeline, fleet: Fleet, lake: MemoryLake, database: Database
) -> None:
    message = telemetry(
        fleet.vin("eu1"),
        fleet.key("eu1"),
        [
            (SOC, NOW_NS, 50.0),
            (SOC, NOW_NS, 150.0),
            ("Vehicle.Warp", NOW_NS, 1.0),
            (SOC, 0, 40.0),
            (SOC, NOW_NS + 3600 * SECOND, 40.0),
            (SOC, NOW_NS, 51.0),
        ],
    )
    report = pipeline.process([message])
    assert report.results[0].refused == {
        "out_of_range": 1,
        "unknown_path": 1,
        "timestamp_too_old": 1,
        "timestamp_in_future": 1,
    }
    rows = lake.rows()
    assert rows is not None and rows.column("value").to_pylist() == [50.0, 51.0]
    with database.session() as session:
        letters = list_dead_letters(session, tenant="acme")
    assert {d.reason: d.sample_count for d in letters} == {
        "out_of_range": 1,
        "unknown_path": 1,
        "timestamp_too_old": 1,
        "timestamp_in_future": 1,
    }
    assert all(d.level == "samples" and d.batch_id == report.results[0].batch_id for d in letters)
    out_of_range = next(d for d in letters if d.reason == "out_of_range")
    assert "150.0" in out_of_range.detail and SOC in out_of_range.detail
    counts = _counts(database)
    assert counts[(fleet.vin("eu1"), "accepted")] == (1, 2)
    assert counts[(fleet.vin("eu1"), "out_of_range")] == (1, 1)


def test_latest_value_per_signal_goes_to_the_reported_state(
    pipeline: IngestPipeline, fleet: Fleet, reported: MemoryReportedState
) -> None:
    vin = fleet.vin("eu1")
    pipeline.process(
        [
            telemetry(
                vin, fleet.key("eu1"), [(SOC, NOW_NS + 2 * SECOND, 70.0), (SOC, NOW_NS, 90.0)]
            ),
            telemetry(
                vin,
                fleet.key("eu1"),
                [(SOC, NOW_NS + SECOND, 80.0), ("Vehicle.Body.Hood.IsOpen", NOW_NS, 1.0)],
                seq=2,
            ),
        ]
    )
    values = reported.values[vin]
    assert values[SOC][0] == 70.0
    assert values["Vehicle.Body.Hood.IsOpen"][0] is True
    assert values[SOC][1].timestamp() == pytest.approx((NOW_NS + 2 * SECOND) / 1e9)


def test_events_are_stored_for_security_operations_and_acks_reach_the_twin(
    pipeline: IngestPipeline, fleet: Fleet, reported: MemoryReportedState, database: Database
) -> None:
    vin, key = fleet.vin("eu1"), fleet.key("eu1")
    events = [
        VehicleEvent("ids.flooding", NOW_NS, "high", {"can_id": 0x123}),
        VehicleEvent("dtc.set", NOW_NS, "low", {"code": "P0A80"}),
        VehicleEvent("ids.spoofing", 5, "critical"),  # an unset clock
    ]
    ack = Ack(ref="a" * 32, ref_kind="desired_state", status="applied", version=0)
    report = pipeline.process(
        [
            RawMessage(
                vehicle_topic(vin, "events"),
                seal_json(MessageKind.EVENTS, vin, events_to_dict(events), key=key, seq=1),
            ),
            RawMessage(
                vehicle_topic(vin, "ack"),
                seal_json(MessageKind.ACK, vin, ack.to_dict(), key=key, seq=1),
            ),
        ]
    )
    assert [r.status for r in report.results] == ["stored", "stored"]
    with database.session() as session:
        stored = list_vehicle_events(session, tenant="acme", vin=vin)
        high = list_vehicle_events(session, tenant="acme", min_severity="high")
        others = list_vehicle_events(session, tenant="globex")
        letters = list_dead_letters(session, tenant="acme")
    assert [(e.type, e.data) for e in stored] == [
        ("ids.flooding", {"can_id": 0x123}),
        ("dtc.set", {"code": "P0A80"}),
    ]
    assert [e.type for e in high] == ["ids.flooding"] and others == []
    assert [(d.reason, d.sample_count, d.payload_format) for d in letters] == [
        ("timestamp_too_old", 1, "json")
    ]
    assert reported.acks[vin] == [ack]


def test_a_failure_after_the_lake_append_leaves_no_trace_and_redelivery_stores_once(
    database: Database, fleet: Fleet, lake: MemoryLake
) -> None:
    class FailingOnce(MemoryReportedState):
        failed = False

        def apply_reported(self, session, reports):  # type: ignore[no-untyped-def]
            if not self.failed:
                self.failed = True
                raise StorageError("state database went away")
            super().apply_reported(session, reports)

    pipeline = IngestPipeline(database, lake, FailingOnce(), clock=lambda: NOW_NS)
    message = telemetry(
        fleet.vin("eu1"), fleet.key("eu1"), [(SOC, NOW_NS, 1.0), (SOC, NOW_NS, 500.0)]
    )
    with pytest.raises(StorageError):
        pipeline.process([message])
    rows = lake.rows()
    assert rows is not None and rows.num_rows == 1  # the lake committed before the failure
    with database.session() as session:  # ...but the database kept nothing of the batch
        assert list_dead_letters(session, tenant=None) == []
        assert session.scalar(select(func.count()).select_from(SeenBatchRow)) == 0
    report = pipeline.process([message])  # the broker redelivers
    assert report.rows_written == 0 and report.rows_skipped == 1
    rows = lake.rows()
    assert rows is not None and rows.num_rows == 1
    with database.session() as session:
        assert [d.reason for d in list_dead_letters(session, tenant=None)] == ["out_of_range"]


def test_a_lake_failure_raises_and_commits_nothing(database: Database, fleet: Fleet) -> None:
    class BrokenLake:
        def append(self, region: str, tenant: str, table: pa.Table) -> object:
            raise StorageError("disk full")

    pipeline = IngestPipeline(
        database,
        BrokenLake(),
        MemoryReportedState(),  # type: ignore[arg-type]
        clock=lambda: NOW_NS,
    )
    with pytest.raises(StorageError, match="disk full"):
        pipeline.process([telemetry(fleet.vin("eu1"), fleet.key("eu1"), [(SOC, NOW_NS, 1.0)])])
    assert _counts(database) == {}


def test_retired_vehicle_is_refused_after_the_registry_cache_expires(
    make_pipeline: Callable[..., IngestPipeline], fleet: Fleet, database: Database
) -> None:
    from drivetrain.cloud.fleet import retire_vehicle
    from drivetrain.cloud.ingest.directory import VehicleDirectory

    pipeline = make_pipeline()
    monotonic = [1000.0]
    pipeline.vehicles = VehicleDirectory(30.0, clock=lambda: monotonic[0])
    vin, key = fleet.vin("eu2"), fleet.key("eu2")
    first = pipeline.process([telemetry(vin, key, [(SOC, NOW_NS, 1.0)], seq=1)])
    assert first.results[0].status == "stored"  # the registry's answer is cached now
    with database.session() as session:
        retire_vehicle(session, vin, actor="test")
        assert get_vehicle(session, vin).status == "retired"
    monotonic[0] += 29.0  # within the TTL: the cached (active) answer still applies
    cached = pipeline.process([telemetry(vin, key, [(SOC, NOW_NS, 2.0)], seq=2)])
    assert cached.results[0].status == "stored"
    monotonic[0] += 2.0  # past the TTL: the registry is asked again and says retired
    report = pipeline.process([telemetry(vin, key, [(SOC, NOW_NS, 3.0)], seq=3)])
    assert report.results[0].reason == "retired_vehicle"


def test_with_ttl_0_the_registry_is_asked_every_time(
    make_pipeline: Callable[..., IngestPipeline], fleet: Fleet, database: Database
) -> None:
    from drivetrain.cloud.fleet import retire_vehicle

    pipeline = make_pipeline(vehicle_cache_ttl_s=0.0)
    vin, key = fleet.vin("eu2"), fleet.key("eu2")
    assert pipeline.process([telemetry(vin, key, [(SOC, NOW_NS, 1.0)], seq=1)]).results[0] \
        .status == "stored"
    with database.session() as session:
        retire_vehicle(session, vin, actor="test")
    report = pipeline.process([telemetry(vin, key, [(SOC, NOW_NS, 2.0)], seq=2)])
    assert report.results[0].reason == "retired_vehicle"


def test_stats_are_per_tenant_and_the_operator_sees_unknown_senders(
    pipeline: IngestPipeline, fleet: Fleet, database: Database
) -> None:
    stranger = "DTV00000000000000"
    from drivetrain.core.crypto import SigningKey

    pipeline.process(
        [
            telemetry(fleet.vin("eu1"), fleet.key("eu1"), [(SOC, NOW_NS, 1.0)]),
            telemetry(fleet.vin("gx1"), fleet.key("gx1"), [(SOC, NOW_NS, 1.0)]),
            telemetry(stranger, SigningKey.generate(), [(SOC, NOW_NS, 1.0)]),
        ]
    )
    assert set(_counts(database, "acme")) == {(fleet.vin("eu1"), "accepted")}
    assert set(_counts(database, "globex")) == {(fleet.vin("gx1"), "accepted")}
    everything = _counts(database, None)
    assert everything[(stranger, "unknown_vehicle")] == (1, 0)


def test_each_dead_letter_quotes_its_own_samples_across_micro_batches(
    pipeline: IngestPipeline, fleet: Fleet, database: Database
) -> None:
    # Example sentences are written once and reused: the same refusal reads the same in every
    # micro-batch, and what differs (a timestamp, the sign of a zero) is quoted as sent.
    lights = "Vehicle.Body.Lights.LightSwitch"
    vin, key = fleet.vin("eu1"), fleet.key("eu1")

    def batch(seq: int, old_ts: int, zero: float) -> RawMessage:
        samples = [(SOC, NOW_NS, 150.0), (SOC, old_ts, 40.0), (lights, NOW_NS, zero, "AUTO")]
        return telemetry(vin, key, samples, seq=seq)

    pipeline.process([batch(1, 0, 0.0), batch(2, 5 * SECOND, -0.0)])
    pipeline.process([batch(3, 0, 0.0)])
    with database.session() as session:
        letters = list_dead_letters(session, tenant="acme")
    by_reason: dict[str, list[str]] = {}
    for letter in letters:
        by_reason.setdefault(letter.reason, []).append(letter.detail)
    assert len(set(by_reason["out_of_range"])) == 1 and len(by_reason["out_of_range"]) == 3
    assert "150.0" in by_reason["out_of_range"][0]
    assert len(by_reason["timestamp_too_old"]) == 3 and len(set(by_reason["timestamp_too_old"])) == 2
    assert sum("1970-01-01T00:00:05.000Z" in d for d in by_reason["timestamp_too_old"]) == 1
    assert sum("-0.0" in d for d in by_reason["wrong_type"]) == 1
    assert sum("value 0.0" in d for d in by_reason["wrong_type"]) == 2
