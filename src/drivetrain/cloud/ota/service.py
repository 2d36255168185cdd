"""Stored rollouts: the pure :class:`Rollout` core kept in the state database, driven by
operators (create, approve, pause, resume, cancel, advance) and by vehicles' progress reports.

Each call loads the rollout's rows into a :class:`Rollout`, lets the core decide, and writes
the result back in the caller's transaction. Notices travel as one continuous job of the
dispatcher per rollout (:mod:`drivetrain.cloud.ota.flows`); signing happens in the
:class:`OtaLayout` on disk.

Life cycle: ``create`` (a draft: targets resolved from the twin query, keeping only vehicles
whose twin lists the ECU with a hardware id one of the images is built for) → ``approve`` by
another person (opens the job, signs and notifies the first wave) → vehicles answer the notice
(``downloading`` / ``installing`` / ``installed`` / ``failed`` / ``rolled_back``) →
:func:`step_rollout`, run by the dispatcher's round (:class:`RolloutDriver`), takes the answers
in and, once the wave has every outcome and the updated cars were observed for
``observe_s``, judges it (thresholds, then the health gate on health the platform measures:
:mod:`drivetrain.cloud.ota.health`) and, while running, picks up vehicles that joined the
query since and starts the next wave. ``advance`` judges at once, without waiting out the
observation. A final state writes the vehicle's UN R156 update record; ``installed`` also
writes the new version into the twin. Reading a rollout changes nothing.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final, cast

from sqlalchemy import select
from sqlalchemy.orm import Session

from drivetrain.cloud.commands import (
    MAX_RETRIES,
    JobStatus,
    MaintenanceWindow,
    RolloutPolicy,
    cancel_deliveries,
    latest_deliveries,
)
from drivetrain.cloud.infra import record_audit
from drivetrain.cloud.ingest import list_vehicle_events
from drivetrain.cloud.lake import Lake
from drivetrain.cloud.ota import flows
from drivetrain.cloud.ota.health import measure_health
from drivetrain.cloud.ota.images import ImageInfo
from drivetrain.cloud.ota.layout import OtaLayout
from drivetrain.cloud.ota.manifests import accept_manifest
from drivetrain.cloud.ota.models import RolloutRow, RolloutVehicleRow, UpdateRecordRow
from drivetrain.cloud.ota.rollout import (
    FINAL,
    Rollout,
    RolloutStatus,
    UpdateRecord,
    VehicleState,
    WavePolicy,
)
from drivetrain.cloud.twins import list_ecus
from drivetrain.core.errors import (
    BadInputError,
    NotFoundError,
    StateTransitionError,
    VerificationError,
)
from drivetrain.core.ota_report import MANIFEST_EVENT, OtaReport, OtaReportError

MAX_PAGE: Final = 1000
MAX_IMAGES: Final = 64
_ENDED: Final = ("stopped", "completed", "cancelled")
#: Held by a rollout's writers in this process around their transaction (the API's writing
#: routes, the dispatcher's round): with SQLite, which has no row locks, the embedded
#: deployment's round and an operator never judge one wave twice.
WRITING: Final = threading.RLock()
#: How long after a deferred update the notice is sent again, seconds.
DEFERRED_RETRY_S: Final = 600.0
#: How far a vehicle's reported time of an outcome may be from the platform's clock.
MAX_CLOCK_AHEAD: Final = timedelta(minutes=5)
MAX_CLOCK_BEHIND: Final = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class RolloutSpec:
    """What an operator asks for: one ECU's build (an image per hardware id) to the vehicles
    a twin query selects, in waves."""

    name: str
    ecu: str
    images: tuple[str, ...]
    query: str = ""
    policy: WavePolicy = field(default_factory=WavePolicy)
    maintenance_windows: tuple[MaintenanceWindow, ...] = ()
    optional: bool = False
    rxswin: str = ""

    def __post_init__(self) -> None:
        if not self.name.strip() or len(self.name) > 120:
            raise BadInputError(f"name {self.name!r}: expected 1..120 characters")
        if not self.ecu.strip() or len(self.ecu) > 64:
            raise BadInputError(f"ecu {self.ecu!r}: expected 1..64 characters")
        if not 1 <= len(self.images) <= MAX_IMAGES:
            raise BadInputError(f"images: {len(self.images)} given; expected 1..{MAX_IMAGES}")
        if len(self.rxswin) > 120:
            raise BadInputError("rxswin: longer than 120 characters")


@dataclass(frozen=True, slots=True)
class RolloutView:
    """A stored rollout as its API shows it."""

    rollout_id: str
    tenant: str
    name: str
    ecu: str
    images: tuple[str, ...]
    version: str
    rxswin: str
    query: str
    policy: WavePolicy
    maintenance_windows: tuple[MaintenanceWindow, ...]
    optional: bool
    status: RolloutStatus
    wave: int
    reason: str
    evidence: Mapping[str, Mapping[str, float]]
    counts: Mapping[str, int]
    job_id: str | None
    created_by: str
    approved_by: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class RolloutVehicle:
    """One targeted vehicle's place and state in a rollout (``waiting``: no wave yet)."""

    vin: str
    position: int
    wave: int
    state: str
    detail: str
    software_before: str
    updated_at: datetime


def _now(now: datetime | None) -> datetime:
    return now or datetime.now(UTC)


def _images_by_hardware(layout: OtaLayout, names: Sequence[str]) -> dict[str, ImageInfo]:
    images = layout.images()
    by_hw: dict[str, ImageInfo] = {}
    for name in names:
        info = ImageInfo.of(images.image(name))
        if info.kind == "delta":
            raise BadInputError(f"images: {name!r} is a delta; name the full image (its "
                                "deltas are offered to vehicles by themselves)")
        if info.hardware_id in by_hw:
            raise BadInputError(f"images: {name!r} and {by_hw[info.hardware_id].name!r} are "
                                f"both built for hardware {info.hardware_id!r}; one per "
                                "hardware id")
        by_hw[info.hardware_id] = info
    versions = {i.version for i in by_hw.values()}
    if len(versions) != 1:
        raise BadInputError(f"images: versions {sorted(versions)} differ; a rollout sends one "
                            "version (an image per hardware id)")
    return by_hw


def _eligible(session: Session, tenant: str, query: str, ecu: str,
              hardware: Mapping[str, ImageInfo]) -> dict[str, str]:
    """VIN → the ECU's software version now, for the vehicles the query selects whose twin
    lists ``ecu`` with a hardware id one of the images fits."""
    out: dict[str, str] = {}
    for vin in flows.select_targets(session, tenant, query):
        for e in list_ecus(session, vin, tenant=tenant):
            if e.name == ecu and e.hardware_id in hardware:
                out[vin] = e.software_version or "unknown"
    return out


def _row(session: Session, rollout_id: str, tenant: str, *, lock: bool = False) -> RolloutRow:
    """The rollout's row; ``lock``: held against other writers until the transaction ends
    (a row lock on PostgreSQL), so the dispatcher's round and an operator never judge the
    same wave twice."""
    row = session.get(RolloutRow, rollout_id, with_for_update=lock or None)
    if row is None or row.tenant_id != tenant:  # another tenant's rollout does not exist
        raise NotFoundError(f"rollout {rollout_id!r} does not exist")
    return row


def _vehicle_rows(session: Session, rollout_id: str) -> list[RolloutVehicleRow]:
    return list(session.scalars(select(RolloutVehicleRow)
                                .where(RolloutVehicleRow.rollout_id == rollout_id)
                                .order_by(RolloutVehicleRow.position)))


def _policy(row: RolloutRow) -> WavePolicy:
    return WavePolicy(tuple(json.loads(row.waves)), row.success_threshold, row.error_threshold,
                      row.health_margin, row.min_control, row.observe_s)


def _windows(row: RolloutRow) -> tuple[MaintenanceWindow, ...]:
    return tuple(MaintenanceWindow.from_dict(w) for w in json.loads(row.maintenance_windows))


def _core(row: RolloutRow, vehicles: Sequence[RolloutVehicleRow]) -> Rollout:
    ends = json.loads(row.wave_ends)
    return Rollout(
        row.name, tuple(v.vin for v in vehicles), _policy(row),
        status=cast(RolloutStatus, row.status), created_by=row.created_by,
        approved_by=row.approved_by or "",
        wave_spans=[(([0, *ends])[i], end) for i, end in enumerate(ends)], wave=row.wave,
        states={v.vin: cast(VehicleState, v.state) for v in vehicles if v.state != "waiting"},
        reason=row.reason, evidence=json.loads(row.evidence))


def _store(session: Session, row: RolloutRow, rollout: Rollout,
           vehicles: list[RolloutVehicleRow], now: datetime) -> None:
    """Write the core's state back: the rollout's columns and each vehicle's row."""
    row.status, row.wave, row.reason = rollout.status, rollout.wave, rollout.reason
    row.approved_by = rollout.approved_by or None
    row.wave_ends = json.dumps([end for _, end in rollout.wave_spans])
    row.evidence = json.dumps(rollout.evidence, sort_keys=True)
    row.updated_at = now
    by_vin = {v.vin: v for v in vehicles}
    wave_of = {vin: n + 1 for n, (start, end) in enumerate(rollout.wave_spans)
               for vin in rollout.targets[start:end]}
    for position, vin in enumerate(rollout.targets):
        state = rollout.states.get(vin, "waiting")
        v = by_vin.get(vin)
        if v is None:
            continue  # new targets are inserted by the caller, with their software
        if (v.state, v.wave) != (state, wave_of.get(vin, 0)):
            v.state, v.wave, v.updated_at = state, wave_of.get(vin, 0), now
            if state == "pending":
                v.started_at = now
        v.position = position
    session.flush()


def view(session: Session, row: RolloutRow) -> RolloutView:
    vehicles = _vehicle_rows(session, row.rollout_id)
    return RolloutView(
        row.rollout_id, row.tenant_id, row.name, row.ecu, tuple(json.loads(row.images)),
        row.version, row.rxswin, row.query, _policy(row), _windows(row), row.optional,
        cast(RolloutStatus, row.status), row.wave, row.reason, json.loads(row.evidence),
        _core(row, vehicles).counts(), row.job_id, row.created_by, row.approved_by,
        row.created_at, row.updated_at)


def create_rollout(session: Session, layout: OtaLayout, spec: RolloutSpec, *, tenant: str,
                   actor: str, now: datetime | None = None,
                   request_id: str | None = None) -> RolloutView:
    """Store a draft rollout; its targets are the vehicles the query selects now that have the
    ECU with hardware one of the images fits (more join at each wave).

    Raises:
        BadInputError: a bad spec, a delta named, two images for one hardware id, images of
            different versions, or no vehicle to target.
        NotFoundError: the OTA repositories or an image do not exist.
        QuerySyntaxError: the query does not parse.
    """
    now = _now(now)
    hardware = _images_by_hardware(layout, spec.images)
    targets = _eligible(session, tenant, spec.query, spec.ecu, hardware)
    if not targets:
        raise BadInputError(f"query {spec.query!r} selects no vehicle whose twin lists ECU "
                            f"{spec.ecu!r} with hardware {sorted(hardware)}")
    version = next(iter(hardware.values())).version
    row = RolloutRow(
        rollout_id=f"ota-{uuid.uuid4().hex[:20]}", tenant_id=tenant, name=spec.name,
        ecu=spec.ecu, images=json.dumps(list(spec.images)), version=version,
        rxswin=spec.rxswin or f"RXSWIN-{spec.ecu}-{version}", query=spec.query,
        waves=json.dumps(list(spec.policy.waves)),
        success_threshold=spec.policy.success_threshold,
        error_threshold=spec.policy.error_threshold, health_margin=spec.policy.health_margin,
        min_control=spec.policy.min_control, observe_s=spec.policy.observe_s,
        maintenance_windows=json.dumps([w.to_dict() for w in spec.maintenance_windows]),
        optional=spec.optional, status="draft", wave=0, wave_ends="[]", reason="",
        evidence="{}", job_id=None, manifest_cursor=0, created_by=actor, approved_by=None, created_at=now,
        updated_at=now)
    session.add(row)
    session.flush()
    session.add_all(RolloutVehicleRow(
        rollout_id=row.rollout_id, vin=vin, position=n, wave=0, state="waiting", detail="",
        software_before=before, started_at=None, updated_at=now)
        for n, (vin, before) in enumerate(targets.items()))
    record_audit(session, tenant=tenant, actor=actor, action="ota.rollout.create",
                 target=f"rollout:{row.rollout_id}",
                 details={"name": spec.name, "ecu": spec.ecu, "images": list(spec.images),
                          "query": spec.query, "targets": len(targets),
                          "optional": spec.optional},
                 request_id=request_id, now=now)
    session.flush()
    return view(session, row)


def get_rollout(session: Session, rollout_id: str, *, tenant: str) -> RolloutView:
    """One rollout of ``tenant`` with its live counts.

    Raises:
        NotFoundError: no such rollout of ``tenant``.
    """
    return view(session, _row(session, rollout_id, tenant))


def list_rollouts(session: Session, *, tenant: str, limit: int = 100) -> list[RolloutView]:
    """``tenant``'s rollouts, newest first."""
    rows = session.scalars(select(RolloutRow).where(RolloutRow.tenant_id == tenant)
                           .order_by(RolloutRow.created_at.desc(), RolloutRow.rollout_id)
                           .limit(min(limit, MAX_PAGE)))
    return [view(session, r) for r in rows]


def list_vehicles(session: Session, rollout_id: str, *, tenant: str,
                  state: str | None = None, after: int = -1,
                  limit: int = 100) -> list[RolloutVehicle]:
    """Each targeted vehicle in target order (position > ``after``), optionally of one state.

    Raises:
        NotFoundError: no such rollout of ``tenant``.
    """
    _row(session, rollout_id, tenant)
    query = (select(RolloutVehicleRow).where(RolloutVehicleRow.rollout_id == rollout_id,
                                             RolloutVehicleRow.position > after)
             .order_by(RolloutVehicleRow.position).limit(min(limit, MAX_PAGE)))
    if state is not None:
        query = query.where(RolloutVehicleRow.state == state)
    return [RolloutVehicle(v.vin, v.position, v.wave, v.state, v.detail, v.software_before,
                           v.updated_at) for v in session.scalars(query)]


def _start_wave(session: Session, layout: OtaLayout, row: RolloutRow, rollout: Rollout,
                vehicles: list[RolloutVehicleRow], now: datetime) -> None:
    """Pick up vehicles that joined the query, start the next wave, sign and notify it."""
    hardware = _images_by_hardware(layout, json.loads(row.images))
    joined = _eligible(session, row.tenant_id, row.query, row.ecu, hardware)
    known = {v.vin for v in vehicles}
    new = [vin for vin in joined if vin not in known]
    if new:
        rollout.add_targets(new)
        for vin in new:
            v = RolloutVehicleRow(rollout_id=row.rollout_id, vin=vin,
                                  position=rollout.targets.index(vin), wave=0,
                                  state="waiting", detail="", software_before=joined[vin],
                                  started_at=None, updated_at=now)
            session.add(v)
            vehicles.append(v)
    wave = rollout.start_next_wave()
    assert row.job_id is not None
    flows.dispatch_wave(session, tenant=row.tenant_id, job_id=row.job_id,
                        director=layout.director(), images=layout.images(), ecu=row.ecu,
                        images_by_hardware={hw: i.name for hw, i in hardware.items()},
                        vins=wave, wave=rollout.wave, now=now)


def approve_rollout(session: Session, layout: OtaLayout, rollout_id: str, *, tenant: str,
                    actor: str, now: datetime | None = None,
                    request_id: str | None = None) -> RolloutView:
    """Approve a draft (someone other than its creator): open its dispatcher job and start
    the first wave.

    Raises:
        NotFoundError: no such rollout of ``tenant``.
        StateTransitionError: not a draft, or approved by its creator.
    """
    now = _now(now)
    row = _row(session, rollout_id, tenant, lock=True)
    vehicles = _vehicle_rows(session, rollout_id)
    rollout = _core(row, vehicles)
    rollout.approve(actor)
    # A deferred update (not parked, low charge, awaiting consent) is answered "rejected":
    # the dispatcher sends the notice again, up to its retry limit.
    policy = RolloutPolicy(maintenance_windows=_windows(row), timeout_s=None,
                           max_retries=MAX_RETRIES, retry_delay_s=DEFERRED_RETRY_S)
    row.job_id = flows.open_rollout_job(
        session, tenant=tenant, actor=actor, campaign=row.name, image=row.version,
        rollout_id=rollout_id, optional=row.optional, policy=policy, now=now)
    _start_wave(session, layout, row, rollout, vehicles, now)
    _store(session, row, rollout, vehicles, now)
    record_audit(session, tenant=tenant, actor=actor, action="ota.rollout.approve",
                 target=f"rollout:{rollout_id}", details={"job_id": row.job_id},
                 request_id=request_id, now=now)
    return view(session, row)


def _close(session: Session, row: RolloutRow, actor: str, now: datetime) -> None:
    if row.job_id is None:
        return
    status: dict[str, JobStatus] = {"completed": "finished", "stopped": "aborted",
                                    "cancelled": "cancelled"}
    flows.close_rollout_job(session, tenant=row.tenant_id, actor=actor, job_id=row.job_id,
                            reason=f"rollout {row.status}: {row.reason}",
                            status=status[row.status], now=now)


def change_rollout(session: Session, rollout_id: str, action: str, *, tenant: str,
                   actor: str, reason: str = "", now: datetime | None = None,
                   request_id: str | None = None) -> RolloutView:
    """``pause`` (a running rollout), ``resume`` (a paused one) or ``cancel`` (one not yet
    ended: its job is closed, notices not yet delivered are withdrawn).

    Raises:
        NotFoundError: no such rollout of ``tenant``.
        StateTransitionError: the action does not apply to the rollout's status.
        ValueError: an unknown action.
    """
    now = _now(now)
    row = _row(session, rollout_id, tenant, lock=True)
    vehicles = _vehicle_rows(session, rollout_id)
    rollout = _core(row, vehicles)
    said = reason or f"{action} by {actor}"
    if action == "pause":
        rollout.pause(said)
    elif action == "resume":
        rollout.resume()
        rollout.reason = said
    elif action == "cancel":
        rollout.cancel(said)
    else:
        raise ValueError(f"unknown rollout action {action!r}")
    _store(session, row, rollout, vehicles, now)
    if rollout.status == "cancelled":
        _close(session, row, actor, now)
    record_audit(session, tenant=tenant, actor=actor, action=f"ota.rollout.{action}",
                 target=f"rollout:{rollout_id}", details={"reason": said},
                 request_id=request_id, now=now)
    return view(session, row)


def report_vehicle(session: Session, rollout_id: str, vin: str, state: VehicleState, *,
                   tenant: str, detail: str = "", software_after: str = "",
                   preconditions: str = "", now: datetime | None = None,
                   ended_at: datetime | None = None) -> RolloutVehicle:
    """A vehicle's progress: move it to ``state`` (through the states between). A final
    state writes its UN R156 update record (ended ``ended_at``, the vehicle's own time of the
    outcome when it said one, else ``now``); ``installed`` also writes the rollout's version
    into the twin's ECU inventory.

    Raises:
        NotFoundError: no such rollout of ``tenant``, or the vehicle is not one of its targets.
        StateTransitionError: the vehicle is not in a started wave, or the move goes back.
    """
    now = _now(now)
    row = _row(session, rollout_id, tenant, lock=True)
    vehicles = _vehicle_rows(session, rollout_id)
    target = next((v for v in vehicles if v.vin == vin), None)
    if target is None:
        raise NotFoundError(f"vehicle {vin!r} is not a target of rollout {rollout_id!r}")
    rollout = _core(row, vehicles)
    if not rollout.advance_to(vin, state):
        return _vehicle(target)
    target.detail = detail[:2000]
    _store(session, row, rollout, vehicles, now)
    if state in FINAL:
        after = (software_after or row.version) if state == "installed" else \
            target.software_before
        ended = ended_at or now
        session.add(UpdateRecordRow(
            tenant_id=tenant, rollout_id=rollout_id, vin=vin, campaign=row.name,
            software_before=target.software_before, software_after=after[:64],
            rxswin=row.rxswin, preconditions=preconditions[:2000], result=state,
            detail=detail[:2000], started_at=min(target.started_at or now, ended),
            ended_at=ended))
        if state == "installed":
            flows.record_installed(session, vin, row.ecu, row.version, now=now)
        session.flush()
    return _vehicle(target)


def sync_rollout(session: Session, rollout_id: str, *, tenant: str,
                 now: datetime | None = None) -> int:
    """Take in what the vehicles answered to the rollout's notices: each signed
    acknowledgement the dispatcher recorded carries an :class:`OtaReport`. ``installed``,
    ``rolled_back`` and ``failed`` are final (retries of the notice are withdrawn);
    ``deferred`` keeps the vehicle pending with the reason (the dispatcher sends the notice
    again); a notice handed to the vehicle and not yet answered means its update cycle runs
    (``downloading``); one that timed out with no answer is ``failed``. Returns how many
    vehicles changed.

    Raises:
        NotFoundError: no such rollout of ``tenant``.
    """
    now = _now(now)
    row = _row(session, rollout_id, tenant, lock=True)
    if row.job_id is None:
        return 0
    vehicles = {v.vin: v for v in _vehicle_rows(session, rollout_id)}
    changed = 0
    for vin, delivery in latest_deliveries(session, row.job_id, tenant=tenant).items():
        vehicle = vehicles.get(vin)
        if vehicle is None or vehicle.state in FINAL or vehicle.state == "waiting":
            continue
        report: OtaReport | None = None
        if delivery.detail:
            try:
                report = OtaReport.from_detail(delivery.detail)
            except OtaReportError:
                report = None
        if report is not None and report.state != "deferred":
            report_vehicle(session, rollout_id, vin, report.state, tenant=tenant,
                           detail=report.detail, software_after=report.after,
                           preconditions=report.preconditions, now=now,
                           ended_at=_vehicle_time(report.at_ns, now))
            if report.state != "installed":
                cancel_deliveries(session, row.job_id, [vin], tenant=tenant,
                                  reason=f"update {report.state}", now=now)
            changed += 1
        elif report is not None:  # deferred: still pending, saying why
            if vehicle.detail != report.detail:
                vehicle.detail, vehicle.updated_at = report.detail, now
                changed += 1
        elif delivery.state in ("failed", "timed_out"):
            report_vehicle(session, rollout_id, vin, "failed", tenant=tenant,
                           detail=delivery.reason or delivery.state, now=now)
            changed += 1
        elif delivery.state == "delivered" and vehicle.state == "pending":
            report_vehicle(session, rollout_id, vin, "downloading", tenant=tenant,
                           detail="notice delivered: the update cycle runs", now=now)
            changed += 1
    changed += _take_manifests(session, row, vehicles, now)
    session.flush()
    return changed


def _vehicle_time(at_ns: int, now: datetime) -> datetime | None:
    """The vehicle's time of an outcome, when it said one that is plausible (not ahead of the
    platform's clock by more than ``MAX_CLOCK_AHEAD``, not older than ``MAX_CLOCK_BEHIND``):
    the health gate's window starts there, on the clock its telemetry is stamped with."""
    if not at_ns:
        return None
    at = datetime.fromtimestamp(at_ns / 1e9, UTC)
    return at if now - MAX_CLOCK_BEHIND <= at <= now + MAX_CLOCK_AHEAD else None


def _take_manifests(session: Session, row: RolloutRow, vehicles: Mapping[str, RolloutVehicleRow],
                    now: datetime) -> int:
    """Verify the version manifests the rollout's vehicles sent since the last call; a
    verified one showing the ECU running the rollout's image confirms the install (and the
    twin's version), a refused one (forged, replayed, malformed, unregistered) changes
    nothing but the vehicle's detail."""
    images = set(json.loads(row.images))
    changed = 0
    while True:
        events = list_vehicle_events(session, tenant=row.tenant_id, types=[MANIFEST_EVENT],
                                     after_id=row.manifest_cursor, limit=MAX_PAGE)
        for event in events:
            row.manifest_cursor = event.event_id
            vehicle = vehicles.get(event.vin)
            if vehicle is None:
                continue
            raw = json.dumps(event.data.get("manifest")).encode()
            try:
                reports = accept_manifest(session, tenant=row.tenant_id, vin=event.vin, raw=raw,
                                          now=now)
            except (VerificationError, BadInputError, NotFoundError) as e:
                said = f"version manifest refused: {e}"
                vehicle.detail = (f"{vehicle.detail}; {said}" if vehicle.detail else said)[:2000]
                vehicle.updated_at = now
                changed += 1
                continue
            running = next((r.image for r in reports if r.ecu_serial == row.ecu), "")
            if running not in images:
                continue
            flows.record_installed(session, event.vin, row.ecu, row.version, now=now)
            if vehicle.state not in FINAL and vehicle.state != "waiting":
                report_vehicle(session, row.rollout_id, event.vin, "installed",
                               tenant=row.tenant_id, software_after=row.version,
                               detail=f"confirmed by the signed version manifest: {running}",
                               now=now, ended_at=_vehicle_time(event.ts_ns, now))
                changed += 1
        if len(events) < MAX_PAGE:
            return changed


def _vehicle(v: RolloutVehicleRow) -> RolloutVehicle:
    return RolloutVehicle(v.vin, v.position, v.wave, v.state, v.detail, v.software_before,
                          v.updated_at)


def _window_start(session: Session, row: RolloutRow, rollout: Rollout) -> datetime:
    """When the current wave's last vehicle installed (every updated car has run the build
    since); the rollout's last change when none of the wave installed."""
    wave = rollout.current_wave()
    ends = [r.ended_at for r in session.scalars(
        select(UpdateRecordRow).where(UpdateRecordRow.rollout_id == row.rollout_id,
                                      UpdateRecordRow.result == "installed"))
        if r.vin in wave]
    return max(ends) if ends else row.updated_at


def _judge(session: Session, layout: OtaLayout, lake: Lake, row: RolloutRow,
           rollout: Rollout, vehicles: list[RolloutVehicleRow], *, actor: str,
           now: datetime, request_id: str | None) -> None:
    """Measure both groups over the window since the wave's last install, judge the wave,
    start the next one while running, store; audit every change of course (a hold that
    says the same again is not re-audited)."""
    start = _window_start(session, row, rollout)
    installed = {v for v, s in rollout.states.items() if s == "installed"}
    health = measure_health(session, lake, tenant=row.tenant_id, vins=rollout.targets,
                            start=start, end=max(now, start))
    before = (rollout.status, rollout.reason)
    status = rollout.judge_wave([h for vin, h in health.items() if vin in installed],
                                [h for vin, h in health.items() if vin not in installed])
    if (rollout.status, rollout.reason) == before and rollout.holding:
        return  # still holding for the same reason
    if status == "running" and not rollout.holding:
        _start_wave(session, layout, row, rollout, vehicles, now)
    _store(session, row, rollout, vehicles, now)
    if rollout.status in _ENDED:
        _close(session, row, actor, now)
    record_audit(session, tenant=row.tenant_id, actor=actor, action="ota.rollout.advance",
                 target=f"rollout:{row.rollout_id}",
                 details={"status": rollout.status, "wave": rollout.wave,
                          "reason": rollout.reason, "holding": rollout.holding,
                          "window_start": start.isoformat()},
                 request_id=request_id, now=now)


def advance_rollout(session: Session, layout: OtaLayout, lake: Lake, rollout_id: str, *,
                    tenant: str, actor: str, now: datetime | None = None,
                    request_id: str | None = None) -> RolloutView:
    """Judge the finished wave now, without waiting out the observation time, and while the
    rollout runs start the next one. The health is measured by the platform
    (:func:`drivetrain.cloud.ota.health.measure_health`): the vehicles that installed this
    build are the updated group, the targets not updated the control group, over the window
    since the wave's last install. A stopped or completed rollout closes its job; a paused
    one keeps it open; with too little data the wave holds (the reason says why).

    Raises:
        NotFoundError: no such rollout of ``tenant``.
        StateTransitionError: not running, or the wave has vehicles without an outcome.
    """
    now = _now(now)
    sync_rollout(session, rollout_id, tenant=tenant, now=now)
    row = _row(session, rollout_id, tenant, lock=True)
    vehicles = _vehicle_rows(session, rollout_id)
    rollout = _core(row, vehicles)
    if rollout.status != "running":
        raise StateTransitionError(f"rollout {rollout_id} is {rollout.status}; only a running "
                                   "rollout's wave is judged (resume a paused one first)")
    if not rollout.wave_done():
        raise StateTransitionError(f"wave {rollout.wave} of {rollout_id} has vehicles "
                                   "without an outcome")
    _judge(session, layout, lake, row, rollout, vehicles, actor=actor, now=now,
           request_id=request_id)
    return view(session, row)


def step_rollout(session: Session, layout: OtaLayout, lake: Lake | None, rollout_id: str, *,
                 tenant: str, now: datetime | None = None) -> str:
    """One step of a stored rollout, as the dispatcher's round runs it: take in the
    vehicles' answers (:func:`sync_rollout`); then, when ``lake`` is given, the rollout runs
    and its wave has every outcome, observe the updated cars: once some updated car's
    telemetry covers ``observe_s`` since the wave's last install (the vehicles' own clock),
    judge the wave as :func:`advance_rollout` does. Returns the rollout's status after.

    Raises:
        NotFoundError: no such rollout of ``tenant``.
        StorageError: the lake cannot be read.
    """
    now = _now(now)
    sync_rollout(session, rollout_id, tenant=tenant, now=now)
    row = _row(session, rollout_id, tenant, lock=True)
    vehicles = _vehicle_rows(session, rollout_id)
    rollout = _core(row, vehicles)
    if lake is None or rollout.status != "running" or not rollout.wave or \
            not rollout.wave_done():
        return rollout.status
    if rollout.thresholds_decide():  # failures stop or pause it at once
        _judge(session, layout, lake, row, rollout, vehicles, actor="ota-gate", now=now,
               request_id=None)
        return row.status
    start = _window_start(session, row, rollout)
    installed = [v for v, s in rollout.states.items() if s == "installed"]
    seen = measure_health(session, lake, tenant=row.tenant_id, vins=installed, start=start,
                          end=max(now, start))
    observed_s = max((h.hours * 3600.0 for h in seen.values()), default=0.0)
    if observed_s < row.observe_s:
        said = f"wave {rollout.wave}: observing the updated vehicles"
        if not row.reason.startswith(said):
            row.reason = (f"{said} for {row.observe_s:.0f} s of telemetry since "
                          f"{start.isoformat()} before the health gate")
            row.updated_at = now
        return rollout.status
    _judge(session, layout, lake, row, rollout, vehicles, actor="ota-gate", now=now,
           request_id=None)
    return row.status


def rollouts_in_progress(session: Session) -> list[tuple[str, str]]:
    """(rollout id, tenant) of every rollout, of any tenant, that a dispatcher round steps:
    running or paused (a paused one's wave still finishes) with its job open."""
    rows = session.execute(select(RolloutRow.rollout_id, RolloutRow.tenant_id)
                           .where(RolloutRow.status.in_(("running", "paused")),
                                  RolloutRow.job_id.is_not(None))
                           .order_by(RolloutRow.created_at))
    return [(r, t) for r, t in rows]


def update_records(session: Session, *, tenant: str, rollout_id: str | None = None,
                   vin: str | None = None, after: int = 0,
                   limit: int = MAX_PAGE) -> list[tuple[int, UpdateRecord]]:
    """``tenant``'s UN R156 update records (of one rollout or vehicle), oldest first, with
    their ids (page with ``after``).

    Raises:
        NotFoundError: ``rollout_id`` is not a rollout of ``tenant``.
    """
    if rollout_id is not None:
        _row(session, rollout_id, tenant)
    query = (select(UpdateRecordRow).where(UpdateRecordRow.tenant_id == tenant,
                                           UpdateRecordRow.record_id > after)
             .order_by(UpdateRecordRow.record_id).limit(min(limit, MAX_PAGE)))
    if rollout_id is not None:
        query = query.where(UpdateRecordRow.rollout_id == rollout_id)
    if vin is not None:
        query = query.where(UpdateRecordRow.vin == vin)
    return [(r.record_id, UpdateRecord(r.vin, r.campaign, r.software_before, r.software_after,
                                       r.rxswin, r.preconditions, r.result, r.detail,
                                       r.started_at, r.ended_at))
            for r in session.scalars(query)]
