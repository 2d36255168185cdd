"""HTTP bodies of ``/v1/ota`` rollouts and update records (Pydantic v2, at the edge only)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from drivetrain.cloud.ota.images import DeltaInfo, ImageInfo
from drivetrain.cloud.ota.publishing import Published
from drivetrain.cloud.ota.rollout import RolloutStatus, UpdateRecord, VehicleState
from drivetrain.cloud.ota.service import MAX_IMAGES, RolloutVehicle, RolloutView

VehicleStateOrWaiting = Literal["waiting", "pending", "downloading", "installing", "installed",
                                "failed", "rolled_back"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CreateRollout(_Strict):
    """One ECU's build (an image per hardware id) to the vehicles a twin query selects."""

    name: str = Field(min_length=1, max_length=120, examples=["bms-2.6.1"])
    ecu: str = Field(min_length=1, max_length=64, examples=["BMS"])
    images: list[str] = Field(min_length=1, max_length=MAX_IMAGES,
                              examples=[["bms/BMS-CH50-HW3/bms-2.6.1.bin"]],
                              description="Image names, one per hardware id, one version.")
    query: str = Field("", max_length=4000, examples=['software."BMS" < "2.6.1"'],
                       description='Twin query selecting the targets ("": every vehicle).')
    waves: list[float] = Field([0.1, 0.3, 1.0], min_length=1, max_length=20,
                               description="Cumulative fractions of the targets, ending at 1.")
    success_threshold: float = Field(0.9, gt=0, le=1)
    error_threshold: float = Field(0.2, gt=0, le=1)
    health_margin: float = Field(0.05, ge=0, le=1, description="Relative margin the updated "
                                 "group's KPIs may exceed the control group's by.")
    min_control: int = Field(3, ge=1, le=1_000_000, description="Least control vehicles "
                             "with telemetry the gate needs (fewer: the wave holds).")
    observe_s: float = Field(3600.0, ge=0, le=30 * 86_400, description="Seconds the updated "
                             "cars are observed after a wave's last install before the gate.")
    maintenance_windows: list[dict[str, Any]] = Field(
        [], max_length=28,
        examples=[[{"days": ["sat", "sun"], "start": "01:00", "end": "05:00"}]],
        description="UTC weekly windows in which notices are handed out (none: any time).")
    optional: bool = Field(False, description="Optional update: the driver consents first.")
    rxswin: str = Field("", max_length=120, description="Default RXSWIN-<ECU>-<version>.")


class RolloutAction(_Strict):
    reason: str | None = Field(None, max_length=500)


class VehicleReport(_Strict):
    """A vehicle's progress in a rollout."""

    state: VehicleState
    detail: str = Field("", max_length=2000, examples=["installed in slot B"])
    software_after: str = Field("", max_length=64, examples=["2.6.1"])
    preconditions: str = Field("", max_length=2000, examples=["parked, charge 75 % >= 30 %"])


class RolloutOut(BaseModel):
    rollout_id: str
    name: str
    ecu: str
    images: list[str]
    version: str
    rxswin: str
    query: str
    waves: list[float]
    success_threshold: float
    error_threshold: float
    health_margin: float
    min_control: int
    observe_s: float
    maintenance_windows: list[dict[str, Any]]
    optional: bool
    status: RolloutStatus
    wave: int = Field(description="Waves started so far.")
    reason: str
    evidence: dict[str, dict[str, float]] = Field(
        description="The health gate's evidence per KPI: updated and control figures, the "
                    "limit, the margin, each group's vehicles with telemetry, failed (1/0).")
    counts: dict[str, int] = Field(description="Targets per state (waiting: no wave yet).")
    job_id: str | None = Field(description="The dispatcher job carrying the notices.")
    created_by: str
    approved_by: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, r: RolloutView) -> RolloutOut:
        return cls(
            rollout_id=r.rollout_id, name=r.name, ecu=r.ecu, images=list(r.images),
            version=r.version, rxswin=r.rxswin, query=r.query, waves=list(r.policy.waves),
            success_threshold=r.policy.success_threshold,
            error_threshold=r.policy.error_threshold, health_margin=r.policy.health_margin,
            min_control=r.policy.min_control, observe_s=r.policy.observe_s,
            maintenance_windows=[w.to_dict() for w in r.maintenance_windows],
            optional=r.optional, status=r.status, wave=r.wave, reason=r.reason,
            evidence={k: dict(v) for k, v in r.evidence.items()}, counts=dict(r.counts),
            job_id=r.job_id, created_by=r.created_by, approved_by=r.approved_by,
            created_at=r.created_at, updated_at=r.updated_at)


class RolloutVehicleOut(BaseModel):
    vin: str
    position: int
    wave: int = Field(description="The wave it is in (0: none yet).")
    state: VehicleStateOrWaiting
    detail: str
    software_before: str
    updated_at: datetime

    @classmethod
    def of(cls, v: RolloutVehicle) -> RolloutVehicleOut:
        return cls(vin=v.vin, position=v.position, wave=v.wave, state=v.state,  # type: ignore[arg-type]
                   detail=v.detail, software_before=v.software_before,
                   updated_at=v.updated_at)


class UpdateRecordOut(BaseModel):
    """One vehicle's update as UN R156 §7.2 asks it to be kept."""

    record_id: int
    vin: str
    campaign: str
    software_before: str
    software_after: str
    rxswin: str
    preconditions: str
    result: str
    detail: str
    started_at: datetime
    ended_at: datetime

    @classmethod
    def of(cls, record_id: int, r: UpdateRecord) -> UpdateRecordOut:
        return cls(record_id=record_id, **r.to_dict())


class ImageOut(BaseModel):
    name: str = Field(examples=["acme/BMS-CH50-HW3/bms-2.6.1.bin"])
    length: int = Field(ge=0, le=2**40, description="Bytes.")
    sha256: str
    hardware_id: str = Field(examples=["BMS-CH50-HW3"])
    release_counter: int = Field(ge=0, le=2**31 - 1)
    version: str = Field(examples=["2.6.1"])
    kind: str = Field(examples=["firmware"])
    supplier: str = Field("", description="The supplier whose delegated role signs it "
                          "(empty: the top-level targets role).")

    @classmethod
    def of(cls, info: ImageInfo) -> ImageOut:
        return cls(**info.to_dict())


class DeltaOut(BaseModel):
    name: str
    source: str = Field(description="The image the delta turns into this one.")
    delta_bytes: int = Field(ge=0, le=2**40)
    full_bytes: int = Field(ge=0, le=2**40)
    bytes_saved: int = Field(ge=-(2**40), le=2**40)

    @classmethod
    def of(cls, d: DeltaInfo) -> DeltaOut:
        return cls(name=d.name, source=d.source, delta_bytes=d.delta_bytes,
                   full_bytes=d.full_bytes, bytes_saved=d.bytes_saved)


class CommonSourceOut(BaseModel):
    version: str = Field(examples=["2.6.0"])
    ecus: int = Field(ge=0, le=2**40, description="ECUs of the hardware id running it.")
    image: str = Field(description="Its published image, the delta's source (only versions "
                                   "whose image is published are chosen).")


class PublishedOut(BaseModel):
    """The signed image, the deltas published to it, the sources whose delta was not
    smaller than the full image, and the bytes the deltas save."""

    image: ImageOut
    deltas: list[DeltaOut]
    skipped_delta_sources: list[str]
    common_sources: list[CommonSourceOut] = Field(description=(
        "With no delta_from: the versions most installed on the hardware id across the "
        "tenant's twins, from which the deltas were chosen."))
    bytes_saved: int = Field(ge=-(2**50), le=2**50, description=(
        "Bytes one download of each delta saves against the full image, summed."))
    fleet_bytes_saved: int = Field(ge=-(2**50), le=2**50, description=(
        "Bytes saved if every ECU counted on a chosen source downloads its delta."))

    @classmethod
    def of(cls, p: Published) -> PublishedOut:
        return cls(image=ImageOut.of(p.image), deltas=[DeltaOut.of(d) for d in p.deltas],
                   skipped_delta_sources=list(p.skipped),
                   common_sources=[CommonSourceOut(version=c.version, ecus=c.ecus,
                                                   image=c.image) for c in p.common],
                   bytes_saved=p.bytes_saved, fleet_bytes_saved=p.fleet_bytes_saved)


class KeyVal(_Strict):
    public: str = Field(min_length=1, max_length=1024,
                        description="Ed25519: 64 hex digits; ECDSA P-256: PEM.")


class PublicKeyIn(_Strict):
    """A public key in securesystemslib's form (its key id is computed by the platform)."""

    keytype: Literal["ed25519", "ecdsa"] = Field(examples=["ed25519"])
    scheme: Literal["ed25519", "ecdsa-sha2-nistp256"] = Field(examples=["ed25519"])
    keyval: KeyVal


class VehicleKeysIn(_Strict):
    """The keys that sign one vehicle's version reports: the primary's (the vehicle version
    manifest) and each ECU's (its ECU version report), by ECU serial."""

    primary_serial: str = Field(min_length=1, max_length=64, examples=["TCU"])
    primary_key: PublicKeyIn
    ecu_keys: dict[str, PublicKeyIn] = Field(min_length=1, max_length=64)


class VehicleKeysOut(BaseModel):
    vin: str
    primary_serial: str
    primary_keyid: str
    ecu_keyids: dict[str, str] = Field(description="Key id per ECU serial.")
