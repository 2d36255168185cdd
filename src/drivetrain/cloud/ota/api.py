"""``/v1/ota``: what the Uptane repositories sign, and rollouts with their update records.

Reads: the images the Image repository signs and what the Director currently tells one of the
caller's vehicles to install (``fleet:read``; another tenant's vehicle answers 404).
Publishing images stays with the operator's ``drivetrain ota`` commands, which hold the
offline keys.

Rollouts (``ota:read`` to read, ``ota:write`` to change): create a draft, approve it (another
client than its creator), pause, resume, cancel, advance (judge the finished wave now on the
health the platform measures, and start the next), record a vehicle's progress, and export the
UN R156 update records. Reads change nothing: the vehicles' answers are taken in by the
dispatcher's round (:class:`drivetrain.cloud.ota.RolloutDriver`). Every rollout belongs to the caller's tenant (another tenant's answers 404).
The router is mounted by ``drivetrain.api.routers``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, status
from pydantic import BaseModel, Field

from drivetrain.cloud.commands import MaintenanceWindow
from drivetrain.cloud.infra import Principal, Scope
from drivetrain.cloud.infra.http import MAX_STORED_INT, Context, request_id_of, require_scopes
from drivetrain.cloud.lake.api import lake_of
from drivetrain.cloud.ota import service
from drivetrain.cloud.ota.api_schemas import (
    CreateRollout,
    RolloutAction,
    RolloutOut,
    RolloutVehicleOut,
    UpdateRecordOut,
    VehicleReport,
    VehicleStateOrWaiting,
)
from drivetrain.cloud.ota.images import ImageInfo
from drivetrain.cloud.ota.layout import OtaLayout
from drivetrain.cloud.ota.rollout import WavePolicy
from drivetrain.cloud.twins import get_twin

router = APIRouter(tags=["ota"])
Reader = Annotated[Principal, require_scopes(Scope.FLEET_READ)]
OtaReader = Annotated[Principal, require_scopes(Scope.OTA_READ)]
OtaWriter = Annotated[Principal, require_scopes(Scope.OTA_WRITE)]
Limit = Annotated[int, Query(ge=1, le=service.MAX_PAGE)]
RolloutId = Annotated[str, Path(max_length=40)]


class ImageOut(BaseModel):
    name: str = Field(examples=["bms/BMS-CH50-HW3/bms-2.6.1.bin"])
    length: int = Field(ge=0, le=2**40, description="Bytes.")
    sha256: str
    hardware_id: str = Field(examples=["BMS-CH50-HW3"])
    release_counter: int = Field(ge=0, le=2**31 - 1)
    version: str = Field(examples=["2.6.1"])
    kind: str = Field(examples=["firmware"])

    @classmethod
    def of(cls, info: ImageInfo) -> ImageOut:
        return cls(**info.to_dict())


class AssignmentOut(BaseModel):
    ecu_serial: str = Field(examples=["BMS"])
    hardware_id: str = Field(examples=["BMS-CH50-HW3"])
    image: str = Field(examples=["bms/BMS-CH50-HW3/bms-2.6.1.bin"])


@router.get("/images", response_model=list[ImageOut], summary="Images the Image repository signs")
def list_images(principal: Reader, context: Context) -> list[ImageOut]:
    """Every image the Image repository signs, by name; empty before ``drivetrain ota init``."""
    layout = OtaLayout.under(context.settings.data_dir)
    if not layout.initialised:
        return []
    return [ImageOut.of(i) for i in layout.images().images()]


@router.get("/vehicles/{vin}/assignments", response_model=list[AssignmentOut],
            summary="What the Director tells a vehicle to install")
def vehicle_assignments(vin: str, principal: Reader, context: Context) -> list[AssignmentOut]:
    """Each ECU of the vehicle and the image the Director's signed metadata names for it;
    empty when the Director has signed nothing for it yet."""
    with context.database.session() as session:
        get_twin(session, vin, tenant=principal.tenant)  # 404 for another tenant's vehicle
    layout = OtaLayout.under(context.settings.data_dir)
    if not layout.initialised or not (
            layout.director().vehicle(vin).metadata_dir / "timestamp.json").is_file():
        return []
    return [AssignmentOut(ecu_serial=a.ecu_serial, hardware_id=a.hardware_id, image=a.image)
            for a in layout.director().assignments(vin)]


# --- rollouts --------------------------------------------------------------------------------
def _layout(context: Context) -> OtaLayout:
    return OtaLayout.under(context.settings.data_dir)


@router.post("/rollouts", response_model=RolloutOut, status_code=status.HTTP_201_CREATED,
             summary="Create a draft rollout of one ECU build to a twin query's vehicles")
def post_rollout(body: CreateRollout, principal: OtaWriter, context: Context,
                 request: Request) -> RolloutOut:
    """A draft: targets are the vehicles the query selects whose twin lists the ECU with a
    hardware id one of the images is built for. Another client approves it."""
    spec = service.RolloutSpec(
        name=body.name, ecu=body.ecu, images=tuple(body.images), query=body.query,
        policy=WavePolicy(tuple(body.waves), body.success_threshold, body.error_threshold,
                          body.health_margin, body.min_control, body.observe_s),
        maintenance_windows=tuple(MaintenanceWindow.from_dict(w, "maintenance_windows")
                                  for w in body.maintenance_windows),
        optional=body.optional, rxswin=body.rxswin)
    with context.database.session() as session:
        made = service.create_rollout(session, _layout(context), spec,
                                      tenant=principal.tenant, actor=principal.client_id,
                                      request_id=request_id_of(request))
    return RolloutOut.of(made)


@router.get("/rollouts", response_model=list[RolloutOut],
            summary="The caller's rollouts, newest first, with counts")
def get_rollouts(principal: OtaReader, context: Context, limit: Limit = 100) -> list[RolloutOut]:
    """The caller's rollouts, newest first, with the vehicles per state."""
    with context.database.session() as session:
        return [RolloutOut.of(r) for r in service.list_rollouts(
            session, tenant=principal.tenant, limit=limit)]


@router.get("/rollouts/{rollout_id}", response_model=RolloutOut,
            summary="A rollout: status, wave, reason, gate evidence, counts")
def get_rollout(rollout_id: RolloutId, principal: OtaReader, context: Context) -> RolloutOut:
    """A rollout with its per-state counts, reason and the gate's evidence, as the
    dispatcher's last round left them (reading changes nothing)."""
    with context.database.session() as session:
        return RolloutOut.of(service.get_rollout(session, rollout_id, tenant=principal.tenant))


@router.post("/rollouts/{rollout_id}/approve", response_model=RolloutOut,
             summary="Approve a draft rollout (another client than its creator)")
def post_approve(rollout_id: RolloutId, principal: OtaWriter, context: Context,
                 request: Request) -> RolloutOut:
    """Second-person approval: opens the dispatcher job and starts the first wave (Director
    metadata signed per vehicle, notices queued)."""
    with service.WRITING, context.database.session() as session:
        return RolloutOut.of(service.approve_rollout(
            session, _layout(context), rollout_id, tenant=principal.tenant,
            actor=principal.client_id, request_id=request_id_of(request)))


def _change(action: str, rollout_id: str, principal: Principal, context: Context,
            request: Request, body: RolloutAction | None) -> RolloutOut:
    with service.WRITING, context.database.session() as session:
        return RolloutOut.of(service.change_rollout(
            session, rollout_id, action, tenant=principal.tenant, actor=principal.client_id,
            reason=(body.reason or "") if body else "", request_id=request_id_of(request)))


@router.post("/rollouts/{rollout_id}/pause", response_model=RolloutOut,
             summary="Pause a running rollout (no further wave starts)")
def post_pause(rollout_id: RolloutId, principal: OtaWriter, context: Context,
               request: Request, body: RolloutAction | None = None) -> RolloutOut:
    """Pause: vehicles of the wave under way finish; no further wave starts."""
    return _change("pause", rollout_id, principal, context, request, body)


@router.post("/rollouts/{rollout_id}/resume", response_model=RolloutOut,
             summary="Resume a paused rollout")
def post_resume(rollout_id: RolloutId, principal: OtaWriter, context: Context,
                request: Request, body: RolloutAction | None = None) -> RolloutOut:
    """Resume a paused rollout (paused by an operator or by a gate)."""
    return _change("resume", rollout_id, principal, context, request, body)


@router.post("/rollouts/{rollout_id}/cancel", response_model=RolloutOut,
             summary="Cancel a rollout (notices not yet delivered are withdrawn)")
def post_cancel(rollout_id: RolloutId, principal: OtaWriter, context: Context,
                request: Request, body: RolloutAction | None = None) -> RolloutOut:
    """Cancel a rollout that has not ended; its dispatcher job is closed."""
    return _change("cancel", rollout_id, principal, context, request, body)


@router.post("/rollouts/{rollout_id}/advance", response_model=RolloutOut,
             summary="Judge the finished wave now (thresholds, measured health) and start the next")
def post_advance(rollout_id: RolloutId, principal: OtaWriter, context: Context,
                 request: Request) -> RolloutOut:
    """Judge the finished wave without waiting out its observation time: the health of the
    updated vehicles against the control group's, measured by the platform from the lake and
    the security events. The rollout stops, pauses with the evidence, holds (too little
    data), completes, or starts its next wave (picking up vehicles that joined)."""
    with service.WRITING, context.database.session() as session:
        return RolloutOut.of(service.advance_rollout(
            session, _layout(context), lake_of(request), rollout_id, tenant=principal.tenant,
            actor=principal.client_id, request_id=request_id_of(request)))


@router.get("/rollouts/{rollout_id}/vehicles", response_model=list[RolloutVehicleOut],
            summary="Each targeted vehicle's wave and update state")
def get_rollout_vehicles(
    rollout_id: RolloutId, principal: OtaReader, context: Context, limit: Limit = 100,
    after: Annotated[int, Query(ge=-1, le=MAX_STORED_INT,
                                description="Only positions after this one.")] = -1,
    state: VehicleStateOrWaiting | None = None,
) -> list[RolloutVehicleOut]:
    """Per vehicle in target order: wave, state (waiting → pending → downloading →
    installing → installed / failed / rolled_back), detail."""
    with context.database.session() as session:
        return [RolloutVehicleOut.of(v) for v in service.list_vehicles(
            session, rollout_id, tenant=principal.tenant, state=state, after=after,
            limit=limit)]


@router.post("/rollouts/{rollout_id}/vehicles/{vin}", response_model=RolloutVehicleOut,
             summary="Record a vehicle's progress in a rollout")
def post_vehicle_report(
    rollout_id: RolloutId, vin: Annotated[str, Path(min_length=17, max_length=17)],
    body: VehicleReport, principal: OtaWriter, context: Context,
) -> RolloutVehicleOut:
    """Move the vehicle forward (through the states between); a final state writes its
    UN R156 update record, ``installed`` also the twin's ECU version."""
    with service.WRITING, context.database.session() as session:
        return RolloutVehicleOut.of(service.report_vehicle(
            session, rollout_id, vin, body.state, tenant=principal.tenant,
            detail=body.detail, software_after=body.software_after,
            preconditions=body.preconditions))


@router.get("/records", response_model=list[UpdateRecordOut],
            summary="UN R156 update records, oldest first")
def get_records(
    principal: OtaReader, context: Context, limit: Limit = 100,
    rollout_id: Annotated[str | None, Query(max_length=40)] = None,
    vin: Annotated[str | None, Query(max_length=17)] = None,
    after: Annotated[int, Query(ge=0, le=MAX_STORED_INT,
                                description="Only records after this id.")] = 0,
) -> list[UpdateRecordOut]:
    """Per vehicle: software before and after, RXSWIN, campaign, preconditions checked,
    result and timestamps; page with ``after`` (the last record_id)."""
    with context.database.session() as session:
        return [UpdateRecordOut.of(i, r) for i, r in service.update_records(
            session, tenant=principal.tenant, rollout_id=rollout_id, vin=vin, after=after,
            limit=limit)]
