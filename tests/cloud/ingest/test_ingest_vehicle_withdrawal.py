"""Consent withdrawn on the car's own screen: the agent stops collecting at once and its signed
``privacy.consent.withdrawn`` event updates the cloud's consent (source ``vehicle-hmi``,
audited, confirmed to the car by a newer ``privacy.collection`` command); a forged report —
another VIN in its data, another vehicle's key, a malformed one — changes nothing."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ingest_helpers import CLOUD_KEY, LATITUDE, NOW_NS, SECOND, SOC, Fleet

from drivetrain.cloud.infra import Database
from drivetrain.cloud.infra.audit import list_audit
from drivetrain.cloud.ingest import IngestPipeline, MemoryLake, MemoryReportedState, RawMessage
from drivetrain.cloud.ingest.service import list_dead_letters, list_vehicle_events
from drivetrain.cloud.privacy import get_consent
from drivetrain.cloud.privacy.flows import change_consent
from drivetrain.cloud.privacy.vehicle_withdrawal import Withdrawal
from drivetrain.core.errors import BadInputError
from drivetrain.core.transport import InProcessTransport, Message, vehicle_topic
from drivetrain.core.vss import PRIVACY_CATEGORIES
from drivetrain.core.wire import MessageKind, VehicleEvent, events_to_dict, seal_json
from drivetrain.edge import EdgeAgent, MemoryBuffer, Samples, VehicleIdentity
from drivetrain.edge.consent import WITHDRAWN_EVENT

EVERYTHING = list(PRIVACY_CATEGORIES)


@pytest.fixture
def pipeline(database: Database) -> IngestPipeline:
    return IngestPipeline(
        database, MemoryLake(), MemoryReportedState(), clock=lambda: NOW_NS, vehicle_cache_ttl_s=0,
        platform_key=CLOUD_KEY,  # the agent's telemetry travels under a vehicle session
    )


def _event(vin: str, key: Any, data: dict[str, Any], seq: int = 1) -> RawMessage:
    event = VehicleEvent(WITHDRAWN_EVENT, NOW_NS, "info", data)
    return RawMessage(
        vehicle_topic(vin, "events"),
        seal_json(MessageKind.EVENTS, vin, events_to_dict([event]), key=key, seq=seq),
    )


def _consent(database: Database, vin: str, tenant: str = "acme") -> tuple[set[str], str]:
    with database.session() as session:
        consent = get_consent(session, vin, tenant)
    return set(consent.categories), consent.source


def _everything(database: Database, vin: str, at_s: float) -> None:
    """The driver consents to every category through the app, at ``at_s``."""
    with database.session() as session:
        change_consent(
            session,
            vin=vin,
            tenant="acme",
            categories=EVERYTHING,
            source="driver-app",
            actor="test",
            now=datetime.fromtimestamp(at_s, UTC),
        )


def _agent(fleet: Fleet, name: str, bus: InProcessTransport) -> EdgeAgent:
    identity = VehicleIdentity.from_dict(fleet.creds[name].to_dict())
    agent = EdgeAgent(identity, bus, MemoryBuffer())
    agent.start()
    return agent


def test_a_withdrawal_in_the_car_stops_collection_and_reaches_the_ledger(
    pipeline: IngestPipeline, fleet: Fleet, database: Database
) -> None:
    vin = fleet.vin("eu1")
    _everything(database, vin, NOW_NS / SECOND - 60)
    bus = InProcessTransport()
    sent: list[Message] = []
    bus.subscribe(f"dt/v1/{vin}/#", sent.append)
    agent = _agent(fleet, "eu1", bus)
    now = NOW_NS - 5 * SECOND
    # the consent command, signed by the cloud for this car, gives it everything
    command = {
        "name": "privacy.collection",
        "args": {"categories": EVERYTHING, "version": 1},
        "expires_ns": now + 60 * SECOND,
    }
    bus.publish(
        vehicle_topic(vin, "commands"),
        seal_json(MessageKind.COMMAND, vin, command, key=CLOUD_KEY, seq=1, sent_ns=now),
    )
    bus.drain()
    agent.tick(now, samples=Samples.from_values({LATITUDE: 48.1, SOC: 80.0}, now))
    pending_before = agent.samples_not_consented
    started = time.perf_counter()
    agent.withdraw_consent(["location"], now)
    dropped_pending = agent.samples_not_consented - pending_before
    now += 2 * SECOND  # the next tick
    agent.tick(now, samples=Samples.from_values({LATITUDE: 48.1, SOC: 80.0}, now))
    stop_s = time.perf_counter() - started
    assert agent.downlink.consent.version > 1
    assert dropped_pending == 1  # the latitude collected but not sealed yet
    assert agent.samples_not_consented - pending_before == 2  # and the next one, at the door
    assert stop_s < 5.0
    agent.flush(now)
    agent.uplink.pump(now / SECOND)
    bus.drain()
    raw = [RawMessage(m.topic, m.payload) for m in sent if m.topic.endswith("/events")]
    telemetry = [RawMessage(m.topic, m.payload) for m in sent if m.topic.endswith("/telemetry")]
    report = pipeline.process(raw + telemetry)
    assert report.dead_letters == 0
    assert _consent(database, vin) == (set(EVERYTHING) - {"location"}, "vehicle-hmi")
    with database.session() as session:
        audit = list_audit(session, "acme", action="privacy.consent.set")
        events = list_vehicle_events(session, tenant="acme", vin=vin)
    assert audit[-1].actor == f"vehicle:{vin}"
    assert audit[-1].details["source"] == "vehicle-hmi"
    assert WITHDRAWN_EVENT in [e.type for e in events]


def test_the_ledger_takes_the_cars_report_and_confirms_it_with_a_newer_command(
    pipeline: IngestPipeline, fleet: Fleet, database: Database
) -> None:
    vin, key = fleet.vin("eu1"), fleet.key("eu1")
    version = NOW_NS // 1_000_000 + 10_000  # the car's clock runs ahead of the cloud's
    report = pipeline.process(
        [
            _event(
                vin, key, {"withdrawn": ["cabin"], "categories": ["technical"], "version": version}
            )
        ]
    )
    assert report.dead_letters == 0
    # no record before: the region's default (technical, diagnostics) without cabin
    assert _consent(database, vin) == ({"technical", "diagnostics"}, "vehicle-hmi")
    from drivetrain.cloud.commands import list_jobs

    with database.session() as session:
        jobs = list_jobs(session, tenant="acme")
    assert jobs[0].body["name"] == "privacy.collection"
    assert jobs[0].body["args"]["version"] > version


def test_an_older_report_does_not_undo_a_newer_consent(
    pipeline: IngestPipeline, fleet: Fleet, database: Database
) -> None:
    vin, key = fleet.vin("eu1"), fleet.key("eu1")
    _everything(database, vin, NOW_NS / SECOND)
    stale = NOW_NS // 1_000_000 - 1_000
    report = pipeline.process(
        [
            _event(
                vin, key, {"withdrawn": ["location"], "categories": ["technical"], "version": stale}
            )
        ]
    )
    assert report.dead_letters == 0  # kept as an event, but the newer consent stands
    assert _consent(database, vin) == (set(EVERYTHING), "driver-app")


FORGED = {
    "names_another_vin": {
        "vin": "DTV5G4JN2T8ZL3KC1",
        "withdrawn": ["location"],
        "categories": [],
        "version": 1,
    },
    "unknown_category": {"withdrawn": ["gps"], "categories": [], "version": 1},
    "nothing_withdrawn": {"withdrawn": [], "categories": [], "version": 1},
    "version_negative": {"withdrawn": ["location"], "categories": [], "version": -1},
    "version_a_string": {"withdrawn": ["location"], "categories": [], "version": "9"},
}


@pytest.mark.parametrize("case", sorted(FORGED))
def test_a_malformed_or_forged_report_changes_nothing(
    case: str, pipeline: IngestPipeline, fleet: Fleet, database: Database
) -> None:
    vin, key = fleet.vin("eu1"), fleet.key("eu1")
    report = pipeline.process([_event(vin, key, FORGED[case])])
    assert report.results[0].refused == {"bad_consent": 1}
    assert _consent(database, vin) == ({"technical", "diagnostics"}, "default")
    with database.session() as session:
        letters = list_dead_letters(session, tenant="acme")
    assert letters[0].reason == "bad_consent"


def test_a_report_for_another_vehicle_signed_with_this_cars_key_is_refused(
    pipeline: IngestPipeline, fleet: Fleet, database: Database
) -> None:
    victim, attacker_key = fleet.vin("eu2"), fleet.key("eu1")
    report = pipeline.process(
        [_event(victim, attacker_key, {"withdrawn": ["technical"], "categories": [], "version": 1})]
    )
    assert report.results[0].status != "stored"
    assert _consent(database, victim) == ({"technical", "diagnostics"}, "default")


def test_a_vehicle_of_another_tenant_cannot_touch_this_tenants_car(
    pipeline: IngestPipeline, fleet: Fleet, database: Database
) -> None:
    victim, other_key = fleet.vin("eu1"), fleet.key("gx1")
    pipeline.process(
        [_event(victim, other_key, {"withdrawn": ["technical"], "categories": [], "version": 1})]
    )
    assert _consent(database, victim) == ({"technical", "diagnostics"}, "default")


def test_the_car_refuses_a_withdrawal_of_what_it_does_not_collect(fleet: Fleet) -> None:
    bus = InProcessTransport()
    agent = _agent(fleet, "eu1", bus)  # a new EU car: location is off already

    with pytest.raises(BadInputError, match="location not collected now"):
        agent.withdraw_consent(["location"], NOW_NS)
    with pytest.raises(BadInputError, match="gps"):
        agent.withdraw_consent(["gps"], NOW_NS)
    assert agent.downlink.consent.version == -1


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["withdrawn", "categories", "version", "vin"]),
        st.one_of(
            st.none(),
            st.integers(),
            st.text(max_size=8),
            st.lists(st.sampled_from([*PRIVACY_CATEGORIES, "gps", ""]), max_size=7),
        ),
    )
)
def test_any_report_either_reads_or_is_refused_cleanly(data: dict[str, Any]) -> None:
    try:
        withdrawal = Withdrawal.from_event(data)
    except BadInputError:
        return
    assert withdrawal.withdrawn and withdrawal.version >= 0
    assert withdrawal.withdrawn <= set(PRIVACY_CATEGORIES)
