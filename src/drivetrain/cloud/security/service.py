"""Security operations: vehicle security events become incidents, incidents are correlated
across the fleet, analysts work them.

- **Events** are what vehicles' intrusion detectors report (vehicle events of type
  :data:`SECURITY_EVENT_TYPE`, stored by ingestion after the envelope's signature verified);
  :func:`list_security_events` reads them.
- **Incidents** (:func:`correlate`): the events of one vehicle with one signature (the rule and
  the CAN id it fired on) are one incident while it is not resolved; a new event after
  resolution opens a new incident. The correlator reads events past a per-tenant cursor, so each
  event counts once however often it runs.
- **Fleet incidents** (:func:`fleet_incidents`): the same signature on several vehicles of one
  model (or one region) within a window, with a severity from how many vehicles.
- **Workflow** (:func:`act_on_incident`): acknowledge, assign, annotate, resolve — each action
  kept with the incident and recorded in the tenant's audit chain.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from drivetrain.cloud.fleet import get_vehicle
from drivetrain.cloud.infra import record_audit
from drivetrain.cloud.ingest import VehicleEventRecord, list_vehicle_events
from drivetrain.cloud.security.models import (
    SecurityCursorRow,
    SecurityIncidentActionRow,
    SecurityIncidentRow,
)
from drivetrain.core.errors import BadInputError, NotFoundError, StateTransitionError

#: The vehicle event type the in-vehicle detector reports.
SECURITY_EVENT_TYPE = "security.ids"
IncidentStatus = Literal["open", "acknowledged", "resolved"]
IncidentAction = Literal["acknowledge", "assign", "annotate", "resolve"]
INCIDENT_ACTIONS: tuple[str, ...] = ("acknowledge", "assign", "annotate", "resolve")
SEVERITY_ORDER = ("info", "low", "medium", "high", "critical")
_MAX_SIGNATURE = 200
_MAX_TEXT = 4000
_PAGE = 1000


@dataclass(frozen=True)
class IncidentActionRecord:
    actor: str
    action: str
    text: str
    at: datetime


@dataclass(frozen=True)
class Incident:
    """One vehicle's incident."""

    incident_id: int
    tenant: str
    vin: str
    model: str
    region: str
    signature: str
    sensor: str
    status: str
    severity: str
    assignee: str | None
    event_count: int
    first_ns: int
    last_ns: int
    max_score: float
    opened_at: datetime
    updated_at: datetime
    actions: tuple[IncidentActionRecord, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "actions"}
        out["opened_at"] = self.opened_at.isoformat()
        out["updated_at"] = self.updated_at.isoformat()
        out["actions"] = [
            {"actor": a.actor, "action": a.action, "text": a.text, "at": a.at.isoformat()}
            for a in self.actions
        ]
        return out


@dataclass(frozen=True)
class FleetIncident:
    """One signature on several vehicles of one model (or region) within a window."""

    signature: str
    group_by: str
    group: str
    vehicles: tuple[str, ...]
    incident_ids: tuple[int, ...]
    events: int
    first_ns: int
    last_ns: int
    severity: str

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["vehicles"] = list(self.vehicles)
        out["incident_ids"] = list(self.incident_ids)
        return out


@dataclass(frozen=True)
class CorrelationReport:
    events_read: int
    incidents_opened: int
    incidents_updated: int
    skipped: int  # events whose data is not a detector's event (reported, not dropped silently)


def list_security_events(
    session: Session,
    *,
    tenant: str,
    vin: str | None = None,
    after_id: int = 0,
    limit: int = 100,
) -> list[VehicleEventRecord]:
    """The security events vehicles of ``tenant`` reported, oldest first, paged by id.

    Raises:
        BadInputError: a limit outside 1..1000.
    """
    return list_vehicle_events(
        session, tenant=tenant, vin=vin, types=[SECURITY_EVENT_TYPE], after_id=after_id, limit=limit
    )


def count_security_events(
    session: Session,
    *,
    tenant: str,
    vins: Collection[str],
    since_ns: int,
    until_ns: int,
) -> dict[str, int]:
    """How many security events each of ``vins`` (of ``tenant``) reported with a measurement
    time in [``since_ns``, ``until_ns``); a vehicle with none is 0."""
    wanted = set(vins)
    counts = dict.fromkeys(wanted, 0)
    after = 0
    while True:
        page = list_vehicle_events(
            session, tenant=tenant, types=[SECURITY_EVENT_TYPE], since_ns=since_ns,
            until_ns=until_ns, after_id=after, limit=1000,
        )
        for event in page:
            if event.vin in wanted:
                counts[event.vin] += 1
        if len(page) < 1000:
            return counts
        after = page[-1].event_id


def _signature(event: VehicleEventRecord) -> tuple[str, str, int, float] | None:
    """(signature, sensor, count, score) of a detector's event, or None when malformed."""
    data = event.data
    signature, sensor = data.get("signature"), data.get("sensor")
    count, score = data.get("count", 1), data.get("score", 0.0)
    if not isinstance(signature, str) or not 0 < len(signature) <= _MAX_SIGNATURE:
        return None
    if not isinstance(sensor, str) or len(sensor) > 40:
        return None
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 10**9:
        return None
    if isinstance(score, bool) or not isinstance(score, int | float) or math.isnan(score):
        return None
    return signature, sensor, count, float(min(max(score, 0.0), 1e9))


def correlate(session: Session, *, tenant: str, now: datetime | None = None) -> CorrelationReport:
    """Turn the security events stored since the last run into incidents.

    Raises:
        NotFoundError: the tenant does not exist (through the fleet lookup of a new incident).
    """
    now = now or datetime.now(UTC)
    # locked: correlators running at once (replicas of a consumer group) take turns
    cursor = session.get(SecurityCursorRow, tenant, with_for_update=True)
    after = cursor.last_event_id if cursor is not None else 0
    read = opened = updated = skipped = 0
    while True:
        page = list_security_events(session, tenant=tenant, after_id=after, limit=_PAGE)
        if not page:
            break
        for event in page:
            after = event.event_id
            read += 1
            parsed = _signature(event)
            if parsed is None:
                skipped += 1
                continue
            if _add_event(session, tenant, event, parsed, now):
                opened += 1
            else:
                updated += 1
    if cursor is None:
        session.add(SecurityCursorRow(tenant_id=tenant, last_event_id=after))
    else:
        cursor.last_event_id = after
    session.flush()
    return CorrelationReport(read, opened, updated, skipped)


def _add_event(
    session: Session,
    tenant: str,
    event: VehicleEventRecord,
    parsed: tuple[str, str, int, float],
    now: datetime,
) -> bool:
    """Fold one event into its vehicle's open incident; True when it opened a new one."""
    signature, sensor, count, score = parsed
    row = session.scalars(
        select(SecurityIncidentRow).where(
            SecurityIncidentRow.tenant_id == tenant,
            SecurityIncidentRow.vin == event.vin,
            SecurityIncidentRow.signature == signature,
            SecurityIncidentRow.status != "resolved",
        )
    ).first()
    if row is not None:
        row.event_count += count
        row.first_ns = min(row.first_ns, event.ts_ns)
        row.last_ns = max(row.last_ns, event.ts_ns)
        row.max_score = max(row.max_score, score)
        if SEVERITY_ORDER.index(event.severity) > SEVERITY_ORDER.index(row.severity):
            row.severity = event.severity
        row.updated_at = now
        return False
    vehicle = get_vehicle(session, event.vin, tenant=tenant)
    row = SecurityIncidentRow(
        tenant_id=tenant, vin=event.vin, model=vehicle.model, region=str(vehicle.region),
        signature=signature, sensor=sensor, status="open", severity=event.severity,
        assignee=None, event_count=count, first_ns=event.ts_ns, last_ns=event.ts_ns,
        max_score=score, opened_at=now, updated_at=now,
    )  # fmt: skip
    session.add(row)
    session.flush()
    session.add(
        SecurityIncidentActionRow(
            incident_id=row.incident_id, actor="correlator", action="open",
            text=f"first event {event.event_id} (batch {event.batch_id})", at=now,
        )
    )
    return True


def _incident(row: SecurityIncidentRow, actions: list[SecurityIncidentActionRow] | None = None) -> Incident:
    return Incident(
        incident_id=row.incident_id, tenant=row.tenant_id, vin=row.vin, model=row.model,
        region=row.region, signature=row.signature, sensor=row.sensor, status=row.status,
        severity=row.severity, assignee=row.assignee, event_count=row.event_count,
        first_ns=row.first_ns, last_ns=row.last_ns, max_score=row.max_score,
        opened_at=row.opened_at, updated_at=row.updated_at,
        actions=tuple(IncidentActionRecord(a.actor, a.action, a.text, a.at) for a in actions or []),
    )  # fmt: skip


def list_incidents(
    session: Session,
    *,
    tenant: str,
    status: str | None = None,
    vin: str | None = None,
    limit: int = 100,
) -> list[Incident]:
    """A tenant's incidents, most recently updated first.

    Raises:
        BadInputError: an unknown status or a limit outside 1..1000.
    """
    if status is not None and status not in ("open", "acknowledged", "resolved"):
        raise BadInputError(f"status {status!r} is not known; expected open, acknowledged or resolved")
    if not 1 <= limit <= 1000:
        raise BadInputError(f"limit must be 1..1000, got {limit}")
    query = select(SecurityIncidentRow).where(SecurityIncidentRow.tenant_id == tenant)
    if status is not None:
        query = query.where(SecurityIncidentRow.status == status)
    if vin is not None:
        query = query.where(SecurityIncidentRow.vin == vin)
    query = query.order_by(SecurityIncidentRow.updated_at.desc(), SecurityIncidentRow.incident_id.desc())
    return [_incident(r) for r in session.scalars(query.limit(limit))]


def get_incident(session: Session, *, tenant: str, incident_id: int) -> Incident:
    """One incident with its actions.

    Raises:
        NotFoundError: no such incident in this tenant (another tenant's is not found either).
    """
    row = _row(session, tenant, incident_id)
    actions = list(
        session.scalars(
            select(SecurityIncidentActionRow)
            .where(SecurityIncidentActionRow.incident_id == incident_id)
            .order_by(SecurityIncidentActionRow.action_id)
        )
    )
    return _incident(row, actions)


def _row(session: Session, tenant: str, incident_id: int) -> SecurityIncidentRow:
    row = session.get(SecurityIncidentRow, incident_id)
    if row is None or row.tenant_id != tenant:
        raise NotFoundError(f"security incident {incident_id} not found in tenant {tenant!r}")
    return row


def act_on_incident(
    session: Session,
    *,
    tenant: str,
    incident_id: int,
    action: str,
    actor: str,
    text: str = "",
    assignee: str | None = None,
    now: datetime | None = None,
) -> Incident:
    """Acknowledge, assign (to ``assignee``), annotate (with ``text``) or resolve an incident;
    recorded with the incident and as ``security.incident.<action>`` in the audit chain.

    Raises:
        BadInputError: an unknown action, an assign without an assignee, an empty note, text
            over 4,000 characters.
        NotFoundError: no such incident in this tenant.
        StateTransitionError: acknowledging, assigning or resolving a resolved incident.
    """
    now = now or datetime.now(UTC)
    if action not in INCIDENT_ACTIONS:
        raise BadInputError(f"action {action!r} is not known; expected one of {INCIDENT_ACTIONS}")
    if len(text) > _MAX_TEXT:
        raise BadInputError(f"text is {len(text)} characters; at most {_MAX_TEXT}")
    if action == "assign" and (not assignee or len(assignee) > 120):
        raise BadInputError("assign needs an assignee of 1..120 characters")
    if action == "annotate" and not text.strip():
        raise BadInputError("a note needs text")
    row = _row(session, tenant, incident_id)
    if row.status == "resolved" and action != "annotate":
        raise StateTransitionError(f"incident {incident_id} is resolved; only a note can be added")
    if action == "assign":
        row.assignee = assignee
        text = text or f"assigned to {assignee}"
    elif action == "acknowledge":
        row.status = "acknowledged"
    elif action == "resolve":
        row.status = "resolved"
    row.updated_at = now
    session.add(SecurityIncidentActionRow(incident_id=incident_id, actor=actor, action=action, text=text, at=now))
    record_audit(
        session, tenant=tenant, actor=actor, action=f"security.incident.{action}",
        target=f"security_incident:{incident_id}",
        details={"vin": row.vin, "signature": row.signature, "assignee": row.assignee}, now=now,
    )  # fmt: skip
    session.flush()
    return get_incident(session, tenant=tenant, incident_id=incident_id)


def fleet_severity(vehicles: int) -> str:
    """Severity of a fleet incident from how many vehicles share the signature."""
    if vehicles >= 20:
        return "critical"
    if vehicles >= 5:
        return "high"
    return "medium"


def fleet_incidents(
    session: Session,
    *,
    tenant: str,
    window_s: float = 86_400.0,
    group_by: Literal["model", "region"] = "model",
    min_vehicles: int = 2,
    now_ns: int | None = None,
) -> list[FleetIncident]:
    """Signatures seen on at least ``min_vehicles`` vehicles of one model (or region) with
    unresolved incidents whose last event is within ``window_s`` of ``now_ns``.

    Raises:
        BadInputError: a window not positive, ``min_vehicles`` < 2, an unknown grouping.
    """
    if window_s <= 0:
        raise BadInputError(f"window_s must be positive, got {window_s}")
    if min_vehicles < 2:
        raise BadInputError(f"min_vehicles must be at least 2, got {min_vehicles}")
    if group_by not in ("model", "region"):
        raise BadInputError(f"group_by {group_by!r} is not known; expected model or region")
    now_ns = now_ns if now_ns is not None else int(datetime.now(UTC).timestamp() * 1e9)
    since = now_ns - int(window_s * 1e9)
    rows = session.scalars(
        select(SecurityIncidentRow).where(
            SecurityIncidentRow.tenant_id == tenant,
            SecurityIncidentRow.status != "resolved",
            SecurityIncidentRow.last_ns >= since,
        )
    )
    groups: dict[tuple[str, str], list[SecurityIncidentRow]] = defaultdict(list)
    for row in rows:
        groups[(row.signature, row.model if group_by == "model" else row.region)].append(row)
    out = []
    for (signature, group), members in sorted(groups.items()):
        vins = tuple(sorted({m.vin for m in members}))
        if len(vins) < min_vehicles:
            continue
        out.append(
            FleetIncident(
                signature=signature, group_by=group_by, group=group, vehicles=vins,
                incident_ids=tuple(sorted(m.incident_id for m in members)),
                events=sum(m.event_count for m in members),
                first_ns=min(m.first_ns for m in members), last_ns=max(m.last_ns for m in members),
                severity=fleet_severity(len(vins)),
            )
        )
    out.sort(key=lambda f: (-SEVERITY_ORDER.index(f.severity), -len(f.vehicles)))
    return out
