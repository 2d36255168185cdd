"""ECU inventories reported by vehicles (``vehicle.inventory`` events) reach the twins in the
micro-batch's transaction; a malformed one is dead-lettered as ``bad_inventory`` while the
message's other events are stored, and changes nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from ingest_helpers import NOW_NS, SECOND, Fleet

from drivetrain.cloud.infra import Database
from drivetrain.cloud.ingest import (
    IngestPipeline,
    MemoryLake,
    MemoryReportedState,
    RawMessage,
)
from drivetrain.cloud.ingest.service import ingest_stats, list_dead_letters, list_vehicle_events
from drivetrain.cloud.ingest.sinks import TwinsReportedState
from drivetrain.cloud.twins import list_ecus
from drivetrain.core.transport import vehicle_topic
from drivetrain.core.wire import (
    INVENTORY_EVENT,
    EcuInfo,
    MessageKind,
    VehicleEvent,
    events_to_dict,
    inventory_event,
    seal_json,
)

INVENTORY = (
    EcuInfo("BMS", "BMS-CH50-HW3", "2.3.1"),
    EcuInfo("VCU", "VCU-CH50-HW2", "5.2.1"),
)


@pytest.fixture
def twins_pipeline(database: Database) -> IngestPipeline:
    return IngestPipeline(
        database, MemoryLake(), TwinsReportedState(), clock=lambda: NOW_NS, vehicle_cache_ttl_s=0
    )


def _events(vin: str, key: Any, events: list[VehicleEvent], seq: int = 1) -> RawMessage:
    return RawMessage(
        vehicle_topic(vin, "events"),
        seal_json(MessageKind.EVENTS, vin, events_to_dict(events), key=key, seq=seq),
    )


def _ecus(database: Database, vin: str) -> dict[str, tuple[str | None, str | None, str]]:
    with database.session() as session:
        return {
            e.name: (e.hardware_id, e.software_version, e.source)
            for e in list_ecus(session, vin, tenant="acme")
        }


def test_reported_inventory_reaches_the_twin_and_is_kept_as_an_event(
    twins_pipeline: IngestPipeline, fleet: Fleet, database: Database
) -> None:
    vin, key = fleet.vin("eu1"), fleet.key("eu1")
    report = twins_pipeline.process([_events(vin, key, [inventory_event(INVENTORY, NOW_NS)])])
    assert [r.status for r in report.results] == ["stored"] and report.dead_letters == 0
    assert _ecus(database, vin) == {
        "BMS": ("BMS-CH50-HW3", "2.3.1", "reported"),
        "VCU": ("VCU-CH50-HW2", "5.2.1", "reported"),
    }
    with database.session() as session:
        stored = list_vehicle_events(session, tenant="acme", vin=vin)
    assert [e.type for e in stored] == [INVENTORY_EVENT]


def test_a_later_report_updates_versions_and_a_null_field_keeps_the_stored_one(
    twins_pipeline: IngestPipeline, fleet: Fleet, database: Database
) -> None:
    vin, key = fleet.vin("eu1"), fleet.key("eu1")
    twins_pipeline.process([_events(vin, key, [inventory_event(INVENTORY, NOW_NS - SECOND)])])
    update = [EcuInfo("BMS", None, "2.4.2"), EcuInfo("TPMS", "TPMS-CH50-HW1", None)]
    twins_pipeline.process([_events(vin, key, [inventory_event(update, NOW_NS)], seq=2)])
    assert _ecus(database, vin) == {
        "BMS": ("BMS-CH50-HW3", "2.4.2", "reported"),
        "TPMS": ("TPMS-CH50-HW1", None, "reported"),
        "VCU": ("VCU-CH50-HW2", "5.2.1", "reported"),
    }


def _raw_inventory(data: dict[str, Any]) -> VehicleEvent:
    return VehicleEvent(INVENTORY_EVENT, NOW_NS, "info", data)


MALFORMED = {
    "ecus_not_a_list": ({"ecus": "BMS=2.3.1"}, "field 'data.ecus' is 'BMS=2.3.1'"),
    "ecus_missing": ({}, "field 'data.ecus' is None"),
    "entry_not_an_object": ({"ecus": ["BMS"]}, "inventory: ECU 0: 'BMS' is not an object"),
    "name_missing": ({"ecus": [{"software_version": "1.0"}]}, "field 'name' is missing"),
    "version_a_number": (
        {"ecus": [{"name": "BMS", "software_version": 2.4}]},
        "field 'software_version' is 2.4",
    ),
    "too_many_ecus": (
        {"ecus": [{"name": f"E{i}", "software_version": "1.0"} for i in range(201)]},
        "201 ECUs; expected at most 200",
    ),
    "name_twice": (
        {"ecus": [{"name": "BMS", "software_version": "1.0"}] * 2},
        "ECU 'BMS' is listed twice",
    ),
    "bad_version_string": (
        {"ecus": [{"name": "BMS", "software_version": "two.four"}]},
        "software version 'two.four' is not a version",
    ),
    "bad_ecu_name": (
        {"ecus": [{"name": "B M S", "software_version": "2.4.0"}]},
        "ECU name 'B M S' is not valid",
    ),
    "new_ecu_with_no_fields": (
        {"ecus": [{"name": "OBC"}]},
        "give a hardware id, a software version",
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_inventory_is_dead_lettered_with_its_cause_and_changes_nothing(
    twins_pipeline: IngestPipeline, fleet: Fleet, database: Database, case: str
) -> None:
    data, cause = MALFORMED[case]
    vin, key = fleet.vin("eu1"), fleet.key("eu1")
    good = [EcuInfo("BMS", "BMS-CH50-HW3", "2.3.1")]
    twins_pipeline.process([_events(vin, key, [inventory_event(good, NOW_NS - SECOND)])])
    events = [VehicleEvent("dtc.set", NOW_NS, "low", {"code": "P0A80"}), _raw_inventory(data)]
    report = twins_pipeline.process([_events(vin, key, events, seq=2)])
    (result,) = report.results
    assert result.status == "stored" and result.accepted == 1
    assert result.refused == {"bad_inventory": 1}
    with database.session() as session:
        letters = list_dead_letters(session, tenant="acme")
        stored = list_vehicle_events(session, tenant="acme", vin=vin)
        stats = ingest_stats(session, tenant="acme")
    (letter,) = letters
    assert letter.reason == "bad_inventory" and letter.sample_count == 1
    assert letter.payload_format == "json"
    assert cause in letter.detail and "event 1 ('vehicle.inventory')" in letter.detail
    assert [e.type for e in stored] == [INVENTORY_EVENT, "dtc.set"]
    assert _ecus(database, vin) == {"BMS": ("BMS-CH50-HW3", "2.3.1", "reported")}
    outcomes = {o.outcome: (o.messages, o.samples) for o in stats.totals}
    assert outcomes["bad_inventory"] == (1, 1)


def test_the_in_memory_sink_keeps_the_latest_report_per_ecu(
    make_pipeline: Callable[..., IngestPipeline], reported: MemoryReportedState, fleet: Fleet
) -> None:
    pipeline = make_pipeline()
    vin, key = fleet.vin("us1"), fleet.key("us1")
    pipeline.process([_events(vin, key, [inventory_event(INVENTORY, NOW_NS - SECOND)])])
    update = [EcuInfo("BMS", None, "2.4.0")]
    pipeline.process([_events(vin, key, [inventory_event(update, NOW_NS)], seq=2)])
    assert reported.inventories[vin] == {
        "BMS": EcuInfo("BMS", "BMS-CH50-HW3", "2.4.0"),
        "VCU": INVENTORY[1],
    }


def test_a_redelivered_inventory_is_a_duplicate_and_written_once(
    twins_pipeline: IngestPipeline, fleet: Fleet, database: Database
) -> None:
    vin, key = fleet.vin("eu2"), fleet.key("eu2")
    message = _events(vin, key, [inventory_event(INVENTORY, NOW_NS)])
    twins_pipeline.process([message])
    report = twins_pipeline.process([message])
    assert [r.status for r in report.results] == ["duplicate"]
    with database.session() as session:
        assert len(list_vehicle_events(session, tenant="acme", vin=vin)) == 1
    assert set(_ecus(database, vin)) == {"BMS", "VCU"}
