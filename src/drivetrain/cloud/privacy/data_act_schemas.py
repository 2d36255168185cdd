"""Request and response bodies of ``/v1/data-act``."""

from __future__ import annotations

from datetime import datetime
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from drivetrain.cloud.privacy.containers import Container, ContainerSet
from drivetrain.cloud.privacy.data_act import MAX_GRANT_DAYS, DataActGrant
from drivetrain.core.vss import Catalog

#: Most containers one request may name.
MAX_CONTAINER_NAMES: Final = 64
Scalar = float | int | str | bool | None


class SignalOut(BaseModel):
    """One signal of a container with its VSS metadata."""

    path: str = Field(description="The VSS name.")
    unit: str | None
    datatype: str
    description: str
    category: str = Field(description="Its privacy category.")
    trade_secret: str | None = Field(
        description="Why it is withheld as a trade secret; null when it is shared.")


class ContainerOut(BaseModel):
    """One container: its signals (of the built-in catalog) and which are withheld."""

    name: str = Field(description="Also the scope container:<name>.")
    description: str
    signal_count: int
    withheld_count: int = Field(description="Trade-secret signals: never shared.")
    globs: list[str]
    exclude: list[str]
    signals: list[SignalOut]

    @classmethod
    def of(cls, container: Container, containers: ContainerSet, catalog: Catalog
           ) -> ContainerOut:
        signals = [SignalOut(path=s.path, unit=s.unit, datatype=str(s.datatype),
                             description=s.description, category=s.privacy_category,
                             trade_secret=containers.secret_reason(s.path))
                   for s in containers.signals(container.name, catalog)]
        return cls(name=container.name, description=container.description,
                   signal_count=len(signals),
                   withheld_count=sum(s.trade_secret is not None for s in signals),
                   globs=list(container.signals), exclude=list(container.exclude),
                   signals=signals)


class LatestOut(BaseModel):
    """A signal's latest reported value."""

    value: Scalar
    at: datetime


class VehicleContainerOut(BaseModel):
    """What one container of a vehicle holds for the caller."""

    name: str
    description: str
    signal_count: int = Field(description="Signals the caller may read.")
    with_values: int = Field(description="Of those, the ones the vehicle has reported.")
    withheld: dict[str, str] = Field(description="Trade-secret signals and why withheld.")
    latest: dict[str, LatestOut] = Field(description="Latest value per signal.")


class VehicleDataOut(BaseModel):
    """What a vehicle produces, as the caller (its owner, or a recipient) may see it."""

    vin: str
    party: Literal["owner", "third_party"]
    containers: list[VehicleContainerOut]


class VehiclesOut(BaseModel):
    """The vehicles the caller reads through the Data Act."""

    vins: list[str]


class GrantIn(BaseModel):
    """Share containers of a vehicle with a third party for a period."""

    model_config = ConfigDict(extra="forbid")

    recipient: str = Field(min_length=1, max_length=128,
                           description="The third party's client id (role third_party_app).")
    containers: list[str] = Field(min_length=1, max_length=MAX_CONTAINER_NAMES,
                                  examples=[["diagnostics"]])
    valid_days: int = Field(ge=1, le=MAX_GRANT_DAYS, description="How long it runs.")


class DataActGrantOut(BaseModel):
    """A Data Act grant: the ledger entry and the containers it shares."""

    grant_id: int
    vin: str
    recipient: str | None
    containers: list[str]
    categories: list[str]
    granted_by: str
    given_at: datetime
    expires_at: datetime | None
    withdrawn_at: datetime | None
    status: Literal["active", "withdrawn", "expired"]

    @classmethod
    def of(cls, grant: DataActGrant, now: datetime) -> DataActGrantOut:
        g = grant.grant
        return cls(grant_id=g.grant_id, vin=g.vin, recipient=g.recipient,
                   containers=list(grant.containers), categories=sorted(g.categories),
                   granted_by=grant.granted_by, given_at=g.given_at, expires_at=g.expires_at,
                   withdrawn_at=g.withdrawn_at, status=g.status(now))


class AccessOut(BaseModel):
    """One Data Act read of the vehicle's data, allowed or refused."""

    access_id: int
    at: datetime
    client_id: str
    party: Literal["owner", "third_party"]
    grant_id: int | None
    action: str = Field(description="latest, download, stream (opened) or streamed (what a "
                        "stream sent, at its end).")
    containers: list[str]
    values: int
    bytes: int
    outcome: Literal["allowed", "refused"]
    error: str | None = Field(description="The refusal's problem type.")


class MeterOut(BaseModel):
    """What one recipient read in one month, and what it is charged."""

    recipient: str
    month: str = Field(description="YYYY-MM (UTC).")
    requests: int
    values: int
    bytes: int
    sme: bool = Field(description="A small or medium enterprise: charged cost only.")
    charge_eur: float


class OwnerIn(BaseModel):
    """Bind an owner account to a vehicle."""

    model_config = ConfigDict(extra="forbid")

    vin: str = Field(min_length=1, max_length=17)
    client_id: str = Field(min_length=1, max_length=128,
                           description="A client of role owner in the tenant.")
    relation: Literal["owner", "lessee", "fleet"] = "owner"


class OwnerOut(BaseModel):
    """A vehicle bound to an owner account."""

    vin: str
    client_id: str
    relation: str
    since: datetime


class RecipientIn(BaseModel):
    """A business recipient's standing for compensation."""

    model_config = ConfigDict(extra="forbid")

    sme: bool = Field(description="A small or medium enterprise (pays cost only).")


class RecipientOut(BaseModel):
    """A recipient's standing."""

    client_id: str
    sme: bool
