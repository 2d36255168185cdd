"""Replaying dead letters: late registration, catalog updates, nothing changed, visibility,
and exactly-once when a replay fails half-way."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from ingest_helpers import NOW_NS, SOC, Fleet, telemetry

from drivetrain.cloud.fleet import register_vehicle
from drivetrain.cloud.infra import Database
from drivetrain.cloud.ingest import IngestPipeline, MemoryLake, MemoryReportedState
from drivetrain.cloud.ingest.replay import replay_dead_letters, select_for_replay
from drivetrain.cloud.ingest.service import get_dead_letter, list_dead_letters, refused_items
from drivetrain.core.crypto import SigningKey
from drivetrain.core.errors import NotFoundError, StorageError
from drivetrain.core.vss import Catalog, SignalSpec, builtin_catalog

LATE_VIN = "DTVLATE0000000001"
NEW_SIGNAL = "Vehicle.Powertrain.TractionBattery.Heater.Power"


def _open(database: Database, tenant: str | None = None) -> list[int]:
    with database.session() as session:
        return [d.dead_letter_id for d in list_dead_letters(session, tenant=tenant)]


def test_a_vehicle_registered_late_gets_its_refused_batches_stored_on_replay(
    pipeline: IngestPipeline, fleet: Fleet, lake: MemoryLake, database: Database
) -> None:
    key = SigningKey.generate()
    message = telemetry(LATE_VIN, key, [(SOC, NOW_NS, 42.0)])
    pipeline.process([message])
    (dead,) = _open(database)
    (result,) = replay_dead_letters(pipeline, [dead])
    assert result.outcome == "still_refused" and "unknown_vehicle" in result.detail
    with database.session() as session:
        assert get_dead_letter(session, dead, tenant=None).status == "open"
        register_vehicle(
            session,
            vin=LATE_VIN,
            tenant="acme",
            model="compact-bev",
            region="EU",
            verify_key=key.verify_key,
            actor="test",
        )
    (result,) = replay_dead_letters(pipeline, [dead])
    assert result.outcome == "replayed" and result.accepted == 1
    rows = lake.rows("EU", "acme")
    assert rows is not None and rows.column("value").to_pylist() == [42.0]
    with database.session() as session:
        letter = get_dead_letter(session, dead, tenant=None)
    assert letter.status == "replayed" and letter.replay_outcome is not None
    assert _open(database) == []
    (again,) = replay_dead_letters(pipeline, [dead])
    assert again.outcome == "not_open"
    pipeline.process([message])  # the vehicle's own retry is now a duplicate
    rows = lake.rows()
    assert rows is not None and rows.num_rows == 1


def test_samples_of_a_signal_added_to_the_catalog_later_are_stored_on_replay(
    make_pipeline: Callable[..., IngestPipeline],
    fleet: Fleet,
    lake: MemoryLake,
    database: Database,
) -> None:
    before = make_pipeline()
    message = telemetry(
        fleet.vin("eu1"), fleet.key("eu1"), [(SOC, NOW_NS, 50.0), (NEW_SIGNAL, NOW_NS, 1.5)]
    )
    before.process([message])
    (dead,) = _open(database, "acme")
    with database.session() as session:
        assert refused_items(session, dead, tenant="acme")[0]["path"] == NEW_SIGNAL
    updated = Catalog(
        [
            *builtin_catalog(),
            SignalSpec(
                NEW_SIGNAL,
                "sensor",
                "float",
                "Heater power.",
                "technical",
                unit="kW",
                minimum=0,
                maximum=10,
            ),
        ]
    )
    after = make_pipeline(catalog=updated)
    (result,) = replay_dead_letters(after, [dead])
    assert result.outcome == "replayed" and result.accepted == 1
    rows = lake.rows()
    assert rows is not None and sorted(rows.column("path").to_pylist()) == [NEW_SIGNAL, SOC]
    batch_ids = set(rows.column("batch_id").to_pylist())
    assert len(batch_ids) == 2  # the replayed samples travel under a batch id of their own


def test_replay_that_changes_nothing_leaves_the_dead_letter_open(
    pipeline: IngestPipeline, fleet: Fleet, database: Database
) -> None:
    pipeline.process([telemetry(fleet.vin("eu1"), fleet.key("eu1"), [(SOC, NOW_NS, 250.0)])])
    (dead,) = _open(database)
    (result,) = replay_dead_letters(pipeline, [dead])
    assert result.outcome == "still_refused" and result.new_dead_letters == 0
    assert _open(database) == [dead]
    with database.session() as session:
        letter = get_dead_letter(session, dead, tenant="acme")
    assert letter.replay_outcome is not None and "still_refused" in letter.replay_outcome


def test_a_tenant_cannot_replay_or_see_another_tenants_dead_letters(
    pipeline: IngestPipeline, fleet: Fleet, database: Database
) -> None:
    pipeline.process([telemetry(fleet.vin("gx1"), fleet.key("gx1"), [(SOC, NOW_NS, 250.0)])])
    (dead,) = _open(database, "globex")
    with database.session() as session:
        with pytest.raises(NotFoundError, match=str(dead)):
            select_for_replay(session, tenant="acme", ids=[dead])
        with pytest.raises(NotFoundError):
            get_dead_letter(session, dead, tenant="acme")
        assert select_for_replay(session, tenant="acme", reason="out_of_range") == []
        assert select_for_replay(session, tenant="globex", reason="out_of_range") == [dead]


def test_a_replay_that_fails_half_way_and_runs_again_stores_each_sample_once(
    database: Database,
    fleet: Fleet,
    lake: MemoryLake,
    make_pipeline: Callable[..., IngestPipeline],
) -> None:
    make_pipeline().process(
        [telemetry(fleet.vin("eu1"), fleet.key("eu1"), [(NEW_SIGNAL, NOW_NS, 2.0)])]
    )
    (dead,) = _open(database)

    class FailingOnce(MemoryReportedState):
        failed = False

        def apply_reported(self, session, reports):  # type: ignore[no-untyped-def]
            if not self.failed:
                self.failed = True
                raise StorageError("connection reset")
            super().apply_reported(session, reports)

    catalog = Catalog(
        [*builtin_catalog(), SignalSpec(NEW_SIGNAL, "sensor", "float", "x.", "technical")]
    )
    flaky = IngestPipeline(database, lake, FailingOnce(), catalog=catalog, clock=lambda: NOW_NS)
    with pytest.raises(StorageError):
        replay_dead_letters(flaky, [dead])
    assert _open(database) == [dead]
    (result,) = replay_dead_letters(flaky, [dead])
    assert result.outcome == "replayed"
    rows = lake.rows()
    assert rows is not None and rows.num_rows == 1


def test_replay_by_filter_selects_open_dead_letters_oldest_first(
    pipeline: IngestPipeline, fleet: Fleet, database: Database
) -> None:
    for i in range(3):
        pipeline.process(
            [telemetry(fleet.vin("eu1"), fleet.key("eu1"), [(SOC, NOW_NS, 200.0 + i)], seq=i + 1)]
        )
    with database.session() as session:
        chosen = select_for_replay(
            session, tenant="acme", vin=fleet.vin("eu1"), reason="out_of_range", limit=2
        )
    assert chosen == _open(database)[:2]
