"""``/v1/security``: security events vehicles reported, incidents and their workflow, fleet
incidents, response playbooks.

A thin shell over the security service, always for the caller's own tenant (from the token):
another tenant's incident or response answers 404 exactly like one that does not exist.
Reading needs ``security:read``; correlating, working incidents and running playbooks need
``security:write``. Every workflow action and response step lands in the tenant's audit log.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from drivetrain.cloud.infra import Principal, Scope
from drivetrain.cloud.infra.http import Context, require_scopes
from drivetrain.cloud.security.playbooks import (
    Response,
    approve_response,
    list_responses,
    propose_response,
    refuse_response,
)
from drivetrain.cloud.security.report import MAX_REPORT_DAYS, DurationStats, security_report
from drivetrain.cloud.security.service import (
    FleetIncident,
    Incident,
    act_on_incident,
    correlate,
    fleet_incidents,
    get_incident,
    list_incidents,
    list_security_events,
)

router = APIRouter(tags=["security"])

Reader = Annotated[Principal, require_scopes(Scope.SECURITY_READ)]
Writer = Annotated[Principal, require_scopes(Scope.SECURITY_WRITE)]
MAX_ID = 2**63 - 1
IncidentId = Annotated[int, Path(ge=1, le=MAX_ID, description="The incident's id.")]
ResponseId = Annotated[int, Path(ge=1, le=MAX_ID, description="The response's id.")]
Limit = Annotated[int, Query(ge=1, le=1000, description="At most this many.")]


class SecurityEventOut(BaseModel):
    """One security event as the vehicle's detector reported it."""

    event_id: int
    vin: str
    ts_ns: int = Field(description="When the event began, Unix nanoseconds.")
    severity: str
    data: dict[str, Any] = Field(description="The detector's fields: event_id, sensor, can_id, "
                                 "count, first_s, last_s, score, evidence, signature.")


class IncidentActionOut(BaseModel):
    actor: str
    action: str
    text: str
    at: datetime


class IncidentOut(BaseModel):
    """One vehicle's incident: the events of one signature while it is not resolved."""

    incident_id: int
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
    actions: list[IncidentActionOut]

    @classmethod
    def of(cls, incident: Incident) -> IncidentOut:
        data = {k: getattr(incident, k) for k in cls.model_fields if k != "actions"}
        return cls(**data, actions=[IncidentActionOut(actor=a.actor, action=a.action, text=a.text, at=a.at)
                                    for a in incident.actions])


class IncidentActionIn(BaseModel):
    """An analyst's action on an incident."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["acknowledge", "assign", "annotate", "resolve"]
    text: str = Field(default="", max_length=4000)
    assignee: str | None = Field(default=None, min_length=1, max_length=120)


class FleetIncidentOut(BaseModel):
    """One signature on several vehicles of one model (or region) within the window."""

    signature: str
    group_by: str
    group: str
    vehicles: list[str]
    incident_ids: list[int]
    events: int
    first_ns: int
    last_ns: int
    severity: str

    @classmethod
    def of(cls, fleet: FleetIncident) -> FleetIncidentOut:
        return cls.model_validate(fleet.to_dict())


class CorrelationOut(BaseModel):
    events_read: int
    incidents_opened: int
    incidents_updated: int
    skipped: int = Field(description="Events whose data is not a detector's event.")


class ResponseIn(BaseModel):
    """A playbook to run for every vehicle with an unresolved incident of ``signature``."""

    model_config = ConfigDict(extra="forbid")

    signature: str = Field(min_length=1, max_length=200, examples=["cross_signal:0x0D0"])
    playbook: Literal["disable_function", "security_channel", "collect_evidence"]
    function: str | None = Field(default=None, min_length=1, max_length=80,
                                 description="The function to disable (disable_function).")


class ResponseOut(BaseModel):
    response_id: int
    signature: str
    playbook: str
    args: dict[str, Any]
    vins: list[str]
    status: str
    requested_by: str
    decided_by: str | None
    job_id: str | None
    created_at: datetime
    decided_at: datetime | None

    @classmethod
    def of(cls, response: Response) -> ResponseOut:
        data = response.to_dict()
        data.pop("tenant")
        return cls.model_validate(data)


@router.get("/events", response_model=list[SecurityEventOut], summary="Security events vehicles reported")
def read_events(
    principal: Reader,
    context: Context,
    vin: Annotated[str | None, Query(min_length=1, max_length=17, description="Only this vehicle.")] = None,
    after_id: Annotated[int, Query(ge=0, le=MAX_ID, description="Page after this event id.")] = 0,
    limit: Limit = 100,
) -> list[SecurityEventOut]:
    """Security events of the caller's tenant, oldest first, paged by id."""
    with context.database.session() as session:
        events = list_security_events(session, tenant=principal.tenant, vin=vin, after_id=after_id, limit=limit)
    return [SecurityEventOut(event_id=e.event_id, vin=e.vin, ts_ns=e.ts_ns, severity=e.severity, data=e.data)
            for e in events]


@router.post("/correlate", response_model=CorrelationOut, summary="Fold new security events into incidents")
def run_correlation(principal: Writer, context: Context) -> CorrelationOut:
    """Read the events stored since the last run and fold them into incidents."""
    with context.database.session() as session:
        report = correlate(session, tenant=principal.tenant)
    return CorrelationOut(events_read=report.events_read, incidents_opened=report.incidents_opened,
                          incidents_updated=report.incidents_updated, skipped=report.skipped)


@router.get("/incidents", response_model=list[IncidentOut], summary="Incidents")
def read_incidents(
    principal: Reader,
    context: Context,
    status: Annotated[Literal["open", "acknowledged", "resolved"] | None, Query(description="Only this status.")] = None,
    vin: Annotated[str | None, Query(min_length=1, max_length=17, description="Only this vehicle.")] = None,
    limit: Limit = 100,
) -> list[IncidentOut]:
    """The tenant's incidents, most recently updated first (without their history)."""
    with context.database.session() as session:
        found = list_incidents(session, tenant=principal.tenant, status=status, vin=vin, limit=limit)
    return [IncidentOut.of(i) for i in found]


@router.get("/incidents/{incident_id}", response_model=IncidentOut, summary="One incident with its history")
def read_incident(incident_id: IncidentId, principal: Reader, context: Context) -> IncidentOut:
    """The incident and every action taken on it."""
    with context.database.session() as session:
        return IncidentOut.of(get_incident(session, tenant=principal.tenant, incident_id=incident_id))


@router.post("/incidents/{incident_id}/actions", response_model=IncidentOut,
             summary="Acknowledge, assign, annotate or resolve an incident")
def work_incident(
    incident_id: IncidentId, body: IncidentActionIn, principal: Writer, context: Context
) -> IncidentOut:
    """One workflow step; a resolved incident only takes notes (409 otherwise)."""
    with context.database.session() as session:
        incident = act_on_incident(
            session, tenant=principal.tenant, incident_id=incident_id, action=body.action,
            actor=principal.client_id, text=body.text, assignee=body.assignee,
        )  # fmt: skip
    return IncidentOut.of(incident)


@router.get("/fleet-incidents", response_model=list[FleetIncidentOut],
            summary="Signatures seen on several vehicles of one model or region")
def read_fleet_incidents(
    principal: Reader,
    context: Context,
    window_s: Annotated[float, Query(gt=0, le=31_536_000, description="Correlation window, seconds.")] = 86_400.0,
    group_by: Annotated[Literal["model", "region"], Query(description="Group vehicles by model or region.")] = "model",
) -> list[FleetIncidentOut]:
    """Fleet incidents, most severe first."""
    with context.database.session() as session:
        found = fleet_incidents(session, tenant=principal.tenant, window_s=window_s, group_by=group_by)
    return [FleetIncidentOut.of(f) for f in found]


@router.get("/responses", response_model=list[ResponseOut], summary="Response playbooks run or proposed")
def read_responses(principal: Reader, context: Context, limit: Limit = 100) -> list[ResponseOut]:
    """The tenant's responses, newest first."""
    with context.database.session() as session:
        return [ResponseOut.of(r) for r in list_responses(session, tenant=principal.tenant, limit=limit)]


@router.post("/responses", response_model=ResponseOut, summary="Propose a response playbook")
def create_response(body: ResponseIn, principal: Writer, context: Context) -> ResponseOut:
    """Propose a playbook: disable_function and security_channel wait for a second person's
    approval, collect_evidence runs at once."""
    with context.database.session() as session:
        response = propose_response(
            session, tenant=principal.tenant, signature=body.signature, playbook=body.playbook,
            function=body.function, actor=principal.client_id,
        )  # fmt: skip
    return ResponseOut.of(response)


@router.post("/responses/{response_id}/approve", response_model=ResponseOut,
             summary="Approve a response and send its commands")
def approve(response_id: ResponseId, principal: Writer, context: Context) -> ResponseOut:
    """A second person approves; the proposer cannot (403). Sends one signed command per vehicle."""
    with context.database.session() as session:
        return ResponseOut.of(approve_response(session, tenant=principal.tenant, response_id=response_id,
                                               actor=principal.client_id))


@router.post("/responses/{response_id}/refuse", response_model=ResponseOut, summary="Refuse a response")
def refuse(response_id: ResponseId, principal: Writer, context: Context) -> ResponseOut:
    """Refuse a proposed response: nothing is sent."""
    with context.database.session() as session:
        return ResponseOut.of(refuse_response(session, tenant=principal.tenant, response_id=response_id,
                                              actor=principal.client_id))


class DurationOut(BaseModel):
    """How long a step took over the incidents that reached it (None when none did)."""

    count: int = Field(description="Incidents that reached the step.")
    median_s: float | None
    p90_s: float | None
    max_s: float | None

    @classmethod
    def of(cls, stats: DurationStats) -> DurationOut:
        return cls(count=stats.count, median_s=stats.median_s, p90_s=stats.p90_s, max_s=stats.max_s)


class SecurityReportOut(BaseModel):
    """The security posture over incidents opened in the window (UN R155 monitoring)."""

    since: datetime
    generated_at: datetime
    incidents: int
    vehicles: int = Field(description="Distinct vehicles with an incident in the window.")
    events: int = Field(description="Security events folded into those incidents.")
    by_severity: dict[str, dict[str, int]] = Field(description="severity -> status -> incidents.")
    by_status: dict[str, int]
    to_acknowledge: DurationOut = Field(description="Vehicle detection -> first acknowledgement.")
    to_respond: DurationOut = Field(description="Vehicle detection -> a response playbook sent to it.")
    to_resolve: DurationOut = Field(description="Vehicle detection -> resolution.")
    responses: dict[str, int] = Field(description="Response status -> responses in the window.")
    awaiting_approval: int = Field(description="Responses waiting for a second person.")


@router.get("/report", response_model=SecurityReportOut,
            summary="Security posture: incidents by severity and status, detection-to-response times")
def read_report(
    principal: Reader,
    context: Context,
    days: Annotated[int, Query(ge=1, le=MAX_REPORT_DAYS, description="Incidents opened in this many "
                               "last days.")] = 30,
) -> SecurityReportOut:
    """The R155 monitoring summary of the caller's tenant, computed from its incidents and
    responses."""
    with context.database.session() as session:
        report = security_report(session, tenant=principal.tenant, days=days)
    return SecurityReportOut(
        since=report.since, generated_at=report.generated_at, incidents=report.incidents,
        vehicles=report.vehicles, events=report.events, by_severity=report.by_severity,
        by_status=report.by_status, to_acknowledge=DurationOut.of(report.to_acknowledge),
        to_respond=DurationOut.of(report.to_respond), to_resolve=DurationOut.of(report.to_resolve),
        responses=report.responses, awaiting_approval=report.awaiting_approval,
    )  # fmt: skip
