"""Security events from the vehicle's detector to fleet incidents, through the real ingest
path: signed events become incidents per vehicle and signature, the same signature on two
vehicles of one model is a fleet incident, a forged event changes nothing, and a flood of one
signature is rate-limited on the vehicle without losing a distinct event."""

from __future__ import annotations

from typing import Any

import pytest
from ingest_helpers import NOW_NS, SECOND, Fleet

from drivetrain.cloud.infra import Database, list_audit
from drivetrain.cloud.ingest import IngestPipeline, RawMessage
from drivetrain.cloud.security import (
    act_on_incident,
    correlate,
    fleet_incidents,
    get_incident,
    list_incidents,
    list_security_events,
)
from drivetrain.core.crypto import SigningKey
from drivetrain.core.errors import BadInputError, NotFoundError, StateTransitionError
from drivetrain.core.transport import vehicle_topic
from drivetrain.core.wire import MessageKind, VehicleEvent, events_to_dict, seal_json
from drivetrain.edge import EventLimiter, SecurityEvent, to_vehicle_event

T0_S = NOW_NS / 1e9 - 60


def _event(can_id: str = "0x0D0", sensor: str = "cross_signal", at_s: float = 0.0, count: int = 5) -> SecurityEvent:
    return SecurityEvent(0x1006, sensor, can_id, count, at_s, at_s + 0.4, 3.0, (f"{at_s:.6f} D0#00",))


def _message(vin: str, key: SigningKey, events: list[VehicleEvent], seq: int) -> RawMessage:
    return RawMessage(
        vehicle_topic(vin, "events"),
        seal_json(MessageKind.EVENTS, vin, events_to_dict(events), key=key, seq=seq),
    )


def _send(pipeline: IngestPipeline, vin: str, key: SigningKey, events: list[SecurityEvent], seq: int = 1) -> Any:
    wire = [to_vehicle_event(e, epoch_offset_s=T0_S) for e in events]
    return pipeline.process([_message(vin, key, wire, seq)])


def test_events_become_incidents_per_vehicle_and_signature_and_a_fleet_incident(
    pipeline: IngestPipeline, fleet: Fleet, database: Database
) -> None:
    eu1, eu2 = fleet.vin("eu1"), fleet.vin("eu2")
    _send(pipeline, eu1, fleet.key("eu1"), [_event(at_s=1.0), _event(at_s=3.0), _event("0x7F0", "unknown_id", 2.0)])
    _send(pipeline, eu2, fleet.key("eu2"), [_event(at_s=5.0)])
    with database.session() as session:
        assert len(list_security_events(session, tenant="acme")) == 4
        report = correlate(session, tenant="acme")
        assert (report.events_read, report.incidents_opened, report.incidents_updated) == (4, 3, 1)
        again = correlate(session, tenant="acme")  # the cursor: nothing counted twice
        assert again.events_read == 0
        incidents = list_incidents(session, tenant="acme")
        on_eu1 = [i for i in incidents if i.vin == eu1 and i.signature == "cross_signal:0x0D0"]
        assert len(on_eu1) == 1 and on_eu1[0].event_count == 10
        fleet_wide = fleet_incidents(session, tenant="acme", now_ns=NOW_NS)
        assert len(fleet_wide) == 1
        (f,) = fleet_wide
        assert f.signature == "cross_signal:0x0D0" and set(f.vehicles) == {eu1, eu2}
        assert f.severity == "medium" and f.events == 15
        by_region = fleet_incidents(session, tenant="acme", group_by="region", now_ns=NOW_NS)
        assert [x.group for x in by_region] == [f.group] or by_region
        assert list_incidents(session, tenant="globex") == []


def test_a_forged_security_event_is_refused_at_the_door_and_opens_nothing(
    pipeline: IngestPipeline, fleet: Fleet, database: Database
) -> None:
    victim = fleet.vin("eu1")
    report = _send(pipeline, victim, SigningKey.generate(), [_event()])
    assert [r.status for r in report.results] != ["stored"]
    other_vehicles_key = _send(pipeline, victim, fleet.key("eu2"), [_event()], seq=2)
    assert [r.status for r in other_vehicles_key.results] != ["stored"]
    with database.session() as session:
        assert correlate(session, tenant="acme").events_read == 0
        assert list_incidents(session, tenant="acme") == []


def test_a_flood_of_one_signature_is_rate_limited_without_losing_distinct_events(
    pipeline: IngestPipeline, fleet: Fleet, database: Database
) -> None:
    limiter = EventLimiter(rate_per_s=1.0, burst=3)
    raised = [_event(at_s=i * 0.01) for i in range(1000)]  # 1000 events in 10 s
    raised += [_event("0x123", "byte_value", 2.0, 1), _event("0x456", "timing", 4.0, 1)]
    raised.sort(key=lambda e: e.first_s)
    sent: list[SecurityEvent] = []
    for e in raised:
        sent += limiter.offer([e], now_s=e.first_s)
    sent += limiter.flush()
    flood = [e for e in sent if e.signature == "cross_signal:0x0D0"]
    assert len(flood) <= 3 + 10 + 1  # burst, one per second, the final aggregate
    assert sum(e.count for e in flood) == 5 * 1000  # folded, not dropped
    assert {e.signature for e in sent} == {"cross_signal:0x0D0", "byte_value:0x123", "timing:0x456"}
    vin, key = fleet.vin("eu1"), fleet.key("eu1")
    _send(pipeline, vin, key, sent)
    with database.session() as session:
        correlate(session, tenant="acme")
        counts = {i.signature: i.event_count for i in list_incidents(session, tenant="acme")}
    assert counts == {"cross_signal:0x0D0": 5000, "byte_value:0x123": 1, "timing:0x456": 1}


def test_the_analyst_workflow_is_recorded_and_a_resolved_incident_only_takes_notes(
    pipeline: IngestPipeline, fleet: Fleet, database: Database
) -> None:
    vin, key = fleet.vin("eu1"), fleet.key("eu1")
    _send(pipeline, vin, key, [_event(at_s=1.0)])
    with database.session() as session:
        correlate(session, tenant="acme")
        (incident,) = list_incidents(session, tenant="acme")
        iid = incident.incident_id
        act_on_incident(session, tenant="acme", incident_id=iid, action="acknowledge", actor="ana")
        act_on_incident(session, tenant="acme", incident_id=iid, action="assign", actor="ana", assignee="bob")
        act_on_incident(session, tenant="acme", incident_id=iid, action="annotate", actor="bob", text="ECU 0D0 replaced")
        done = act_on_incident(session, tenant="acme", incident_id=iid, action="resolve", actor="bob")
        assert done.status == "resolved" and done.assignee == "bob"
        assert [a.action for a in done.actions] == ["open", "acknowledge", "assign", "annotate", "resolve"]
        with pytest.raises(StateTransitionError, match="resolved"):
            act_on_incident(session, tenant="acme", incident_id=iid, action="acknowledge", actor="x")
        with pytest.raises(BadInputError, match="needs an assignee"):
            act_on_incident(session, tenant="acme", incident_id=iid, action="assign", actor="x")
        with pytest.raises(NotFoundError):
            get_incident(session, tenant="globex", incident_id=iid)
        audit = [e.action for e in list_audit(session, "acme") if e.action.startswith("security.")]
        assert audit == [f"security.incident.{a}" for a in ("acknowledge", "assign", "annotate", "resolve")]
    _send(pipeline, vin, key, [_event(at_s=30.0)], seq=2)
    with database.session() as session:
        assert correlate(session, tenant="acme").incidents_opened == 1  # a new one after resolution
        assert {i.status for i in list_incidents(session, tenant="acme")} == {"open", "resolved"}


def test_malformed_detector_data_is_counted_as_skipped_not_an_incident(
    pipeline: IngestPipeline, fleet: Fleet, database: Database
) -> None:
    vin, key = fleet.vin("eu1"), fleet.key("eu1")
    bad = [VehicleEvent("security.ids", NOW_NS - SECOND, "high", {"signature": 5, "count": -1})]
    pipeline.process([_message(vin, key, bad, 1)])
    with database.session() as session:
        report = correlate(session, tenant="acme")
        assert (report.events_read, report.skipped) == (1, 1)
        assert list_incidents(session, tenant="acme") == []


def test_a_response_that_needs_approval_is_refused_without_it_and_runs_through_the_dispatcher_with_it(
    pipeline: IngestPipeline, fleet: Fleet, database: Database
) -> None:
    from drivetrain.cloud.commands import get_job, list_deliveries
    from drivetrain.cloud.security import (
        approve_response,
        execute_response,
        propose_response,
        refuse_response,
    )
    from drivetrain.core.errors import PermissionDeniedError

    for name in ("eu1", "eu2"):
        _send(pipeline, fleet.vin(name), fleet.key(name), [_event(at_s=1.0)])
    with database.session() as session:
        correlate(session, tenant="acme")
        proposed = propose_response(
            session, tenant="acme", signature="cross_signal:0x0D0", playbook="disable_function",
            function="reverse_assist", actor="ana",
        )
        assert proposed.status == "proposed" and proposed.job_id is None
        assert set(proposed.vins) == {fleet.vin("eu1"), fleet.vin("eu2")}
        with pytest.raises(StateTransitionError, match="requires approval"):
            execute_response(session, tenant="acme", response_id=proposed.response_id, actor="ana")
        with pytest.raises(PermissionDeniedError, match="another person"):
            approve_response(session, tenant="acme", response_id=proposed.response_id, actor="ana")
        done = approve_response(session, tenant="acme", response_id=proposed.response_id, actor="lead")
        assert done.status == "executed" and done.decided_by == "lead" and done.job_id
        job = get_job(session, done.job_id, tenant="acme")
        assert job.origin == "security" and job.body["name"] == "security.disable_function"
        assert job.body["args"] == {"function": "reverse_assist", "signature": "cross_signal:0x0D0"}
        deliveries = list_deliveries(session, done.job_id, tenant="acme")
        assert {d.vin for d in deliveries.deliveries} == set(proposed.vins)
        with pytest.raises(StateTransitionError):
            refuse_response(session, tenant="acme", response_id=done.response_id, actor="lead")
        audit = [e.action for e in list_audit(session, "acme") if e.action.startswith("security.response")]
        assert audit == ["security.response.propose", "security.response.execute"]
        with pytest.raises(BadInputError, match="needs a function name"):
            propose_response(session, tenant="acme", signature="cross_signal:0x0D0",
                             playbook="disable_function", actor="ana")
        with pytest.raises(NotFoundError, match="no unresolved incident"):
            propose_response(session, tenant="globex", signature="cross_signal:0x0D0",
                             playbook="collect_evidence", actor="ana")
        auto = propose_response(session, tenant="acme", signature="cross_signal:0x0D0",
                                playbook="collect_evidence", actor="ana")
        assert auto.status == "executed" and auto.decided_by == "playbook:collect_evidence"
