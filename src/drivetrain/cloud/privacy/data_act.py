"""EU Data Act access: an owner's own vehicles, and the containers an owner shares.

An owner (:mod:`drivetrain.cloud.privacy.owners`) reads every container of its vehicles. It
grants a third party (a client of role ``third_party_app``) chosen containers of one vehicle
for a period: the grant is an entry of the consent ledger (purpose ``owner_access``, the
containers' privacy categories, the recipient and the expiry — revoked by withdrawing it) plus
the containers it names (``privacy_data_act_grants``). A third party reads a container only
while an active grant names it *and* its token carries the scope ``container:<name>``.
Trade-secret signals are never read through these routes; the owner sees them as withheld.

:func:`decide_access` is the one decision every Data Act read takes; it raises a specific
error for each refusal (the routes log and audit it).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from drivetrain.cloud.fleet import get_vehicle
from drivetrain.cloud.infra import Principal, Role, get_client, record_audit
from drivetrain.cloud.privacy.containers import ContainerSet
from drivetrain.cloud.privacy.ledger import Grant, consent_history, give_consent, withdraw_consent
from drivetrain.cloud.privacy.models import DataActGrantRow
from drivetrain.cloud.privacy.owners import owned_vins, owner_binding
from drivetrain.cloud.privacy.purposes import DATA_ACT_PURPOSE, PurposeNotAllowedError
from drivetrain.cloud.privacy.regional import audit_vehicle, contents, place
from drivetrain.core.errors import BadInputError, NotFoundError, PermissionDeniedError
from drivetrain.core.vss import Catalog, privacy_category_for

Party = Literal["owner", "third_party"]
#: Longest a grant may run (ten years, like the ledger's ``valid_days``).
MAX_GRANT_DAYS: Final = 3660


class GrantInactiveError(PurposeNotAllowedError):
    """Every grant of the vehicle to this third party was revoked or has expired."""


class ContainerNotGrantedError(PurposeNotAllowedError):
    """A container (or signal) outside the active grants, or outside the token's scopes."""


class TradeSecretWithheldError(PurposeNotAllowedError):
    """A signal the operator withholds as a trade secret."""


@dataclass(frozen=True, slots=True)
class DataActGrant:
    """A ledger grant with the containers it shares."""

    grant: Grant
    containers: tuple[str, ...]
    granted_by: str

    def to_dict(self, now: datetime) -> dict[str, object]:
        return {**self.grant.to_dict(now), "containers": list(self.containers),
                "granted_by": self.granted_by}


@dataclass(frozen=True, slots=True)
class Access:
    """What one Data Act read may see of one vehicle."""

    vin: str
    party: Party
    containers: tuple[str, ...]
    #: Readable VSS paths (trade secrets left out).
    paths: tuple[str, ...]
    #: Trade-secret paths of those containers, with the reason each is withheld.
    withheld: dict[str, str] = field(default_factory=dict)
    grant_ids: tuple[int, ...] = ()

    @property
    def categories(self) -> frozenset[str]:
        return frozenset(privacy_category_for(p) for p in self.paths)


def data_act_grants(session: Session, tenant: str, vin: str) -> list[DataActGrant]:
    """Every Data Act grant of ``vin`` (any status), oldest first."""
    extra = contents(session, session.scalars(
        select(DataActGrantRow).where(DataActGrantRow.tenant_id == tenant,
                                      DataActGrantRow.vin == vin)))
    return [DataActGrant(g, tuple(extra[g.grant_id]["containers"].split()),
                         extra[g.grant_id]["granted_by"])
            for g in consent_history(session, tenant, vin) if g.grant_id in extra]


def grant_containers(
    session: Session, *, principal: Principal, vin: str, recipient: str,
    containers: Iterable[str], valid_days: int, container_set: ContainerSet, catalog: Catalog,
    request_id: str | None = None, now: datetime | None = None,
) -> DataActGrant:
    """The owner ``principal`` shares ``containers`` of ``vin`` with ``recipient`` for
    ``valid_days``; records ``privacy.consent.give`` and ``privacy.data_act.grant``.

    Raises:
        NotFoundError: ``vin`` is not the owner's; the recipient is not a client of the tenant.
        BadInputError: an unknown container, none, a recipient that is not a third-party
            app, or a period outside 1-3660 days.
    """
    binding = owner_binding(session, principal.tenant, principal.client_id, vin)
    names = sorted(set(containers))
    if not names:
        raise BadInputError("containers is empty; a grant names at least one container")
    for name in names:
        container_set.get(name)
    if not 1 <= valid_days <= MAX_GRANT_DAYS:
        raise BadInputError(f"valid_days is {valid_days}; expected 1 to {MAX_GRANT_DAYS}")
    client = get_client(session, principal.tenant, recipient)
    if client.role is not Role.THIRD_PARTY_APP:
        raise BadInputError(f"recipient {recipient!r} has role {client.role.value!r}; the "
                            "owner shares with clients of role 'third_party_app'")
    paths = container_set.readable_paths(names, catalog)
    if not paths:
        raise BadInputError(f"containers {', '.join(names)} hold no readable signal")
    now = now or datetime.now(UTC)
    grant = give_consent(
        session, tenant=principal.tenant, vin=vin, purpose=DATA_ACT_PURPOSE,
        categories={privacy_category_for(p) for p in paths},
        person="fleet" if binding.relation == "fleet" else "owner", source="data-act",
        actor=principal.client_id, recipient=recipient,
        expires_at=now + timedelta(days=valid_days), now=now, request_id=request_id)
    row = DataActGrantRow(grant_id=grant.grant_id, tenant_id=principal.tenant, vin=vin,
                          containers="", granted_by="")
    session.add(row)
    session.flush()
    place(session, row, {"containers": " ".join(names), "granted_by": principal.client_id})
    record_audit(session, tenant=principal.tenant, actor=principal.client_id,
                 action="privacy.data_act.grant", target=f"vehicle:{vin}",
                 request_id=request_id, now=now, vehicle=audit_vehicle(session, vin),
                 details={"grant_id": grant.grant_id, "recipient": recipient,
                          "containers": names, "expires_at": grant.expires_at.isoformat()
                          if grant.expires_at else None})
    return DataActGrant(grant, tuple(names), principal.client_id)


def revoke_grant(
    session: Session, *, principal: Principal, grant_id: int, request_id: str | None = None,
) -> DataActGrant:
    """The owner withdraws one of its vehicles' Data Act grants (at once; again: unchanged).

    Raises:
        NotFoundError: no such Data Act grant on a vehicle of this owner.
    """
    row = session.get(DataActGrantRow, grant_id)
    if row is None or row.tenant_id != principal.tenant:
        raise NotFoundError(f"data act grant {grant_id} does not exist")
    try:
        owner_binding(session, principal.tenant, principal.client_id, row.vin)
    except NotFoundError:
        raise NotFoundError(f"data act grant {grant_id} does not exist") from None
    grant = withdraw_consent(session, tenant=principal.tenant, grant_id=grant_id,
                             actor=principal.client_id, request_id=request_id)
    content = contents(session, [row]).get(grant_id)
    if content is None:
        raise NotFoundError(f"data act grant {grant_id}: its content is missing from the "
                            "region store")
    return DataActGrant(grant, tuple(content["containers"].split()), content["granted_by"])


def accessible_vins(session: Session, principal: Principal, now: datetime | None = None
                    ) -> list[str]:
    """The vehicles ``principal`` reads through the Data Act: an owner's own, a third
    party's under an active grant; nobody else's."""
    if principal.role is Role.OWNER:
        return owned_vins(session, principal.tenant, principal.client_id)
    if principal.role is not Role.THIRD_PARTY_APP:
        return []
    now = now or datetime.now(UTC)
    vins = session.scalars(select(DataActGrantRow.vin).where(
        DataActGrantRow.tenant_id == principal.tenant).distinct())
    return sorted(v for v in vins if any(
        g.grant.recipient == principal.client_id and g.grant.is_active(now)
        for g in data_act_grants(session, principal.tenant, v)))


def decide_access(
    session: Session, principal: Principal, vin: str, *, container_set: ContainerSet,
    catalog: Catalog, containers: Iterable[str] = (), paths: Iterable[str] = (),
    now: datetime | None = None,
) -> Access:
    """What ``principal`` may read of ``vin``: ``containers`` (default: all it may) narrowed to
    ``paths`` when given.

    Raises:
        NotFoundError: another tenant's vehicle, another owner's, or a vehicle no grant ever
            named to this third party (the same answer as an unregistered VIN).
        PermissionDeniedError: a caller neither owner nor third-party app.
        GrantInactiveError: every grant to this third party was revoked or has expired.
        ContainerNotGrantedError: a container or path outside the active grants or the
            token's ``container:`` scopes.
        TradeSecretWithheldError: a path withheld as a trade secret.
        BadInputError: an unknown container or path.
    """
    now = now or datetime.now(UTC)
    get_vehicle(session, vin, tenant=principal.tenant)
    asked = sorted(set(containers))
    for name in asked:
        container_set.get(name)
    grant_ids: tuple[int, ...] = ()
    if principal.role is Role.OWNER:
        owner_binding(session, principal.tenant, principal.client_id, vin)
        party: Party = "owner"
        allowed = sorted(container_set.containers)
    elif principal.role is Role.THIRD_PARTY_APP:
        party = "third_party"
        allowed, grant_ids = _third_party_containers(session, principal, vin, now)
    else:
        raise PermissionDeniedError(
            f"client {principal.client_id!r} (role {principal.role.value!r}) is neither the "
            "vehicle's owner nor a third party it granted; the Data Act routes serve only those")
    outside = [c for c in asked if c not in allowed]
    if outside:
        raise ContainerNotGrantedError(
            f"container(s) {', '.join(outside)} of vehicle {vin} are not granted to "
            f"{principal.client_id!r}; granted: {', '.join(allowed)}")
    chosen = asked or allowed
    readable = container_set.readable_paths(chosen, catalog)
    withheld = container_set.withheld(chosen, catalog)
    wanted = sorted(set(paths))
    if wanted:
        secret = [p for p in wanted if p in withheld or container_set.secret_reason(p)]
        if secret:
            reason = container_set.secret_reason(secret[0])
            raise TradeSecretWithheldError(
                f"signal {secret[0]} is withheld as a trade secret: {reason}")
        unknown = [p for p in wanted if p not in catalog]
        if unknown:
            raise BadInputError(f"path {unknown[0]!r} is not a signal of the catalog")
        beyond = [p for p in wanted if p not in readable]
        if beyond:
            raise ContainerNotGrantedError(
                f"signal {beyond[0]} is in none of the containers "
                f"{', '.join(chosen)} readable by {principal.client_id!r}")
        readable = wanted
    return Access(vin, party, tuple(chosen), tuple(readable), withheld, grant_ids)


def _third_party_containers(
    session: Session, principal: Principal, vin: str, now: datetime,
) -> tuple[list[str], tuple[int, ...]]:
    mine = [g for g in data_act_grants(session, principal.tenant, vin)
            if g.grant.recipient == principal.client_id]
    if not mine:
        raise NotFoundError(f"vehicle {vin} is not registered")
    active = [g for g in mine if g.grant.is_active(now)]
    if not active:
        last = mine[-1].grant
        when = last.withdrawn_at or last.expires_at
        what = "revoked" if last.withdrawn_at else "expired"
        raise GrantInactiveError(
            f"grant {last.grant_id} of vehicle {vin} to {principal.client_id!r} was {what} at "
            f"{when.isoformat() if when else 'an unknown time'}; no active grant is left")
    granted = sorted({c for g in active for c in g.containers})
    if not principal.containers:
        raise ContainerNotGrantedError(
            "the access token carries no container scope; ask the token endpoint for "
            f"scope 'data_act {' '.join('container:' + c for c in granted)}'")
    usable = [c for c in granted if c in principal.containers]
    if not usable:
        raise ContainerNotGrantedError(
            f"the token's container scopes ({', '.join(sorted(principal.containers))}) cover "
            f"none of the containers granted on vehicle {vin} ({', '.join(granted)})")
    return usable, tuple(g.grant.grant_id for g in active)
