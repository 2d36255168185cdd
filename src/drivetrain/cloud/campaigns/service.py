"""The campaigns domain's public functions: write, approve, run, suspend, resume, retire and
follow collection campaigns.

Every function takes an open session and the tenant it acts for; another tenant's campaign
answers exactly as one that does not exist, and naming another tenant's vehicle is refused as
an unknown vehicle, with nothing stored. Every transition is recorded in the audit log and
published on the platform status bus (domain ``campaigns``). Delivery to vehicles is the
dispatcher's (``drivetrain.cloud.commands``): the campaign runner (``runner.py``) turns
targeting into deliveries of the campaign's own continuous job.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal, cast

from sqlalchemy import select
from sqlalchemy.orm import Session

from drivetrain.cloud.campaigns.catalogs import tenant_catalog
from drivetrain.cloud.campaigns.definition import CampaignSpec, parse_spec
from drivetrain.cloud.campaigns.lifecycle import (
    CAMPAIGN_STATUSES,
    CampaignStatus,
    VehicleState,
    VersionStatus,
    WireVersions,
    check_approver,
    check_editable,
    next_status,
    vehicle_state,
)
from drivetrain.cloud.campaigns.models import (
    CampaignPolicyRow,
    CampaignRow,
    CampaignVersionRow,
)
from drivetrain.cloud.commands import Delivery, latest_deliveries
from drivetrain.cloud.infra import record_audit
from drivetrain.cloud.infra.bus import StatusEvent, queue_status
from drivetrain.cloud.twins import select_twins
from drivetrain.core.errors import (
    BadInputError,
    ConflictError,
    NotFoundError,
    StateTransitionError,
)

DOMAIN: Final = "campaigns"
#: What an operator may do to a running campaign (starting and finishing follow its times).
OperatorAction = Literal["suspend", "resume", "retire"]
MAX_PAGE: Final = 1000


@dataclass(frozen=True, slots=True)
class CampaignVersion:
    """One version of a campaign's definition."""

    version: int
    status: VersionStatus
    spec: CampaignSpec
    catalog_version: int | None
    author: str
    written_at: datetime
    approved_by: str | None
    approved_at: datetime | None


@dataclass(frozen=True, slots=True)
class CampaignView:
    """A campaign as its owner sees it: life cycle, the version in force (or the newest draft),
    and its vehicles counted by state."""

    tenant: str
    campaign_id: str
    status: CampaignStatus
    version: int | None
    latest_version: int
    current: CampaignVersion
    job_id: str | None
    created_by: str
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    reason: str | None
    vehicles: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CampaignVehicle:
    """One vehicle's state in a campaign (from its latest delivery)."""

    vin: str
    state: VehicleState
    version: int | None
    updated_at: datetime
    reason: str | None
    detail: str | None


def _now(now: datetime | None) -> datetime:
    return now or datetime.now(UTC)


def campaign_event(row: CampaignRow, kind: str, now: datetime, **data: Any) -> StatusEvent:
    return StatusEvent(DOMAIN, kind, row.tenant_id, row.campaign_id, now,
                       {"status": row.status, "version": row.version, **data})


def requires_second_approver(session: Session, tenant: str) -> bool:
    """Whether the tenant's campaigns need a second person to approve them."""
    row = session.get(CampaignPolicyRow, tenant)
    return bool(row and row.require_second_approver)


def set_campaign_policy(
    session: Session, tenant: str, *, require_second_approver: bool, actor: str,
    now: datetime | None = None, request_id: str | None = None,
) -> bool:
    """Set whether approval needs a second person; records ``campaigns.policy.set``."""
    now = _now(now)
    row = session.get(CampaignPolicyRow, tenant)
    if row is None:
        row = CampaignPolicyRow(tenant_id=tenant)
        session.add(row)
    row.require_second_approver, row.updated_by, row.updated_at = (
        require_second_approver, actor, now)
    record_audit(session, tenant=tenant, actor=actor, action="campaigns.policy.set",
                 target="campaigns:policy",
                 details={"require_second_approver": require_second_approver},
                 request_id=request_id, now=now)
    return require_second_approver


def _checked_spec(
    session: Session, tenant: str, data: Any, now: datetime
) -> tuple[CampaignSpec, int | None]:
    catalog, catalog_version = tenant_catalog(session, tenant)
    spec = parse_spec(data, catalog, now=now)
    targeting = spec.targeting
    # The query must parse now (with the tenant's catalog), not fail later in the runner.
    select_twins(session, tenant, targeting.query or "", among=targeting.vins or [],
                 catalog=catalog)
    if targeting.vins is not None:
        found = set(select_twins(session, tenant, "", among=targeting.vins))
        unknown = [v for v in targeting.vins if v not in found]
        if unknown:
            raise NotFoundError(
                f"campaign: targeting.vins: vehicle {unknown[0]} is not a vehicle of tenant "
                f"{tenant!r}" + (f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else "")
            )
    return spec, catalog_version


def _row(session: Session, tenant: str, campaign_id: str) -> CampaignRow:
    row = session.get(CampaignRow, (tenant, campaign_id)) if isinstance(campaign_id, str) else None
    if row is None:
        raise NotFoundError(f"campaign {campaign_id!r} does not exist")
    return row


def _version_row(session: Session, row: CampaignRow, version: int) -> CampaignVersionRow:
    found = session.get(CampaignVersionRow, (row.tenant_id, row.campaign_id, version))
    if found is None:
        raise NotFoundError(f"campaign {row.campaign_id!r} has no version {version}")
    return found


def _version(row: CampaignVersionRow) -> CampaignVersion:
    spec = CampaignSpec.from_stored(json.loads(row.definition))
    return CampaignVersion(row.version, cast(VersionStatus, row.status), spec,
                           row.catalog_version, row.author, row.written_at, row.approved_by,
                           row.approved_at)


def create_campaign(
    session: Session, data: Any, *, tenant: str, actor: str, now: datetime | None = None,
    request_id: str | None = None,
) -> CampaignView:
    """Write a new campaign as a draft (version 1), checked against the tenant's catalog
    before anything is stored.

    Raises:
        CampaignFormatError, BadInputError: the definition is refused (names the field).
        QuerySyntaxError: the targeting query does not parse.
        NotFoundError: a named VIN is not a vehicle of ``tenant``.
        ConflictError: a campaign with this id exists (write a new version of it instead).
    """
    now = _now(now)
    spec, catalog_version = _checked_spec(session, tenant, data, now)
    if session.get(CampaignRow, (tenant, spec.campaign_id)) is not None:
        raise ConflictError(f"campaign {spec.campaign_id!r} exists; change it by writing a new "
                            "version (POST /v1/campaigns/{id}/versions)")
    row = CampaignRow(
        tenant_id=tenant, campaign_id=spec.campaign_id, status="draft", version=None,
        latest_version=1, content_version=0, install_version=0, wire_counter=0,
        created_by=actor, created_at=now, updated_at=now,
    )
    session.add(row)
    session.add(_new_version_row(tenant, spec, 1, catalog_version, actor, now))
    session.flush()
    record_audit(session, tenant=tenant, actor=actor, action="campaigns.create",
                 target=f"campaign:{spec.campaign_id}",
                 details={"version": 1, "definition": spec.to_dict()},
                 request_id=request_id, now=now)
    queue_status(session, [campaign_event(row, "created", now, latest_version=1)])
    return get_campaign(session, spec.campaign_id, tenant=tenant)


def _new_version_row(
    tenant: str, spec: CampaignSpec, version: int, catalog_version: int | None, actor: str,
    now: datetime,
) -> CampaignVersionRow:
    return CampaignVersionRow(
        tenant_id=tenant, campaign_id=spec.campaign_id, version=version,
        definition=json.dumps(spec.to_dict(), sort_keys=True), catalog_version=catalog_version,
        status="draft", author=actor, written_at=now,
    )


def _same_id(spec: CampaignSpec, campaign_id: str) -> None:
    if spec.campaign_id != campaign_id:
        raise BadInputError(f"campaign: field 'id' is {spec.campaign_id!r}; this is campaign "
                            f"{campaign_id!r} (a campaign's id never changes)")


def edit_campaign(
    session: Session, campaign_id: str, data: Any, *, tenant: str, actor: str,
    version: int | None = None, now: datetime | None = None, request_id: str | None = None,
) -> CampaignView:
    """Change a draft version (default: the newest) in place.

    Raises:
        StateTransitionError: the version is approved: a change needs a new version, approved
            in its turn (nothing is stored).
        CampaignFormatError, BadInputError, NotFoundError: as :func:`create_campaign`.
    """
    now = _now(now)
    row = _row(session, tenant, campaign_id)
    target = _version_row(session, row, version or row.latest_version)
    check_editable(cast(VersionStatus, target.status), campaign_id, target.version)
    spec, catalog_version = _checked_spec(session, tenant, data, now)
    _same_id(spec, campaign_id)
    target.definition = json.dumps(spec.to_dict(), sort_keys=True)
    target.catalog_version, target.author, target.written_at = catalog_version, actor, now
    row.updated_at = now
    record_audit(session, tenant=tenant, actor=actor, action="campaigns.edit",
                 target=f"campaign:{campaign_id}",
                 details={"version": target.version, "definition": spec.to_dict()},
                 request_id=request_id, now=now)
    queue_status(session, [campaign_event(row, "edited", now, edited_version=target.version)])
    return get_campaign(session, campaign_id, tenant=tenant)


def new_campaign_version(
    session: Session, campaign_id: str, data: Any, *, tenant: str, actor: str,
    now: datetime | None = None, request_id: str | None = None,
) -> CampaignView:
    """Write the next version of a campaign as a draft; the version in force stays in force
    until this one is approved.

    Raises:
        ConflictError: the newest version is still a draft (edit or approve it first).
        StateTransitionError: the campaign is retired.
        CampaignFormatError, BadInputError, NotFoundError: as :func:`create_campaign`.
    """
    now = _now(now)
    row = _row(session, tenant, campaign_id)
    if row.status == "retired":
        next_status("retired", "approve", campaign_id)  # raises, naming the state
    newest = _version_row(session, row, row.latest_version)
    if newest.status == "draft":
        raise ConflictError(f"campaign {campaign_id!r} version {newest.version} is still a "
                            "draft: edit it, or approve it before writing another version")
    spec, catalog_version = _checked_spec(session, tenant, data, now)
    _same_id(spec, campaign_id)
    row.latest_version += 1
    row.updated_at = now
    session.add(_new_version_row(tenant, spec, row.latest_version, catalog_version, actor, now))
    session.flush()
    record_audit(session, tenant=tenant, actor=actor, action="campaigns.version.create",
                 target=f"campaign:{campaign_id}",
                 details={"version": row.latest_version, "definition": spec.to_dict()},
                 request_id=request_id, now=now)
    queue_status(session, [campaign_event(row, "version", now, latest_version=row.latest_version)])
    return get_campaign(session, campaign_id, tenant=tenant)


def approve_campaign(
    session: Session, campaign_id: str, *, tenant: str, actor: str,
    version: int | None = None, now: datetime | None = None, request_id: str | None = None,
) -> CampaignView:
    """Approve a draft version (default: the newest). The first approval moves the campaign
    to ``approved`` (it starts at its start time); approving a later version puts it in force
    (a running campaign's vehicles get it).

    Raises:
        PermissionDeniedError: the author approving their own version where the tenant
            requires a second person.
        StateTransitionError: the version is not a draft, or the campaign is finished or
            retired.
        NotFoundError: no such campaign or version.
    """
    now = _now(now)
    row = _row(session, tenant, campaign_id)
    target = _version_row(session, row, version or row.latest_version)
    if target.status != "draft":
        raise StateTransitionError(f"campaign {campaign_id!r} version {target.version} is "
                                   f"{target.status}; only a draft version can be approved")
    if row.status in ("finished", "retired"):
        next_status(cast(CampaignStatus, row.status), "approve", campaign_id)  # raises
    check_approver(require_second=requires_second_approver(session, tenant),
                   author=target.author, approver=actor, campaign_id=campaign_id,
                   version=target.version)
    if row.version is not None:
        previous = _version_row(session, row, row.version)
        previous.status = "superseded"
    target.status, target.approved_by, target.approved_at = "approved", actor, now
    first = row.status == "draft"
    if first:
        row.status = next_status("draft", "approve", campaign_id)
    elif row.status == "running":
        versions = WireVersions(row.content_version, row.install_version, row.wire_counter)
        store_versions(row, versions.new_content())  # vehicles get the new definition
    row.version, row.updated_at = target.version, now
    record_audit(session, tenant=tenant, actor=actor, action="campaigns.approve",
                 target=f"campaign:{campaign_id}",
                 details={"version": target.version, "author": target.author},
                 request_id=request_id, now=now)
    session.flush()
    queue_status(session, [campaign_event(row, "approved", now)])
    return get_campaign(session, campaign_id, tenant=tenant)


def store_versions(row: CampaignRow, versions: WireVersions) -> None:
    row.content_version, row.install_version, row.wire_counter = (
        versions.content, versions.install, versions.counter)


def change_status(
    session: Session, campaign_id: str, action: OperatorAction, *, tenant: str, actor: str,
    reason: str | None = None, now: datetime | None = None, request_id: str | None = None,
) -> CampaignView:
    """Suspend, resume, or retire a campaign (starting and finishing are the runner's, at the
    start and end times). Suspending and retiring withdraw the campaign from its vehicles;
    resuming sends it again.

    Raises:
        StateTransitionError: the action is not allowed in the campaign's state.
        NotFoundError: no such campaign.
    """
    now = _now(now)
    row = _row(session, tenant, campaign_id)
    before = cast(CampaignStatus, row.status)
    row.status = next_status(before, action, campaign_id)
    if action == "resume":
        versions = WireVersions(row.content_version, row.install_version, row.wire_counter)
        store_versions(row, versions.new_content())
    if action == "retire":
        row.ended_at = row.ended_at or now
    row.reason = reason or row.reason
    row.updated_at = now
    record_audit(session, tenant=tenant, actor=actor, action=f"campaigns.{action}",
                 target=f"campaign:{campaign_id}",
                 details={"from": before, "to": row.status, "reason": reason},
                 request_id=request_id, now=now)
    session.flush()
    done = {"suspend": "suspended", "resume": "resumed", "retire": "retired"}[action]
    queue_status(session, [campaign_event(row, done, now, reason=reason)])
    return get_campaign(session, campaign_id, tenant=tenant)


def _members(session: Session, row: CampaignRow) -> dict[str, Delivery]:
    if row.job_id is None:
        return {}
    return latest_deliveries(session, row.job_id, tenant=row.tenant_id)


def _view(session: Session, row: CampaignRow) -> CampaignView:
    shown = row.version if row.version is not None else row.latest_version
    counts: Counter[str] = Counter(
        vehicle_state(d.label, d.state) for d in _members(session, row).values()
    )
    return CampaignView(
        tenant=row.tenant_id, campaign_id=row.campaign_id,
        status=cast(CampaignStatus, row.status), version=row.version,
        latest_version=row.latest_version, current=_version(_version_row(session, row, shown)),
        job_id=row.job_id, created_by=row.created_by, created_at=row.created_at,
        started_at=row.started_at, ended_at=row.ended_at, reason=row.reason,
        vehicles=dict(counts),
    )


def get_campaign(session: Session, campaign_id: str, *, tenant: str) -> CampaignView:
    """A campaign with its vehicles counted by state.

    Raises:
        NotFoundError: no such campaign of ``tenant``.
    """
    return _view(session, _row(session, tenant, campaign_id))


def get_campaign_version(
    session: Session, campaign_id: str, version: int, *, tenant: str
) -> CampaignVersion:
    """One version of a campaign's definition.

    Raises:
        NotFoundError: no such campaign or version.
    """
    return _version(_version_row(session, _row(session, tenant, campaign_id), version))


def list_campaigns(
    session: Session, *, tenant: str, status: str | None = None, limit: int = 100,
) -> list[CampaignView]:
    """The tenant's campaigns, newest first.

    Raises:
        BadInputError: an unknown status or a limit outside 1..1000.
    """
    if status is not None and status not in CAMPAIGN_STATUSES:
        raise BadInputError(f"status {status!r} is not known; expected one of "
                            f"{CAMPAIGN_STATUSES}")
    if isinstance(limit, bool) or not 1 <= limit <= MAX_PAGE:
        raise BadInputError(f"limit {limit!r} is not valid; expected 1 to {MAX_PAGE}")
    query = select(CampaignRow).where(CampaignRow.tenant_id == tenant)
    if status is not None:
        query = query.where(CampaignRow.status == status)
    rows = session.scalars(
        query.order_by(CampaignRow.created_at.desc(), CampaignRow.campaign_id).limit(limit)
    ).all()
    return [_view(session, r) for r in rows]


def campaign_vehicles(
    session: Session, campaign_id: str, *, tenant: str, state: str | None = None,
) -> list[CampaignVehicle]:
    """Every vehicle the campaign reached or tried to, with its state (pending, delivered,
    active, rejected with the vehicle's reason, withdrawing, withdrawn, superseded), by VIN.

    Raises:
        NotFoundError: no such campaign of ``tenant``.
    """
    row = _row(session, tenant, campaign_id)
    out = []
    for vin, d in sorted(_members(session, row).items()):
        current = vehicle_state(d.label, d.state)
        if state is not None and current != state:
            continue
        out.append(CampaignVehicle(vin, current, d.version,
                                   d.finished_at or d.sent_at or d.queued_at, d.reason, d.detail))
    return out
