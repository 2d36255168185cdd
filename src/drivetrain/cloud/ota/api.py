"""``/v1/ota``: what the Uptane repositories sign, and rollouts with their update records.

Reads: the images the Image repository signs and what the Director currently tells one of the
caller's vehicles to install (``fleet:read``; another tenant's vehicle answers 404).

Writes (``ota:write``): publish an image (the bytes as the body, its attributes as query
parameters; names under the caller's tenant, ``<tenant>/...``) through the same function as
``drivetrain ota image add``; register the public keys that sign one of the caller's
vehicles' version reports. Both are audited.

Rollouts (``ota:read`` to read, ``ota:write`` to change): create a draft, approve it (another
client than its creator), pause, resume, cancel, advance (judge the finished wave now on the
health the platform measures, and start the next), record a vehicle's progress, and export the
UN R156 update records. Reads change nothing: the vehicles' answers are taken in by the
dispatcher's round (:class:`drivetrain.cloud.ota.RolloutDriver`). Every rollout belongs to the caller's tenant (another tenant's answers 404).
The router is mounted by ``drivetrain.api.routers``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request, status
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from drivetrain.cloud.commands import MaintenanceWindow
from drivetrain.cloud.infra import Principal, Scope, record_audit
from drivetrain.cloud.infra.http import MAX_STORED_INT, Context, request_id_of, require_scopes
from drivetrain.cloud.lake.api import lake_of
from drivetrain.cloud.ota import service
from drivetrain.cloud.ota.api_schemas import (
    CreateRollout,
    ImageOut,
    PublishedOut,
    RolloutAction,
    RolloutOut,
    RolloutVehicleOut,
    UpdateRecordOut,
    VehicleKeysIn,
    VehicleKeysOut,
    VehicleReport,
    VehicleStateOrWaiting,
)
from drivetrain.cloud.ota.images import MAX_RELEASE_COUNTER
from drivetrain.cloud.ota.layout import OtaLayout
from drivetrain.cloud.ota.manifests import parse_public_key, register_vehicle_keys
from drivetrain.cloud.ota.publishing import (
    MAX_DELTA_SOURCES,
    ImageTooLargeError,
    ImageUpload,
    publish_image,
)
from drivetrain.cloud.ota.rollout import WavePolicy
from drivetrain.cloud.twins import get_twin
from drivetrain.core.errors import PermissionDeniedError

router = APIRouter(tags=["ota"])
Reader = Annotated[Principal, require_scopes(Scope.FLEET_READ)]
OtaReader = Annotated[Principal, require_scopes(Scope.OTA_READ)]
OtaWriter = Annotated[Principal, require_scopes(Scope.OTA_WRITE)]
Limit = Annotated[int, Query(ge=1, le=service.MAX_PAGE)]
Vin = Annotated[str, Path(min_length=17, max_length=17)]
#: What a publisher may upload (deltas are made by the repository)
ImageKind = Literal["firmware", "app", "decoder_manifest", "model"]
RolloutId = Annotated[str, Path(max_length=40)]


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


async def _read_capped(request: Request, cap: int, name: str) -> bytes:
    """The request body, refused as soon as it is known to exceed ``cap`` bytes (the declared
    length first, then while it streams), so an oversized upload is never held whole."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > cap:
        raise ImageTooLargeError(f"image {name} is {int(declared):,} bytes; at most {cap:,} "
                                 "over HTTP")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > cap:
            raise ImageTooLargeError(f"image {name} is over {cap:,} bytes, the most accepted "
                                     "over HTTP")
        chunks.append(chunk)
    return b"".join(chunks)


@router.post(
    "/images", response_model=PublishedOut, status_code=status.HTTP_201_CREATED,
    summary="Publish an image: sign it into the Image repository (and its deltas)",
    openapi_extra={"requestBody": {"required": True, "content": {"application/octet-stream": {
        "schema": {"type": "string", "format": "binary"}}}}},
    responses={413: {"description": "The image is larger than ota_max_upload_bytes."}},
)
async def post_image(
    request: Request, principal: OtaWriter, context: Context,
    name: Annotated[str, Query(min_length=3, max_length=1024,
                               description="Target name under the caller's tenant: "
                               "<tenant>/... (e.g. acme/bms/bms-2.6.1.bin).")],
    hardware_id: Annotated[str, Query(min_length=1, max_length=64,
                                      examples=["BMS-CH50-HW3"])],
    release_counter: Annotated[int, Query(ge=0, le=MAX_RELEASE_COUNTER, description=(
        "Anti-rollback counter: not below one already published for this hardware id and "
        "kind under the tenant."))],
    version: Annotated[str, Query(min_length=1, max_length=64, examples=["2.6.1"])],
    kind: ImageKind = "firmware",
    supplier: Annotated[str | None, Query(min_length=1, max_length=32, description=(
        "Sign it into this supplier's delegated role (its paths must cover the name)."
    ))] = None,
    delta_from: Annotated[list[str] | None, Query(max_length=MAX_DELTA_SOURCES, description=(
        "Published images vehicles run now: a bsdiff4 delta is published from each."))] = None,
    common_sources: Annotated[int | None, Query(ge=0, le=MAX_DELTA_SOURCES, description=(
        "With no delta_from: publish deltas from this many of the versions most installed on "
        "the hardware id across the tenant's twins (default ota_delta_common_sources)."))
    ] = None,
) -> PublishedOut:
    """The body is the image's bytes (at most ``ota_max_upload_bytes``). Checked before
    anything is signed: the fields, the tenant's namespace, the supplier's delegation, the
    release counter (no rollback), the delta sources. Then the same function as ``drivetrain
    ota image add`` signs it (into the supplier's role when one is named) and its deltas."""
    if not name.startswith(f"{principal.tenant}/"):
        raise PermissionDeniedError(f"name {name!r}: tenant {principal.tenant} publishes "
                                    f"under '{principal.tenant}/' only")
    data = await _read_capped(request, context.settings.ota_max_upload_bytes, name)
    upload = ImageUpload(name, data, hardware_id, release_counter, version, kind, supplier,
                         tuple(delta_from or ()))

    common = (context.settings.ota_delta_common_sources if common_sources is None
              else common_sources)

    def publish() -> PublishedOut:
        with context.database.session() as session:
            done = publish_image(_layout(context).images(), upload,
                                 namespace=f"{principal.tenant}/", session=session,
                                 tenant=principal.tenant, common=common)
            record_audit(session, tenant=principal.tenant, actor=principal.client_id,
                         action="ota.image.publish", target=f"image:{name}",
                         details={"sha256": done.image.sha256, "length": done.image.length,
                                  "hardware_id": hardware_id,
                                  "release_counter": release_counter, "version": version,
                                  "kind": kind, "supplier": supplier or "",
                                  "deltas": [d.name for d in done.deltas],
                                  "bytes_saved": done.bytes_saved},
                         request_id=request_id_of(request))
            return PublishedOut.of(done)

    return await run_in_threadpool(publish)


@router.put("/vehicles/{vin}/keys", response_model=VehicleKeysOut,
            summary="Register the public keys that sign a vehicle's version reports")
def put_vehicle_keys(vin: Vin, body: VehicleKeysIn, principal: OtaWriter, context: Context,
                     request: Request) -> VehicleKeysOut:
    """Replace the vehicle's registered keys: the primary's (it signs the vehicle version
    manifest) and each ECU's (its ECU version report); counters start afresh. Manifests
    signed by other keys are refused from then on. Another tenant's vehicle answers 404."""
    primary = parse_public_key(body.primary_key.model_dump(), "primary_key")
    ecus = {serial: parse_public_key(k.model_dump(), f"ecu_keys[{serial}]")
            for serial, k in body.ecu_keys.items()}
    with context.database.session() as session:
        register_vehicle_keys(session, tenant=principal.tenant, vin=vin,
                              primary_serial=body.primary_serial, primary_key=primary,
                              ecu_keys=ecus)
        record_audit(session, tenant=principal.tenant, actor=principal.client_id,
                     action="ota.vehicle_keys.register", target=f"vehicle:{vin}",
                     details={"primary_serial": body.primary_serial,
                              "primary_keyid": primary.keyid,
                              "ecu_keyids": {s: k.keyid for s, k in sorted(ecus.items())}},
                     request_id=request_id_of(request))
    return VehicleKeysOut(vin=vin, primary_serial=body.primary_serial,
                          primary_keyid=primary.keyid,
                          ecu_keyids={s: k.keyid for s, k in sorted(ecus.items())})


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
