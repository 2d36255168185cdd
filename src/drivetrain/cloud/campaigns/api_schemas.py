"""HTTP bodies of ``/v1/campaigns`` and ``/v1/catalogs`` (Pydantic v2, at the edge only).

A campaign definition travels as the JSON object ``definition.parse_spec`` reads (the vehicle
document under ``campaign``, plus targeting, times, dimensions, destinations), so the API and
the CLI's files have one shape (docs/campaigns.md).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from drivetrain.cloud.campaigns.catalogs import CatalogVersion
from drivetrain.cloud.campaigns.lifecycle import CampaignStatus, VehicleState
from drivetrain.cloud.campaigns.service import CampaignVehicle, CampaignVersion, CampaignView

DEFINITION_EXAMPLE: dict[str, Any] = {
    "campaign": {
        "id": "harsh-brake",
        "signals": ["Vehicle.Speed", "Vehicle.Acceleration.Longitudinal"],
        "period_ms": None,
        "triggers": [{"name": "harsh-brake",
                      "expression": "Vehicle.Acceleration.Longitudinal < -4",
                      "pre_s": 10, "post_s": 10}],
    },
    "targeting": {"query": 'software."BMS" < "2.4.0" and region == "EU"', "max_vehicles": 500},
    "end_at": "2030-01-01T00:00:00Z",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StatusChange(_Strict):
    reason: str | None = Field(None, max_length=500)


class Approve(_Strict):
    version: int | None = Field(None, ge=1, description="Default: the newest draft.")


class PolicyIn(_Strict):
    require_second_approver: bool = Field(
        description="A campaign version must be approved by someone other than its author."
    )


class PolicyOut(BaseModel):
    require_second_approver: bool


class VersionOut(BaseModel):
    version: int
    status: Literal["draft", "approved", "superseded"]
    definition: dict[str, Any]
    catalog_version: int | None = Field(description="The tenant catalog it was checked "
                                        "against (null: the standard VSS catalog).")
    author: str
    written_at: datetime
    approved_by: str | None
    approved_at: datetime | None

    @classmethod
    def of(cls, version: CampaignVersion) -> VersionOut:
        return cls(version=version.version, status=version.status,
                   definition=version.spec.to_dict(), catalog_version=version.catalog_version,
                   author=version.author, written_at=version.written_at,
                   approved_by=version.approved_by, approved_at=version.approved_at)


class CampaignOut(BaseModel):
    """A campaign: life cycle, the version in force (or the newest draft), vehicles by state."""

    campaign_id: str
    status: CampaignStatus
    version: int | None = Field(description="The approved version in force.")
    latest_version: int
    current: VersionOut
    job_id: str | None = Field(description="The dispatcher job delivering it (GET "
                               "/v1/jobs/{id}).")
    created_by: str
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    reason: str | None
    vehicles: dict[str, int] = Field(description="Vehicles by state: pending, delivered, "
                                     "active, rejected, withdrawing, withdrawn, superseded.")
    webhook_secret: str | None = Field(
        default=None, description="The secret its webhook posts are signed with (HMAC-SHA256 in "
        "X-Drivetrain-Signature); only in the answer to writing a version that has a webhook "
        "destination.")

    @classmethod
    def of(cls, view: CampaignView) -> CampaignOut:
        return cls(campaign_id=view.campaign_id, status=view.status, version=view.version,
                   latest_version=view.latest_version, current=VersionOut.of(view.current),
                   job_id=view.job_id, created_by=view.created_by, created_at=view.created_at,
                   started_at=view.started_at, ended_at=view.ended_at, reason=view.reason,
                   vehicles=dict(view.vehicles))


class CampaignVehicleOut(BaseModel):
    vin: str
    state: VehicleState
    version: int | None = Field(description="The wire version sent to it.")
    updated_at: datetime
    reason: str | None = Field(description="Why it was rejected, superseded or is waiting.")
    detail: str | None = Field(description="What the vehicle answered.")

    @classmethod
    def of(cls, vehicle: CampaignVehicle) -> CampaignVehicleOut:
        return cls(vin=vehicle.vin, state=vehicle.state, version=vehicle.version,
                   updated_at=vehicle.updated_at, reason=vehicle.reason, detail=vehicle.detail)


class CatalogIn(_Strict):
    kind: Literal["overlay", "import"] = Field(
        description="overlay: merged onto the newest version (or the standard VSS catalog); "
        "import: a whole VSS JSON export becomes the catalog."
    )
    document: dict[str, Any] = Field(examples=[{"Vehicle.Acme.Wiper.WearLevel": {
        "type": "sensor", "datatype": "uint8", "unit": "percent", "min": 0, "max": 100,
        "description": "Wiper blade wear"}}])
    description: str = Field("", max_length=2000)


class CatalogVersionOut(BaseModel):
    version: int
    kind: Literal["overlay", "import"]
    signals: int
    description: str
    created_by: str
    created_at: datetime

    @classmethod
    def of(cls, version: CatalogVersion) -> CatalogVersionOut:
        return cls(version=version.version, kind=version.kind, signals=version.signals,
                   description=version.description, created_by=version.created_by,
                   created_at=version.created_at)


class SignalOut(BaseModel):
    path: str
    node_type: str
    datatype: str
    unit: str | None


class CatalogOut(BaseModel):
    version: int | None = Field(description="null: the standard VSS catalog.")
    signals: list[SignalOut]


class VehicleModelIn(_Strict):
    model_id: str = Field(max_length=80, examples=["compact-bev"],
                          description="The twins' model field of the vehicles it covers.")
    name: str = Field(max_length=200, examples=["Compact battery-electric hatch"])


class VehicleModelOut(BaseModel):
    model_id: str
    name: str
    latest_manifest: int
    published_manifest: int | None
    created_by: str
    created_at: datetime


class ManifestIn(_Strict):
    dbc: dict[str, str] = Field(description="DBC file name -> DBC text (the main one and the "
                                "files it imports).")
    main: str = Field(description="The DBC file to load.", examples=["compact_bev.dbc"])
    signal_map: str = Field(description="The DBC->VSS map (TOML, docs/can-codec.md).")
    catalog_version: int | None = Field(None, ge=1, description="Default: the newest.")


class ManifestOut(BaseModel):
    model_id: str
    version: int
    digest: str = Field(description="SHA-256 of the manifest's canonical JSON.")
    signature: str = Field(description="Ed25519 over the canonical JSON, base64.")
    key_id: str
    catalog_version: int | None
    dbc_files: list[str]
    signals: int
    created_by: str
    created_at: datetime
    job_id: str | None
    published_at: datetime | None
