"""The fleet registry's public functions: register vehicles, look them up, find their keys.

The registry is the cloud's record of which vehicles exist, which tenant owns each, which
data-residency region it belongs to, and the public key its messages must verify with.
Ingestion looks keys up here; twins build their metadata from it. Every function takes an
open session (see ``Database.session``); each change records an audit entry.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from drivetrain.cloud.fleet.models import VehicleRow
from drivetrain.cloud.infra import get_tenant, record_audit
from drivetrain.core.crypto import VerifyKey
from drivetrain.core.errors import BadInputError, ConflictError, NotFoundError
from drivetrain.core.regions import Region, parse_region
from drivetrain.core.vin import is_vin

_MODEL = re.compile(r"[a-z0-9][a-z0-9_.-]{0,79}")
VehicleStatus = Literal["active", "retired"]


@dataclass(frozen=True, slots=True)
class Vehicle:
    """A registered vehicle as the registry knows it."""

    vin: str
    tenant: str
    model: str
    region: Region
    owner: str | None
    verify_key: VerifyKey
    status: VehicleStatus
    created_at: datetime

    @property
    def key_id(self) -> str:
        return self.verify_key.key_id


def validate_vin(vin: str) -> str:
    """Return ``vin`` if it is a well-formed VIN.

    Raises:
        BadInputError: not 17 characters of digits and capitals without I, O and Q.
    """
    if not is_vin(vin):
        raise BadInputError(
            f"vin {vin!r} is not a VIN; expected 17 digits/capital letters without I, O, Q"
        )
    return vin


def _vehicle(row: VehicleRow) -> Vehicle:
    return Vehicle(
        vin=row.vin,
        tenant=row.tenant_id,
        model=row.model,
        region=parse_region(row.region),
        owner=row.owner,
        verify_key=VerifyKey.from_base64(row.public_key),
        status="retired" if row.status == "retired" else "active",
        created_at=row.created_at,
    )


def register_vehicle(
    session: Session,
    *,
    vin: str,
    tenant: str,
    model: str,
    region: str,
    verify_key: VerifyKey,
    owner: str | None = None,
    actor: str,
    now: datetime | None = None,
) -> Vehicle:
    """Register a vehicle and its public key; records ``fleet.vehicle.register``.

    Raises:
        BadInputError: malformed VIN, model name or region.
        NotFoundError: the tenant does not exist.
        ConflictError: the VIN is already registered (re-keying is ``rotate_vehicle_key``).
    """
    validate_vin(vin)
    if not _MODEL.fullmatch(model):
        raise BadInputError(f"model {model!r} is not a model id; expected e.g. 'compact-bev'")
    region_code = parse_region(region)
    get_tenant(session, tenant)  # NotFoundError when there is none
    if session.get(VehicleRow, vin) is not None:
        raise ConflictError(f"vehicle {vin} is already registered")
    row = VehicleRow(
        vin=vin,
        tenant_id=tenant,
        model=model,
        region=region_code,
        owner=owner,
        public_key=verify_key.to_base64(),
        key_id=verify_key.key_id,
        status="active",
        created_at=now or datetime.now(UTC),
    )
    session.add(row)
    session.flush()
    record_audit(
        session, tenant=tenant, actor=actor, action="fleet.vehicle.register",
        target=f"vehicle:{vin}",
        details={"model": model, "region": region_code, "key_id": verify_key.key_id},
        now=now,
    )
    return _vehicle(row)


def rotate_vehicle_key(
    session: Session, vin: str, verify_key: VerifyKey, *, actor: str, now: datetime | None = None
) -> Vehicle:
    """Replace a vehicle's public key; messages signed by the old key are refused from now.

    Raises:
        NotFoundError: the VIN is not registered.
    """
    row = _row(session, vin)
    old = row.key_id
    row.public_key, row.key_id = verify_key.to_base64(), verify_key.key_id
    session.flush()
    record_audit(
        session, tenant=row.tenant_id, actor=actor, action="fleet.vehicle.rotate_key",
        target=f"vehicle:{vin}", details={"old_key_id": old, "key_id": verify_key.key_id},
        now=now,
    )
    return _vehicle(row)


def retire_vehicle(session: Session, vin: str, *, actor: str, now: datetime | None = None) -> Vehicle:
    """Mark a vehicle retired: its messages are refused from now on.

    Raises:
        NotFoundError: the VIN is not registered.
    """
    row = _row(session, vin)
    row.status = "retired"
    session.flush()
    record_audit(
        session, tenant=row.tenant_id, actor=actor, action="fleet.vehicle.retire",
        target=f"vehicle:{vin}", now=now,
    )
    return _vehicle(row)


def _row(session: Session, vin: str) -> VehicleRow:
    row = session.get(VehicleRow, validate_vin(vin))
    if row is None:
        raise NotFoundError(f"vehicle {vin} is not registered")
    return row


def get_vehicle(session: Session, vin: str, *, tenant: str | None = None) -> Vehicle:
    """The registered vehicle ``vin``; with ``tenant``, only if that tenant owns it.

    Raises:
        NotFoundError: not registered, or owned by another tenant (the same answer, so a
            caller cannot probe other tenants' VINs).
    """
    row = _row(session, vin)
    if tenant is not None and row.tenant_id != tenant:
        raise NotFoundError(f"vehicle {vin} is not registered")
    return _vehicle(row)


#: VINs per ``IN (...)`` query of :func:`get_vehicles`, well under every engine's limit.
_VIN_CHUNK = 500


def get_vehicles(session: Session, vins: Iterable[str]) -> dict[str, Vehicle]:
    """The registered vehicles among ``vins`` by VIN, in one query per 500 VINs (strings that
    are not VINs, and VINs not registered, are simply absent from the answer)."""
    wanted = sorted({vin for vin in vins if is_vin(vin)})
    found: dict[str, Vehicle] = {}
    for start in range(0, len(wanted), _VIN_CHUNK):
        chunk = wanted[start : start + _VIN_CHUNK]
        for row in session.scalars(select(VehicleRow).where(VehicleRow.vin.in_(chunk))):
            found[row.vin] = _vehicle(row)
    return found


def list_vehicles(
    session: Session,
    *,
    tenant: str | None = None,
    region: str | None = None,
    limit: int = 1000,
    after_vin: str | None = None,
) -> list[Vehicle]:
    """Registered vehicles by VIN, optionally of one tenant/region, paginated by ``after_vin``."""
    query = select(VehicleRow).order_by(VehicleRow.vin).limit(limit)
    if tenant is not None:
        query = query.where(VehicleRow.tenant_id == tenant)
    if region is not None:
        query = query.where(VehicleRow.region == parse_region(region))
    if after_vin is not None:
        query = query.where(VehicleRow.vin > after_vin)
    return [_vehicle(r) for r in session.scalars(query)]


def count_vehicles(session: Session, *, tenant: str | None = None) -> dict[str, int]:
    """Number of registered vehicles per region (of one tenant, or all)."""
    query = select(VehicleRow.region, func.count()).group_by(VehicleRow.region)
    if tenant is not None:
        query = query.where(VehicleRow.tenant_id == tenant)
    return {region: count for region, count in session.execute(query)}
