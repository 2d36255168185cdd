"""Twin rows and their metadata, copied from the fleet registry through its public functions.

A twin is created the first time anything touches its vehicle (a report, a desired write, a
read) and for every registered vehicle by :func:`sync_twins`, which fleet queries run first
whenever the registry and the twins disagree on how many vehicles a tenant has.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import Engine, func, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from drivetrain.cloud import fleet
from drivetrain.cloud.infra import READ_ONLY_INFO
from drivetrain.cloud.twins.models import TWINS, TwinRow
from drivetrain.core.errors import NotFoundError

_PAGE = 1000
#: Longest a fleet query may miss a vehicle registered meanwhile but never touched, seconds.
SYNC_INTERVAL_S: Final = 5.0
# When each tenant's twins were last compared with the registry, per engine (a cache: losing
# it only costs one more comparison).
_LAST_SYNC: weakref.WeakKeyDictionary[Engine, dict[str, float]] = weakref.WeakKeyDictionary()
#: VINs per ``IN (...)`` list, well below SQLite's limit on bound parameters.
IN_CHUNK = 900


def dialect_insert(session: Session, table: Any) -> Any:
    """An ``INSERT`` on ``table`` with the engine's ``ON CONFLICT`` support (SQLite or
    PostgreSQL: both spell it the same way)."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def _insert_missing(session: Session, rows: list[dict[str, object]]) -> None:
    # ON CONFLICT DO NOTHING: a concurrent writer may create the same twin first.
    statement = dialect_insert(session, TWINS).on_conflict_do_nothing(
        index_elements=["vin"]
    )
    session.connection().execute(statement, rows)


def _row_values(vehicle: fleet.Vehicle, now: datetime) -> dict[str, object]:
    return {
        "vin": vehicle.vin,
        "tenant_id": vehicle.tenant,
        "model": vehicle.model,
        "region": vehicle.region,
        "owner": vehicle.owner,
        "desired_version": 0,
        "send_pending": False,
        "sent_seq": 0,
        "created_at": now,
    }


def _not_found(vin: str) -> NotFoundError:
    return NotFoundError(f"vehicle {vin} has no twin: it is not registered")


def twin_row(session: Session, vin: str, *, tenant: str | None) -> TwinRow:
    """The twin of ``vin`` (created from the fleet registry if it has none yet).

    With ``tenant``, a twin of another tenant answers exactly as an unknown VIN does. On a
    read-replica session nothing is created: a vehicle without a twin there answers as not
    found (the caller retries on the primary).

    Raises:
        BadInputError: ``vin`` is not a VIN.
        NotFoundError: the vehicle is not registered, or belongs to another tenant.
    """
    fleet.validate_vin(vin)
    row = session.get(TwinRow, vin)
    if row is None:
        if session.info.get(READ_ONLY_INFO):
            raise _not_found(vin)
        try:
            vehicle = fleet.get_vehicle(session, vin, tenant=tenant)
        except NotFoundError:
            raise _not_found(vin) from None
        _insert_missing(session, [_row_values(vehicle, datetime.now(UTC))])
        row = session.get(TwinRow, vin)
        assert row is not None
    if tenant is not None and row.tenant_id != tenant:
        raise _not_found(vin)
    return row


# PostgreSQL: one primary-key probe per VIN, in the one partition its hash names. A plain
# ``vin IN (...)`` of a batch's 250 VINs reaches every hash partition, and the planner then
# scans each of them whole against the list (measured at 100,000 twins: 45-75 ms a batch,
# twice per reported batch); the LATERAL subquery (kept a subquery by OFFSET 0) is a nested
# loop of index probes pruned at run time (2-12 ms).
_HOMES_PG: Final = text(
    "SELECT t.vin, t.tenant_id, t.region FROM unnest(CAST(:vins AS varchar[])) AS v(vin) "
    "CROSS JOIN LATERAL (SELECT twins.vin, twins.tenant_id, twins.region FROM twins "
    "WHERE twins.vin = v.vin OFFSET 0) AS t"
)


def twin_homes(session: Session, vins: Iterable[str]) -> dict[str, tuple[str, str]]:
    """(tenant, region) of the twins among ``vins`` (VINs without a twin are left out)."""
    wanted = sorted(set(vins))
    homes: dict[str, tuple[str, str]] = {}
    if wanted and session.get_bind().dialect.name == "postgresql":
        rows = session.execute(_HOMES_PG, {"vins": wanted})
        return {vin: (tenant, region) for vin, tenant, region in rows}
    for start in range(0, len(wanted), IN_CHUNK):
        chunk = wanted[start : start + IN_CHUNK]
        query = select(TwinRow.vin, TwinRow.tenant_id, TwinRow.region).where(TwinRow.vin.in_(chunk))
        homes.update({vin: (tenant, region) for vin, tenant, region in session.execute(query)})
    return homes


def ensure_homes(session: Session, vins: Iterable[str]) -> dict[str, tuple[str, str]]:
    """(tenant, region) of each VIN in ``vins``, creating missing twins from the registry.

    Raises:
        BadInputError: a malformed VIN.
        NotFoundError: a VIN that is not registered (nothing is created then).
    """
    wanted = sorted({fleet.validate_vin(vin) for vin in vins})
    homes = twin_homes(session, wanted)
    missing = [vin for vin in wanted if vin not in homes]
    if missing:
        now = datetime.now(UTC)
        # One registry query per chunk (a worker meets a fleet's vehicles for the first time
        # a micro-batch at a time), not one per vehicle.
        registered = fleet.get_vehicles(session, missing)
        unknown = [vin for vin in missing if vin not in registered]
        if unknown:
            raise _not_found(unknown[0])
        vehicles = [registered[vin] for vin in missing]
        _insert_missing(session, [_row_values(v, now) for v in vehicles])
        homes.update({v.vin: (v.tenant, v.region) for v in vehicles})
    return homes


def ensure_twins(session: Session, vins: Iterable[str]) -> dict[str, str]:
    """Tenant of each VIN in ``vins``, creating missing twins from the registry.

    Raises:
        BadInputError: a malformed VIN.
        NotFoundError: a VIN that is not registered (nothing is created then).
    """
    return {vin: tenant for vin, (tenant, _region) in ensure_homes(session, vins).items()}


def twin_count(session: Session, tenant: str) -> int:
    """Number of twins of ``tenant``."""
    query = select(func.count()).select_from(TwinRow).where(TwinRow.tenant_id == tenant)
    return int(session.scalar(query) or 0)


def sync_twins(session: Session, tenant: str, *, force: bool = False) -> int:
    """Create twins for ``tenant``'s registered vehicles that have none; returns how many.

    ``force`` skips the interval below (writes by query use it). It compares the registry's vehicle count with the twin count and walks the registry only
    when they differ. The comparison costs two counts (tens of milliseconds at 100,000
    vehicles), so without ``force`` it runs at most once per :data:`SYNC_INTERVAL_S` per
    tenant and database in this process: a vehicle registered since, and not yet touched by
    a report or a read, may be missing from fleet queries for that long.
    """
    engine = session.get_bind()
    checks = _LAST_SYNC.setdefault(engine, {})  # type: ignore[arg-type]
    checked = time.monotonic()
    if not force and checked - checks.get(tenant, -SYNC_INTERVAL_S) < SYNC_INTERVAL_S:
        return 0
    checks[tenant] = checked
    # Twins are only ever made from registered vehicles and never change tenant, so equal
    # counts mean equal sets.
    registered = sum(fleet.count_vehicles(session, tenant=tenant).values())
    if registered == twin_count(session, tenant):
        return 0
    now = datetime.now(UTC)
    created = 0
    after: str | None = None
    while True:
        vehicles = fleet.list_vehicles(session, tenant=tenant, limit=_PAGE, after_vin=after)
        if not vehicles:
            return created
        vins = [v.vin for v in vehicles]
        have = set(session.scalars(select(TwinRow.vin).where(TwinRow.vin.in_(vins))))
        new = [_row_values(v, now) for v in vehicles if v.vin not in have]
        if new:
            _insert_missing(session, new)
            created += len(new)
        after = vins[-1]
