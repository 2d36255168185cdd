"""``/v1/ota``: what the Uptane repositories sign, read through the API.

Read-only: the images the Image repository signs, and what the Director currently tells one
of the caller's vehicles to install (another tenant's vehicle answers 404). Publishing images
and signing assignments stay with the operator's ``drivetrain ota`` commands, which hold the
signing keys. Reads need ``fleet:read``; the router is mounted by ``drivetrain.api.routers``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from pydantic import BaseModel, Field

from drivetrain.cloud.infra import Principal, Scope
from drivetrain.cloud.infra.http import Context, require_scopes
from drivetrain.cloud.ota.images import ImageInfo
from drivetrain.cloud.ota.layout import OtaLayout
from drivetrain.cloud.twins import get_twin

router = APIRouter(tags=["ota"])
Reader = Annotated[Principal, require_scopes(Scope.FLEET_READ)]


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
