"""Acting on predictions: service centres, appointments booked for alerts, and the driver's
accept or move — each booking and change sent to the car as a signed command.

Booking solves one CP-SAT problem (:mod:`.scheduling`) over the tenant's active appointments
(pinned where they are, so their capacity and parts stay taken) and the latest run's alerts
that have none yet: one request per vehicle, its most probable alert, before its predicted
window, near its last reported location. Days are counted from today (UTC). A vehicle whose
location is unknown, or that no centre can take in time, is reported with the reason and not
booked. The car learns of its appointment through the command dispatcher
(``service.appointment``: id, centre and its place, date, component, status); each change
withdraws the previous update if the car has not answered it yet, so only the latest arrives.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Final, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from drivetrain.cloud.commands import cancel_job, send_command
from drivetrain.cloud.infra import record_audit
from drivetrain.cloud.insights.models import AppointmentRow, PredictionRow, ServiceCentreRow
from drivetrain.cloud.insights.scheduling import (
    Appointment as Proposal,
)
from drivetrain.cloud.insights.scheduling import (
    SchedulingError,
    ServiceCentre,
    ServiceRequest,
    schedule,
)
from drivetrain.cloud.insights.service import latest_run
from drivetrain.cloud.twins import get_twin
from drivetrain.core.errors import BadInputError, ConflictError, NotFoundError, StateTransitionError

#: The part a failing component needs at the workshop.
COMPONENT_PARTS: Final[Mapping[str, str]] = {
    "tires": "tyre", "lv_battery": "12v-battery", "hv_cell": "hv-module",
    "coolant_pump": "coolant-pump", "brake_pads": "brake-pads",
}  # fmt: skip
APPOINTMENT_COMMAND: Final = "service.appointment"
LATITUDE: Final = "Vehicle.CurrentLocation.Latitude"
LONGITUDE: Final = "Vehicle.CurrentLocation.Longitude"
AppointmentStatus = Literal["proposed", "accepted", "cancelled"]
ACTIVE: Final = ("proposed", "accepted")
_CENTRE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,47}")
MAX_CENTRES: Final = 500


@dataclass(frozen=True)
class Centre:
    """A service centre as stored."""

    centre_id: str
    name: str
    lat: float
    lon: float
    daily_capacity: int
    stock: Mapping[str, int]
    updated_at: datetime

    @classmethod
    def of(cls, row: ServiceCentreRow) -> Centre:
        return cls(row.centre_id, row.name, row.lat, row.lon, row.daily_capacity,
                   json.loads(row.stock), row.updated_at)  # fmt: skip


@dataclass(frozen=True)
class StoredAppointment:
    """A booked appointment and what became of it; ``command_id`` is the last command that
    told the car."""

    appointment_id: str
    vin: str
    component: str
    part: str
    centre_id: str
    day: date
    status: str
    probability: float
    window_start: datetime
    window_end: datetime
    distance_km: float
    run_id: str
    created_at: datetime
    updated_at: datetime
    command_id: str | None

    @classmethod
    def of(cls, row: AppointmentRow) -> StoredAppointment:
        return cls(row.appointment_id, row.vin, row.component, row.part, row.centre_id, row.day,
                   row.status, row.probability, row.window_start, row.window_end, row.distance_km,
                   row.run_id, row.created_at, row.updated_at, row.command_id)  # fmt: skip


@dataclass(frozen=True)
class Unbooked:
    """An alerted vehicle the scheduler could not book, and why."""

    vin: str
    component: str
    reason: str


@dataclass(frozen=True)
class BookingResult:
    booked: tuple[StoredAppointment, ...]
    unbooked: tuple[Unbooked, ...]


def _check_centre(centre_id: str, name: str, lat: float, lon: float, capacity: int,
                  stock: Mapping[str, int]) -> None:  # fmt: skip
    if not _CENTRE_ID.fullmatch(centre_id):
        raise BadInputError(f"centre id {centre_id!r}; expected 1-48 of A-Z a-z 0-9 _ . - ")
    if not name or len(name) > 120:
        raise BadInputError("name: expected 1-120 characters")
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise BadInputError(f"lat/lon {lat}, {lon}; expected -90..90 and -180..180")
    if not 0 <= capacity <= 1000:
        raise BadInputError(f"daily_capacity {capacity}; expected 0..1000")
    for part, units in stock.items():
        if part not in COMPONENT_PARTS.values():
            raise BadInputError(f"stock: unknown part {part!r}; expected one of {sorted(COMPONENT_PARTS.values())}")
        if not 0 <= units <= 100_000:
            raise BadInputError(f"stock[{part!r}] {units}; expected 0..100000")


def put_centre(
    session: Session, tenant: str, centre_id: str, *, name: str, lat: float, lon: float,
    daily_capacity: int, stock: Mapping[str, int], actor: str, now: datetime | None = None,
) -> Centre:  # fmt: skip
    """Create or replace a service centre of ``tenant``.

    Raises:
        BadInputError: a bad id, place, capacity or part (nothing is stored).
    """
    _check_centre(centre_id, name, lat, lon, daily_capacity, stock)
    now = now or datetime.now(UTC)
    row = session.get(ServiceCentreRow, (tenant, centre_id))
    if row is None:
        if len(list_centres(session, tenant)) >= MAX_CENTRES:
            raise BadInputError(f"a tenant has at most {MAX_CENTRES} service centres")
        row = ServiceCentreRow(tenant_id=tenant, centre_id=centre_id)
        session.add(row)
    row.name, row.lat, row.lon, row.daily_capacity = name, lat, lon, daily_capacity
    row.stock, row.updated_at = json.dumps(dict(sorted(stock.items()))), now
    session.flush()
    record_audit(session, tenant=tenant, actor=actor, action="insights.centre.put",
                 target=f"centre:{centre_id}", details={"capacity": daily_capacity}, now=now)
    return Centre.of(row)


def list_centres(session: Session, tenant: str) -> list[Centre]:
    rows = session.scalars(select(ServiceCentreRow).where(ServiceCentreRow.tenant_id == tenant)
                           .order_by(ServiceCentreRow.centre_id))  # fmt: skip
    return [Centre.of(r) for r in rows]


def _location(session: Session, tenant: str, vin: str) -> tuple[float, float] | None:
    reported = get_twin(session, vin, tenant=tenant).reported
    lat, lon = reported.get(LATITUDE), reported.get(LONGITUDE)
    if lat is None or lon is None or not isinstance(lat.value, int | float) or not isinstance(lon.value, int | float):
        return None
    return float(lat.value), float(lon.value)


def _active(session: Session, tenant: str) -> list[AppointmentRow]:
    return list(session.scalars(
        select(AppointmentRow).where(AppointmentRow.tenant_id == tenant, AppointmentRow.status.in_(ACTIVE))
        .order_by(AppointmentRow.appointment_id)
    ))  # fmt: skip


def _latest_day(window_start: datetime, today: date) -> int:
    """Days from today before which the service must happen (exclusive)."""
    return max(0, (window_start.astimezone(UTC).date() - today).days + 1)


def _request_of(row: AppointmentRow, location: tuple[float, float], today: date) -> ServiceRequest:
    return ServiceRequest(row.vin, row.component, row.part, location[0], location[1],
                          _latest_day(row.window_start, today))  # fmt: skip


def _centres(session: Session, tenant: str) -> list[ServiceCentre]:
    centres = [ServiceCentre(c.centre_id, c.lat, c.lon, c.daily_capacity, dict(c.stock))
               for c in list_centres(session, tenant)]  # fmt: skip
    if not centres:
        raise ConflictError("no service centres: add one first (PUT /v1/insights/service-centres/{id})")
    return centres


def _tell_car(session: Session, row: AppointmentRow, centre: Centre, *, tenant: str, actor: str,
              request_id: str | None, now: datetime) -> None:  # fmt: skip
    if row.command_id is not None:
        # The car needs only the latest state: an earlier update still on its way is withdrawn
        # (commands are not ordered across jobs; a stale one must not overtake the new one).
        try:
            cancel_job(session, row.command_id, tenant=tenant, actor=actor,
                       reason="superseded by a newer appointment update", now=now, request_id=request_id)
        except StateTransitionError:
            pass  # already answered by the car: nothing to withdraw
    job = send_command(
        session, row.vin, APPOINTMENT_COMMAND,
        {"appointment_id": row.appointment_id, "status": row.status, "date": row.day.isoformat(),
         "centre": {"id": centre.centre_id, "name": centre.name, "lat": centre.lat, "lon": centre.lon},
         "component": row.component, "window_start": row.window_start.isoformat()},
        tenant=tenant, actor=actor, now=now, request_id=request_id,
    )  # fmt: skip
    row.command_id = job.job_id


def book_appointments(
    session: Session, tenant: str, *, actor: str, days: int = 14, max_distance_km: float = 150.0,
    now: datetime | None = None, request_id: str | None = None,
) -> BookingResult:  # fmt: skip
    """Book the latest run's alerted vehicles that have no active appointment (see module doc).

    Raises:
        ConflictError: no service centres, or no scoring run yet.
        SchedulingError: bad ``days``.
    """
    now = now or datetime.now(UTC)
    today = now.astimezone(UTC).date()
    centres = _centres(session, tenant)
    run = latest_run(session, tenant)
    if run is None:
        raise ConflictError("no predictions yet: score the fleet first (drivetrain insights score)")
    active = _active(session, tenant)
    busy = {a.vin for a in active}
    best: dict[str, PredictionRow] = {}
    for p in session.scalars(select(PredictionRow).where(PredictionRow.run_id == run.run_id, PredictionRow.alert)):
        if p.vin is None or p.vin in busy or p.component not in COMPONENT_PARTS:
            continue
        if p.vin not in best or p.probability > best[p.vin].probability:
            best[p.vin] = p
    unbooked: list[Unbooked] = []
    requests: list[ServiceRequest] = []
    pinned: dict[str, tuple[str, int]] = {}
    stored = {c.centre_id: c for c in list_centres(session, tenant)}
    for a in active:
        offset = (a.day - today).days
        if offset >= 0:
            # A pinned booking only takes its slot and part: placed at its centre, it stays
            # feasible wherever the vehicle has gone since.
            requests.append(_request_of(a, (stored[a.centre_id].lat, stored[a.centre_id].lon), today))
            pinned[a.vin] = (a.centre_id, offset)
    fresh = []
    for vin, p in sorted(best.items()):
        where = _location(session, tenant, vin)
        if where is None:
            unbooked.append(Unbooked(vin, p.component, "no reported location (Vehicle.CurrentLocation)"))
            continue
        requests.append(ServiceRequest(vin, p.component, COMPONENT_PARTS[p.component], where[0], where[1],
                                       _latest_day(p.window_start, today)))  # fmt: skip
        fresh.append(p)
    proposals = _solve(requests, centres, days, max_distance_km, pinned, {}) if fresh else []
    by_vin = {pr.vehicle: pr for pr in proposals}
    booked = []
    for p in fresh:
        proposal = by_vin[p.vin or ""]
        if proposal.centre_id is None or proposal.day is None:
            unbooked.append(Unbooked(p.vin or "", p.component, proposal.reason))
            continue
        row = AppointmentRow(
            appointment_id=f"apt-{uuid.uuid4().hex[:20]}", tenant_id=tenant, vin=p.vin,
            component=p.component, part=COMPONENT_PARTS[p.component], centre_id=proposal.centre_id,
            day=today + timedelta(days=proposal.day), status="proposed", probability=p.probability,
            window_start=p.window_start, window_end=p.window_end,
            distance_km=float(proposal.distance_km or 0.0), run_id=run.run_id, created_at=now,
            updated_at=now,
        )  # fmt: skip
        session.add(row)
        session.flush()
        _tell_car(session, row, stored[row.centre_id], tenant=tenant, actor=actor, request_id=request_id, now=now)
        booked.append(StoredAppointment.of(row))
    record_audit(session, tenant=tenant, actor=actor, action="insights.appointments.book",
                 target=f"run:{run.run_id}", details={"booked": len(booked), "unbooked": len(unbooked)},
                 request_id=request_id, now=now)  # fmt: skip
    return BookingResult(tuple(booked), tuple(unbooked))


def _solve(requests: Sequence[ServiceRequest], centres: Sequence[ServiceCentre], days: int,
           max_distance_km: float, pinned: Mapping[str, tuple[str, int]],
           forbidden: Mapping[str, set[tuple[str, int]]]) -> list[Proposal]:  # fmt: skip
    if not (max_distance_km > 0 and math.isfinite(max_distance_km)):
        raise BadInputError(f"max_distance_km {max_distance_km}; expected a positive number")
    return schedule(requests, centres, days=days, max_distance_km=max_distance_km,
                    pinned=pinned, forbidden=forbidden)  # fmt: skip


def _appointment_row(session: Session, tenant: str, appointment_id: str) -> AppointmentRow:
    row = session.get(AppointmentRow, appointment_id) if len(appointment_id) <= 40 else None
    if row is None or row.tenant_id != tenant:
        raise NotFoundError(f"appointment {appointment_id!r} does not exist")
    return row


def get_appointment(session: Session, tenant: str, appointment_id: str) -> StoredAppointment:
    """Raises NotFoundError for an unknown id or another tenant's appointment."""
    return StoredAppointment.of(_appointment_row(session, tenant, appointment_id))


def list_appointments(session: Session, tenant: str, *, status: str | None = None,
                      vin: str | None = None, limit: int = 100) -> list[StoredAppointment]:  # fmt: skip
    query = select(AppointmentRow).where(AppointmentRow.tenant_id == tenant)
    if status is not None:
        query = query.where(AppointmentRow.status == status)
    if vin is not None:
        query = query.where(AppointmentRow.vin == vin)
    rows = session.scalars(query.order_by(AppointmentRow.day, AppointmentRow.appointment_id).limit(limit))
    return [StoredAppointment.of(r) for r in rows]


def accept_appointment(session: Session, tenant: str, appointment_id: str, *, actor: str,
                       now: datetime | None = None, request_id: str | None = None) -> StoredAppointment:  # fmt: skip
    """The driver accepts the proposed slot; the car is told it is confirmed.

    Raises:
        NotFoundError: unknown appointment.
        ConflictError: the appointment is not proposed (already accepted or cancelled).
    """
    now = now or datetime.now(UTC)
    row = _appointment_row(session, tenant, appointment_id)
    if row.status != "proposed":
        raise ConflictError(f"appointment {appointment_id} is {row.status}; only a proposed one can be accepted")
    row.status, row.updated_at = "accepted", now
    centre = {c.centre_id: c for c in list_centres(session, tenant)}[row.centre_id]
    _tell_car(session, row, centre, tenant=tenant, actor=actor, request_id=request_id, now=now)
    record_audit(session, tenant=tenant, actor=actor, action="insights.appointment.accept",
                 target=f"appointment:{appointment_id}", request_id=request_id, now=now)
    return StoredAppointment.of(row)


def cancel_appointment(session: Session, tenant: str, appointment_id: str, *, actor: str,
                       now: datetime | None = None, request_id: str | None = None) -> StoredAppointment:  # fmt: skip
    """Cancel an appointment (the driver or the workshop calls it off); its slot and part are
    free again and the car is told. The alert stays: booking again may propose a new slot.

    Raises:
        NotFoundError: unknown appointment.
        ConflictError: already cancelled.
    """
    now = now or datetime.now(UTC)
    row = _appointment_row(session, tenant, appointment_id)
    if row.status not in ACTIVE:
        raise ConflictError(f"appointment {appointment_id} is already {row.status}")
    row.status, row.updated_at = "cancelled", now
    centre = {c.centre_id: c for c in list_centres(session, tenant)}[row.centre_id]
    _tell_car(session, row, centre, tenant=tenant, actor=actor, request_id=request_id, now=now)
    record_audit(session, tenant=tenant, actor=actor, action="insights.appointment.cancel",
                 target=f"appointment:{appointment_id}", request_id=request_id, now=now)
    return StoredAppointment.of(row)


def move_appointment(
    session: Session, tenant: str, appointment_id: str, *, actor: str,
    centre_id: str | None = None, day: date | None = None, now: datetime | None = None,
    request_id: str | None = None, days: int = 14,
) -> StoredAppointment:  # fmt: skip
    """The driver moves the appointment: to ``centre_id`` on ``day`` when given (checked
    against capacity, stock and the predicted window), else to the best other slot. Every
    other active appointment keeps its slot. The car is told the new slot; the appointment
    is accepted (the driver chose it).

    Raises:
        NotFoundError: unknown appointment or centre.
        BadInputError: only one of centre and day given, or a day in the past.
        ConflictError: cancelled, or no slot is possible (the reason is given).
    """
    now = now or datetime.now(UTC)
    today = now.astimezone(UTC).date()
    row = _appointment_row(session, tenant, appointment_id)
    if row.status not in ACTIVE:
        raise ConflictError(f"appointment {appointment_id} is {row.status}; it cannot be moved")
    if (centre_id is None) != (day is None):
        raise BadInputError("give both centre and day to move to a chosen slot, or neither for the next best")
    centres = _centres(session, tenant)
    stored = {c.centre_id: c for c in list_centres(session, tenant)}
    if centre_id is not None and centre_id not in stored:
        raise NotFoundError(f"service centre {centre_id!r} does not exist")
    if day is not None and day < today:
        raise BadInputError(f"day {day.isoformat()} is in the past")
    requests: list[ServiceRequest] = []
    pinned: dict[str, tuple[str, int]] = {}
    for a in _active(session, tenant):
        where = (stored[a.centre_id].lat, stored[a.centre_id].lon)  # pinned: see book_appointments
        if a.appointment_id == row.appointment_id:
            where = _location(session, tenant, a.vin) or where
        offset = (a.day - today).days
        if offset < 0 and a.appointment_id != row.appointment_id:
            continue
        requests.append(_request_of(a, where, today))
        if a.appointment_id != row.appointment_id:
            pinned[a.vin] = (a.centre_id, offset)
    forbidden: dict[str, set[tuple[str, int]]] = {}
    if centre_id is not None and day is not None:
        pinned[row.vin] = (centre_id, (day - today).days)
    else:
        forbidden[row.vin] = {(row.centre_id, (row.day - today).days)}
    try:
        proposals = _solve(requests, centres, days, 1e6 if centre_id else 150.0, pinned, forbidden)
    except SchedulingError as e:  # the chosen slot is full or lacks the part
        raise ConflictError(f"cannot move appointment {appointment_id} to {centre_id} on {day}: "
                            "that slot is full or the centre lacks the part") from e
    proposal = next(p for p in proposals if p.vehicle == row.vin)
    if proposal.centre_id is None or proposal.day is None:
        wanted = f"{centre_id} on {day.isoformat()}" if centre_id and day else "another slot"
        raise ConflictError(f"cannot move appointment {appointment_id} to {wanted}: {proposal.reason}")
    row.centre_id, row.day = proposal.centre_id, today + timedelta(days=proposal.day)
    row.distance_km = float(proposal.distance_km or 0.0)
    row.status, row.updated_at = "accepted", now
    _tell_car(session, row, stored[row.centre_id], tenant=tenant, actor=actor, request_id=request_id, now=now)
    record_audit(session, tenant=tenant, actor=actor, action="insights.appointment.move",
                 target=f"appointment:{appointment_id}",
                 details={"centre": row.centre_id, "day": row.day.isoformat()}, request_id=request_id, now=now)  # fmt: skip
    return StoredAppointment.of(row)
