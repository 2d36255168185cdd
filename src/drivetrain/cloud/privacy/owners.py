"""Who holds a vehicle's EU Data Act rights: owner accounts bound to vehicles.

An owner account is an OAuth2 client of role ``owner`` in the vehicle's tenant; the operator
binds it to each vehicle it owns (or leases, or runs as a fleet account). An owner sees only
the vehicles bound to it: any other VIN — another owner's, another tenant's, or none — answers
404 exactly like an unregistered one. Binding and unbinding are audited
(``privacy.owner.add``, ``privacy.owner.remove``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Literal, get_args

from sqlalchemy import select
from sqlalchemy.orm import Session

from drivetrain.cloud.fleet import get_vehicle
from drivetrain.cloud.infra import Role, get_client, record_audit
from drivetrain.cloud.privacy.models import VehicleOwnerRow
from drivetrain.core.errors import BadInputError, ConflictError, NotFoundError

Relation = Literal["owner", "lessee", "fleet"]
RELATIONS: Final[tuple[Relation, ...]] = get_args(Relation)
#: Most vehicles one owner account may hold (a fleet account's upper bound).
MAX_VEHICLES_PER_OWNER: Final = 10_000


@dataclass(frozen=True, slots=True)
class OwnerBinding:
    """One vehicle bound to one owner account."""

    vin: str
    client_id: str
    relation: Relation
    since: datetime

    def to_dict(self) -> dict[str, object]:
        return {"vin": self.vin, "client_id": self.client_id, "relation": self.relation,
                "since": self.since.isoformat()}


def parse_relation(name: str) -> Relation:
    """``owner``, ``lessee`` or ``fleet``.

    Raises:
        BadInputError: any other name.
    """
    for relation in RELATIONS:
        if name == relation:
            return relation
    raise BadInputError(f"relation {name!r} is not known; expected one of "
                        f"{', '.join(RELATIONS)}")


def _binding(row: VehicleOwnerRow) -> OwnerBinding:
    return OwnerBinding(row.vin, row.client_id, parse_relation(row.relation), row.since)


def add_owner(
    session: Session, *, tenant: str, vin: str, client_id: str, relation: str, actor: str,
    request_id: str | None = None, now: datetime | None = None,
) -> OwnerBinding:
    """Bind owner account ``client_id`` to ``vin``; records ``privacy.owner.add``.

    Raises:
        NotFoundError: the vehicle or the client is not the tenant's.
        BadInputError: the client's role is not ``owner``, or an unknown relation.
        ConflictError: already bound, or the account holds its cap of vehicles.
    """
    chosen = parse_relation(relation)
    get_vehicle(session, vin, tenant=tenant)
    client = get_client(session, tenant, client_id)
    if client.role is not Role.OWNER:
        raise BadInputError(f"client {client_id!r} has role {client.role.value!r}; an owner "
                            "account is a client of role 'owner'")
    if session.get(VehicleOwnerRow, (vin, client_id)) is not None:
        raise ConflictError(f"vehicle {vin} is already bound to {client_id!r}")
    if len(owned_vins(session, tenant, client_id)) >= MAX_VEHICLES_PER_OWNER:
        raise ConflictError(f"client {client_id!r} holds {MAX_VEHICLES_PER_OWNER} vehicles, "
                            "the most one owner account may")
    now = now or datetime.now(UTC)
    row = VehicleOwnerRow(vin=vin, client_id=client_id, tenant_id=tenant, relation=chosen,
                          since=now)
    session.add(row)
    session.flush()
    record_audit(session, tenant=tenant, actor=actor, action="privacy.owner.add",
                 target=f"vehicle:{vin}", request_id=request_id, now=now,
                 details={"client_id": client_id, "relation": chosen})
    return _binding(row)


def remove_owner(
    session: Session, *, tenant: str, vin: str, client_id: str, actor: str,
    request_id: str | None = None,
) -> OwnerBinding:
    """Unbind ``client_id`` from ``vin`` (its grants stay in the ledger until withdrawn or
    expired); records ``privacy.owner.remove``.

    Raises:
        NotFoundError: no such binding in ``tenant``.
    """
    row = session.get(VehicleOwnerRow, (vin, client_id))
    if row is None or row.tenant_id != tenant:
        raise NotFoundError(f"vehicle {vin} is not bound to owner {client_id!r}")
    binding = _binding(row)
    session.delete(row)
    session.flush()
    record_audit(session, tenant=tenant, actor=actor, action="privacy.owner.remove",
                 target=f"vehicle:{vin}", request_id=request_id,
                 details={"client_id": client_id, "relation": binding.relation})
    return binding


def list_owners(session: Session, tenant: str, vin: str | None = None) -> list[OwnerBinding]:
    """The tenant's owner bindings (of ``vin`` only, when given), by VIN and client."""
    query = select(VehicleOwnerRow).where(VehicleOwnerRow.tenant_id == tenant)
    if vin is not None:
        query = query.where(VehicleOwnerRow.vin == vin)
    query = query.order_by(VehicleOwnerRow.vin, VehicleOwnerRow.client_id)
    return [_binding(r) for r in session.scalars(query)]


def owned_vins(session: Session, tenant: str, client_id: str) -> list[str]:
    """The VINs bound to owner account ``client_id``, sorted."""
    return list(session.scalars(
        select(VehicleOwnerRow.vin)
        .where(VehicleOwnerRow.tenant_id == tenant, VehicleOwnerRow.client_id == client_id)
        .order_by(VehicleOwnerRow.vin)))


def owner_binding(session: Session, tenant: str, client_id: str, vin: str) -> OwnerBinding:
    """The binding of ``vin`` to ``client_id``.

    Raises:
        NotFoundError: ``vin`` is not bound to this owner — worded like an unregistered
            vehicle, so an owner cannot probe other owners' or tenants' VINs.
    """
    row = session.get(VehicleOwnerRow, (vin, client_id))
    if row is None or row.tenant_id != tenant:
        raise NotFoundError(f"vehicle {vin} is not registered")
    return _binding(row)
