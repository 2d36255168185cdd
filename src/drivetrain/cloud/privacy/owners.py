"""Who holds a vehicle's EU Data Act rights: owner accounts bound to vehicles.

An owner account is an OAuth2 client of role ``owner`` in the vehicle's tenant; the operator
binds it to each vehicle it owns (or leases, or runs as a fleet account). An owner sees only
the vehicles bound to it: any other VIN — another owner's, another tenant's, or none — answers
404 exactly like an unregistered one. Binding and unbinding are audited
(``privacy.owner.add``, ``privacy.owner.remove``).

A binding says which person holds which vehicle: it is kept in the vehicle's region store
(``privacy_vehicle_owners`` there). Reads by vehicle ask its store; reads by owner account
ask every store (a fleet account may hold vehicles of several regions).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Literal, get_args

from sqlalchemy import select
from sqlalchemy.orm import Session

from drivetrain.cloud.fleet import get_vehicle
from drivetrain.cloud.infra import Role, get_client, record_audit
from drivetrain.cloud.infra.region_stores import (
    check_residency,
    every_store_session,
    region_session,
)
from drivetrain.cloud.privacy.models import VehicleOwnerRow
from drivetrain.cloud.privacy.regional import audit_vehicle, vehicle_regions
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


def _stores_of(session: Session, vin: str) -> list[Session]:
    """Where ``vin``'s bindings are: its region store, then the state database (rows written
    before bindings were kept per region, until ``db upgrade`` moves them); none for a VIN
    the registry does not know."""
    region = vehicle_regions(session, [vin]).get(vin)
    if region is None:
        return []
    store = region_session(session, region)
    return [store] if store is session else [store, session]


def _row(session: Session, vin: str, client_id: str) -> tuple[Session, VehicleOwnerRow] | None:
    for store in _stores_of(session, vin):
        row = store.get(VehicleOwnerRow, (vin, client_id))
        if row is not None:
            return store, row
    return None


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
    if _row(session, vin, client_id) is not None:
        raise ConflictError(f"vehicle {vin} is already bound to {client_id!r}")
    if len(owned_vins(session, tenant, client_id)) >= MAX_VEHICLES_PER_OWNER:
        raise ConflictError(f"client {client_id!r} holds {MAX_VEHICLES_PER_OWNER} vehicles, "
                            "the most one owner account may")
    now = now or datetime.now(UTC)
    row = VehicleOwnerRow(vin=vin, client_id=client_id, tenant_id=tenant, relation=chosen,
                          since=now)
    store = _stores_of(session, vin)[0]  # registered (get_vehicle above): its region store
    check_residency(store, vehicle_regions(session, [vin]).values())
    store.add(row)
    store.flush()
    record_audit(session, tenant=tenant, actor=actor, action="privacy.owner.add",
                 target=f"vehicle:{vin}", request_id=request_id, now=now,
                 details={"client_id": client_id, "relation": chosen},
                 vehicle=audit_vehicle(session, vin))
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
    found = _row(session, vin, client_id)
    if found is None or found[1].tenant_id != tenant:
        raise NotFoundError(f"vehicle {vin} is not bound to owner {client_id!r}")
    store, row = found
    binding = _binding(row)
    store.delete(row)
    store.flush()
    record_audit(session, tenant=tenant, actor=actor, action="privacy.owner.remove",
                 target=f"vehicle:{vin}", request_id=request_id,
                 details={"client_id": client_id, "relation": binding.relation},
                 vehicle=audit_vehicle(session, vin))
    return binding


def list_owners(session: Session, tenant: str, vin: str | None = None) -> list[OwnerBinding]:
    """The tenant's owner bindings (of ``vin`` only, when given), by VIN and client."""
    query = select(VehicleOwnerRow).where(VehicleOwnerRow.tenant_id == tenant)
    if vin is not None:
        query = query.where(VehicleOwnerRow.vin == vin)
    stores = every_store_session(session) if vin is None else _stores_of(session, vin)
    found = {(r.vin, r.client_id): _binding(r) for s in stores for r in s.scalars(query)}
    return [found[key] for key in sorted(found)]


def owned_vins(session: Session, tenant: str, client_id: str) -> list[str]:
    """The VINs bound to owner account ``client_id`` in every store, sorted."""
    query = select(VehicleOwnerRow.vin).where(
        VehicleOwnerRow.tenant_id == tenant, VehicleOwnerRow.client_id == client_id)
    return sorted({vin for store in every_store_session(session)
                   for vin in store.scalars(query)})


def owner_binding(session: Session, tenant: str, client_id: str, vin: str) -> OwnerBinding:
    """The binding of ``vin`` to ``client_id``.

    Raises:
        NotFoundError: ``vin`` is not bound to this owner — worded like an unregistered
            vehicle, so an owner cannot probe other owners' or tenants' VINs.
    """
    found = _row(session, vin, client_id)
    if found is None or found[1].tenant_id != tenant:
        raise NotFoundError(f"vehicle {vin} is not registered")
    return _binding(found[1])
