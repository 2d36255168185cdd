"""A vehicle's ``entitlements.changed`` event reaches its twin as reported state
(``Entitlement.<feature>.*``) in the micro-batch's transaction; a malformed one is
dead-lettered as ``bad_entitlements`` while the message's other events are stored."""

from __future__ import annotations

from typing import Any

import pytest
from ingest_helpers import NOW_NS, SECOND, Fleet

from drivetrain.cloud.infra import Database
from drivetrain.cloud.ingest import IngestPipeline, MemoryLake, RawMessage
from drivetrain.cloud.ingest.service import list_dead_letters, list_vehicle_events
from drivetrain.cloud.ingest.sinks import TwinsReportedState
from drivetrain.cloud.twins import twin_entitlements
from drivetrain.core.entitlement_twin import CHANGED_EVENT, FeatureReport
from drivetrain.core.transport import vehicle_topic
from drivetrain.core.wire import MessageKind, VehicleEvent, events_to_dict, seal_json

TOKEN = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"


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


def _changed(ts_ns: int, features: object) -> VehicleEvent:
    return VehicleEvent(CHANGED_EVENT, ts_ns, "info",
                        {"enabled": [], "on": [], "off": [], "features": features})


def test_the_cars_report_of_its_features_becomes_the_twins_reported_state(
    twins_pipeline: IngestPipeline, fleet: Fleet, database: Database
) -> None:
    vin, key = fleet.vin("eu1"), fleet.key("eu1")
    on = FeatureReport("performance_boost", TOKEN, 3, 1_900_000_000, "enabled")
    report = twins_pipeline.process([_events(vin, key, [_changed(NOW_NS - SECOND,
                                                                 [on.to_dict()])])])
    assert [r.status for r in report.results] == ["stored"] and report.dead_letters == 0
    with database.session() as session:
        (twin,) = twin_entitlements(session, vin, tenant="acme")
        assert (twin.reported_token, twin.reported_state, twin.reported_seq,
                twin.reported_expires_s) == (TOKEN, "enabled", 3, 1_900_000_000)
        assert twin.status is None  # nothing desired: the cloud never granted it
    graced = FeatureReport("performance_boost", TOKEN, 3, 1_900_000_000, "grace")
    twins_pipeline.process([_events(vin, key, [_changed(NOW_NS, [graced.to_dict()])], seq=2)])
    with database.session() as session:
        (twin,) = twin_entitlements(session, vin, tenant="acme")
        assert twin.reported_state == "grace"
        assert [e.type for e in list_vehicle_events(session, tenant="acme", vin=vin)] == [
            CHANGED_EVENT, CHANGED_EVENT]


@pytest.mark.parametrize(("features", "cause"), [
    ("performance_boost", "expected a list"),
    ([{"feature": "performance_boost", "token": TOKEN, "seq": -1, "expires_s": 1,
       "state": "enabled"}], "field 'seq'"),
    ([{"feature": "performance_boost", "token": TOKEN, "seq": 1, "expires_s": 1,
       "state": "on"}], "field 'state'"),
    ([{"feature": "Bad Name", "token": TOKEN, "seq": 1, "expires_s": 1,
       "state": "enabled"}], "field 'feature'"),
])
def test_a_malformed_report_is_dead_lettered_and_changes_nothing(
    twins_pipeline: IngestPipeline, fleet: Fleet, database: Database, features: object,
    cause: str,
) -> None:
    vin, key = fleet.vin("eu1"), fleet.key("eu1")
    events = [VehicleEvent("dtc.set", NOW_NS, "low", {"code": "P0A80"}),
              _changed(NOW_NS, features)]
    (result,) = twins_pipeline.process([_events(vin, key, events)]).results
    assert result.status == "stored" and result.refused == {"bad_entitlements": 1}
    with database.session() as session:
        (letter,) = list_dead_letters(session, tenant="acme")
        assert letter.reason == "bad_entitlements"
        assert cause in letter.detail and "event 1 ('entitlements.changed')" in letter.detail
        assert twin_entitlements(session, vin, tenant="acme") == []
