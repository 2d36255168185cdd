"""``/v1/privacy``: per-vehicle consent (read and set), the purpose-consent ledger (give,
list, withdraw), the purposes and what each privacy category means.

A thin shell over the privacy service. Every consent route acts for the caller's own tenant
(from the token) and only on vehicles of that tenant in the fleet registry: another tenant's
VIN answers 404 exactly like a VIN that is not registered, so nobody can probe for VINs.
Reading consent needs ``privacy:read``, setting it ``privacy:write``; every change lands in
the tenant's audit log as ``privacy.consent.set`` (``privacy.consent.give`` and
``privacy.consent.withdraw`` for the ledger). The category and purpose lists need only a valid
token. A grant of another tenant answers 404 like one that does not exist. Rotating the
tenant's pseudonym key needs ``admin`` and is audited as ``privacy.pseudonym_key.rotate``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Final, Literal

from fastapi import APIRouter, Path, Request, status
from pydantic import BaseModel, ConfigDict, Field, field_validator

from drivetrain.cloud.fleet import get_vehicle
from drivetrain.cloud.infra import Principal, Scope
from drivetrain.cloud.infra.http import Context, request_id_of, require_scopes
from drivetrain.cloud.privacy.categories import CategoryInfo, describe_categories
from drivetrain.cloud.privacy.flows import change_consent
from drivetrain.cloud.privacy.ledger import (
    PERSONS,
    Grant,
    consent_history,
    give_consent,
    withdraw_consent,
)
from drivetrain.cloud.privacy.purposes import (
    DATA_ACT_PURPOSE,
    PURPOSE_CATALOG,
    PURPOSES,
    PurposeInfo,
)
from drivetrain.cloud.privacy.service import (
    Consent,
    PseudonymKey,
    get_consent,
    parse_source,
    pseudonym_keys,
    rotate_pseudonym_key,
)
from drivetrain.core.errors import BadInputError
from drivetrain.core.vss import PRIVACY_CATEGORIES, builtin_catalog

router = APIRouter(tags=["privacy"])

Reader = Annotated[Principal, require_scopes(Scope.PRIVACY_READ)]
Writer = Annotated[Principal, require_scopes(Scope.PRIVACY_WRITE)]
AnyCaller = Annotated[Principal, require_scopes()]
Admin = Annotated[Principal, require_scopes(Scope.ADMIN)]
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


class ConsentChangeOut(ConsentOut):
    """The consent recorded, and the job that carries it to the vehicle."""

    job_id: str = Field(description="The command job sending it to the vehicle "
                        "(GET /v1/jobs/{job_id}).")
    vehicle_version: int = Field(description="The consent version the vehicle applies "
                                 "(Unix milliseconds of the change).")


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


@router.put("/vehicles/{vin}/consent", response_model=ConsentChangeOut,
            summary="Replace a vehicle's consent")
def write_consent(
    vin: Vin, body: ConsentWrite, principal: Writer, context: Context, request: Request
) -> ConsentChangeOut:
    """Replace the vehicle's consent; an unknown category is refused (422) and nothing changes.

    Ingestion applies it from its next micro-batch on, and the vehicle stops collecting what
    it no longer covers as soon as the signed command reaches it (``job_id``); data already
    stored is not touched.
    """
    with context.database.session() as session:
        get_vehicle(session, vin, tenant=principal.tenant)
        change = change_consent(
            session, vin=vin, tenant=principal.tenant, categories=body.categories,
            source=body.source, actor=principal.client_id, request_id=request_id_of(request),
        )  # fmt: skip
    out = ConsentOut.of(change.consent).model_dump()
    return ConsentChangeOut(**out, job_id=change.job_id, vehicle_version=change.version)


#: Longest a grant may run, days (about ten years).
MAX_GRANT_DAYS: Final = 3660
GrantId = Annotated[int, Path(ge=1, le=2**63 - 1, description="The grant's id.")]


class PurposeOut(BaseModel):
    """One purpose a read may name: its legal basis and the categories it may use."""

    name: str
    basis: Literal["contract", "legal_obligation", "consent", "data_act"]
    categories: list[str]
    meaning: str
    by_consent: list[str] = Field(
        default_factory=list,
        description="Of the categories, those read only where a grant for the purpose covers "
        "the vehicle (all of them for a consent purpose).")

    @classmethod
    def of(cls, info: PurposeInfo) -> PurposeOut:
        return cls.model_validate(info.to_dict())


class GrantWrite(BaseModel):
    """A person's consent to one purpose over some categories, optionally for a third party
    and for a limited time."""

    model_config = ConfigDict(extra="forbid")

    purpose: str = Field(max_length=32, description=f"One of {', '.join(PURPOSES)} whose "
                         "basis is consent.", examples=["repair"])
    categories: list[str] = Field(min_length=1, max_length=MAX_CATEGORIES,
                                  examples=[["diagnostics"]])
    person: str = Field(max_length=16, description=f"Who consents: {', '.join(PERSONS)}.",
                        examples=["owner"])
    source: str = Field(max_length=80, description="Where the consent was given, e.g. "
                        "owner-app.", examples=["owner-app"])
    recipient: str | None = Field(None, max_length=128, description="Client id of the third "
                                  "party it is given to; none: the tenant's own clients.")
    valid_days: int | None = Field(None, ge=1, le=MAX_GRANT_DAYS, description="Days until it "
                                   "expires; none: until withdrawn.", examples=[7])


class GrantOut(BaseModel):
    """One ledger entry and its status now."""

    grant_id: int
    vin: str
    purpose: str
    categories: list[str]
    person: str
    recipient: str | None
    source: str
    given_at: datetime
    expires_at: datetime | None
    withdrawn_at: datetime | None
    status: Literal["active", "withdrawn", "expired"]

    @classmethod
    def of(cls, grant: Grant) -> GrantOut:
        return cls.model_validate(grant.to_dict(datetime.now(UTC)))


@router.get("/purposes", response_model=list[PurposeOut], summary="The purposes a read may name")
def list_purposes(principal: AnyCaller) -> list[PurposeOut]:
    """Every purpose with its legal basis and the privacy categories it may use."""
    return [PurposeOut.of(info) for info in PURPOSE_CATALOG.values()]


@router.post("/vehicles/{vin}/grants", response_model=GrantOut,
             status_code=status.HTTP_201_CREATED, summary="Record a consent to a purpose")
def post_grant(
    vin: Vin, body: GrantWrite, principal: Writer, context: Context, request: Request
) -> GrantOut:
    """Add a grant to the vehicle's ledger; reads for its purpose see the data at once.
    Grants for ``owner_access`` are the owner's to give, through ``/v1/data-act`` (422 here)."""
    if body.purpose == DATA_ACT_PURPOSE:
        raise BadInputError(f"purpose {DATA_ACT_PURPOSE!r} is granted by the vehicle's owner "
                            "through POST /v1/data-act/vehicles/{vin}/grants, with containers")
    now = datetime.now(UTC)
    expires = None if body.valid_days is None else now + timedelta(days=body.valid_days)
    with context.database.session() as session:
        get_vehicle(session, vin, tenant=principal.tenant)
        grant = give_consent(
            session, tenant=principal.tenant, vin=vin, purpose=body.purpose,
            categories=body.categories, person=body.person, source=body.source,
            actor=principal.client_id, recipient=body.recipient, expires_at=expires, now=now,
            request_id=request_id_of(request),
        )  # fmt: skip
    return GrantOut.of(grant)


@router.get("/vehicles/{vin}/grants", response_model=list[GrantOut],
            summary="A vehicle's consent ledger")
def list_grants(vin: Vin, principal: Reader, context: Context) -> list[GrantOut]:
    """Every grant of the vehicle, oldest first, with its status now."""
    with context.database.session() as session:
        get_vehicle(session, vin, tenant=principal.tenant)
        grants = consent_history(session, principal.tenant, vin)
    return [GrantOut.of(g) for g in grants]


@router.post("/grants/{grant_id}/withdraw", response_model=GrantOut,
             summary="Withdraw a consent")
def post_withdraw(
    grant_id: GrantId, principal: Writer, context: Context, request: Request
) -> GrantOut:
    """Withdraw the grant at once (again: no change)."""
    with context.database.session() as session:
        grant = withdraw_consent(session, tenant=principal.tenant, grant_id=grant_id,
                                 actor=principal.client_id, request_id=request_id_of(request))
    return GrantOut.of(grant)


class PseudonymKeyOut(BaseModel):
    """One version of the tenant's pseudonym key (never the secret)."""

    version: int = Field(description="Key version; the highest is current.")
    created_at: datetime
    current: bool = Field(description="New data is pseudonymised under this key.")

    @classmethod
    def of(cls, key: PseudonymKey) -> PseudonymKeyOut:
        return cls(version=key.version, created_at=key.created_at, current=key.current)


@router.post("/pseudonym-key/rotate", response_model=list[PseudonymKeyOut],
             summary="Rotate the tenant's pseudonym key")
def post_rotate_pseudonym_key(
    principal: Admin, context: Context, request: Request
) -> list[PseudonymKeyOut]:
    """Make a new pseudonym key current for the caller's tenant; returns every key version,
    newest first. Earlier keys are kept and lake data is not rewritten: access and erasure
    requests still find a vehicle under every pseudonym it had."""
    with context.database.session() as session:
        rotate_pseudonym_key(session, principal.tenant, actor=principal.client_id,
                             request_id=request_id_of(request))
        keys = pseudonym_keys(session, principal.tenant)
    return [PseudonymKeyOut.of(k) for k in keys]
