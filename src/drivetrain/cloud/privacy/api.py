"""``/v1/privacy``: per-vehicle consent (read and set) and what each privacy category means.

A thin shell over the privacy service. Every consent route acts for the caller's own tenant
(from the token) and only on vehicles of that tenant in the fleet registry: another tenant's
VIN answers 404 exactly like a VIN that is not registered, so nobody can probe for VINs.
Reading consent needs ``privacy:read``, setting it ``privacy:write``; every change lands in
the tenant's audit log as ``privacy.consent.set``. The category list needs only a valid token.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Final

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator

from drivetrain.cloud.fleet import get_vehicle
from drivetrain.cloud.infra import Principal, Scope
from drivetrain.cloud.infra.http import Context, request_id_of, require_scopes
from drivetrain.cloud.privacy.categories import CategoryInfo, describe_categories
from drivetrain.cloud.privacy.service import (
    Consent,
    get_consent,
    parse_source,
    set_consent,
)
from drivetrain.core.errors import BadInputError
from drivetrain.core.vss import PRIVACY_CATEGORIES, builtin_catalog

router = APIRouter(tags=["privacy"])

Reader = Annotated[Principal, require_scopes(Scope.PRIVACY_READ)]
Writer = Annotated[Principal, require_scopes(Scope.PRIVACY_WRITE)]
AnyCaller = Annotated[Principal, require_scopes()]
Vin = Annotated[str, Path(min_length=1, max_length=17, description="The vehicle's VIN.")]

#: Most category names one request may list (the five, with room for repeats).
MAX_CATEGORIES: Final = 16


class ConsentWrite(BaseModel):
    """The categories a vehicle's data may be stored for, and where that consent came from."""

    model_config = ConfigDict(extra="forbid")

    categories: list[str] = Field(
        max_length=MAX_CATEGORIES,
        description=f"Privacy categories to allow, of {', '.join(PRIVACY_CATEGORIES)}; "
        "an empty list allows none.",
        examples=[["technical", "diagnostics", "location"]],
    )
    source: str = Field(
        description="Where the consent came from, e.g. driver-app, contract, operator "
        "(1-80 of letters, digits, '.', '_', ':', '-'; not 'default').",
        examples=["driver-app"],
    )

    @field_validator("source")
    @classmethod
    def _source_is_a_token(cls, value: str) -> str:
        try:
            return parse_source(value)
        except BadInputError as e:
            raise ValueError(str(e)) from None


class ConsentOut(BaseModel):
    """A vehicle's consent; ``source`` ``default`` and no ``updated_at`` when none was set."""

    vin: str
    categories: list[str] = Field(description="Allowed categories, sorted.")
    source: str
    updated_at: datetime | None

    @classmethod
    def of(cls, consent: Consent) -> ConsentOut:
        return cls(
            vin=consent.vin, categories=sorted(consent.categories), source=consent.source,
            updated_at=consent.updated_at,
        )  # fmt: skip


class CategoryOut(BaseModel):
    """One privacy category: what it means and example VSS paths of the built-in catalog."""

    name: str
    meaning: str
    default_consent: bool = Field(description="Covered by the default consent.")
    signal_count: int = Field(description="Signals of the built-in catalog in this category.")
    examples: list[str]

    @classmethod
    def of(cls, info: CategoryInfo) -> CategoryOut:
        return cls.model_validate(info.to_dict())


@router.get("/categories", response_model=list[CategoryOut],
            summary="The privacy categories of signals")
def list_categories(principal: AnyCaller) -> list[CategoryOut]:
    """The five privacy categories, each with a one-line meaning and example VSS paths."""
    return [CategoryOut.of(info) for info in describe_categories(builtin_catalog())]


@router.get("/vehicles/{vin}/consent", response_model=ConsentOut,
            summary="A vehicle's consent")
def read_consent(vin: Vin, principal: Reader, context: Context) -> ConsentOut:
    """The vehicle's consent (the default, technical and diagnostics, when none was set)."""
    with context.database.session() as session:
        get_vehicle(session, vin, tenant=principal.tenant)
        consent = get_consent(session, vin, principal.tenant)
    return ConsentOut.of(consent)


@router.put("/vehicles/{vin}/consent", response_model=ConsentOut,
            summary="Replace a vehicle's consent")
def write_consent(
    vin: Vin, body: ConsentWrite, principal: Writer, context: Context, request: Request
) -> ConsentOut:
    """Replace the vehicle's consent; an unknown category is refused (422) and nothing changes.

    Ingestion applies it from its next micro-batch on; data already stored is not touched.
    """
    with context.database.session() as session:
        get_vehicle(session, vin, tenant=principal.tenant)
        consent = set_consent(
            session, vin=vin, tenant=principal.tenant, categories=body.categories,
            source=body.source, actor=principal.client_id, request_id=request_id_of(request),
        )  # fmt: skip
    return ConsentOut.of(consent)
