"""The ECU inventory of a twin: which ECUs a vehicle has, their hardware ids and software.

Operators set entries through the API or CLI (``source="api"``); the vehicle's own reports and
update records set them with ``source="reported"`` through :func:`record_ecu_inventory`.
Software versions are kept with a sort key (see ``values.version_key``) so that fleet queries
compare them as versions.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Literal

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from drivetrain.cloud.infra import record_audit
from drivetrain.cloud.twins.feed import TwinChange, queue_changes
from drivetrain.cloud.twins.models import ECUS, Ecu, EcuRow, TwinRow
from drivetrain.cloud.twins.registry import dialect_insert, twin_row
from drivetrain.cloud.twins.rows import ecu_of, load_ecus
from drivetrain.cloud.twins.values import (
    validate_ecu_name,
    validate_hardware_id,
    version_key,
)
from drivetrain.core.errors import BadInputError, NotFoundError

EcuSource = Literal["api", "reported"]
#: Most ECUs one inventory report may carry.
MAX_ECUS = 200


def _values(
    vin: str, ecu: str, hardware_id: str | None, software_version: str | None,
    source: EcuSource, now: datetime,
) -> dict[str, object]:
    validate_ecu_name(ecu)
    if hardware_id is None and software_version is None:
        raise BadInputError(
            f"ECU {ecu!r}: give a hardware id, a software version or both"
        )
    if hardware_id is not None:
        validate_hardware_id(hardware_id)
    key = None
    if software_version is not None:
        key = version_key(software_version, where=f"ECU {ecu!r} software version")
    return {
        "vin": vin, "ecu": ecu, "hardware_id": hardware_id, "software_version": software_version,
        "software_key": key, "source": source, "updated_at": now,
    }


def _upsert(session: Session, rows: list[dict[str, object]]) -> None:
    statement = dialect_insert(session, ECUS)
    statement = statement.on_conflict_do_update(
        index_elements=["vin", "ecu"],
        set_={
            name: getattr(statement.excluded, name)
            for name in ("hardware_id", "software_version", "software_key", "source", "updated_at")
        },
    )
    session.connection().execute(statement, rows)


def set_ecu(
    session: Session,
    vin: str,
    ecu: str,
    *,
    tenant: str,
    hardware_id: str | None,
    software_version: str | None,
    actor: str,
    request_id: str | None = None,
    now: datetime | None = None,
) -> Ecu:
    """Create or replace one ECU entry of ``vin``; records ``twins.ecu.set``.

    Raises:
        NotFoundError: no such vehicle in ``tenant``.
        BadInputError: a malformed ECU name, hardware id or software version, or neither given.
    """
    now = now or datetime.now(UTC)
    row = twin_row(session, vin, tenant=tenant)
    _upsert(session, [_values(vin, ecu, hardware_id, software_version, "api", now)])
    record_audit(
        session, tenant=row.tenant_id, actor=actor, action="twins.ecu.set",
        target=f"vehicle:{vin}",
        details={"ecu": ecu, "hardware_id": hardware_id, "software_version": software_version},
        request_id=request_id, now=now,
    )
    queue_changes(session, [TwinChange("ecu", vin, row.tenant_id, now, (ecu,))])
    stored = session.get(EcuRow, (vin, ecu))
    assert stored is not None
    session.refresh(stored)
    return ecu_of(stored)


def delete_ecu(
    session: Session, vin: str, ecu: str, *, tenant: str, actor: str,
    request_id: str | None = None,
) -> None:
    """Remove one ECU entry of ``vin``; records ``twins.ecu.delete``.

    Raises:
        NotFoundError: no such vehicle in ``tenant``, or it has no such ECU.
    """
    row = twin_row(session, vin, tenant=tenant)
    removed = session.execute(delete(EcuRow).where(EcuRow.vin == vin, EcuRow.ecu == ecu))
    if not removed.rowcount:  # type: ignore[attr-defined]
        raise NotFoundError(f"vehicle {vin} has no ECU {ecu!r}")
    record_audit(
        session, tenant=row.tenant_id, actor=actor, action="twins.ecu.delete",
        target=f"vehicle:{vin}", details={"ecu": ecu}, request_id=request_id,
    )
    queue_changes(session, [TwinChange("ecu", vin, row.tenant_id, datetime.now(UTC), (ecu,))])


def list_ecus(session: Session, vin: str, *, tenant: str) -> list[Ecu]:
    """The ECU inventory of ``vin``, by name.

    Raises:
        NotFoundError: no such vehicle in ``tenant``.
    """
    twin_row(session, vin, tenant=tenant)
    return load_ecus(session, vin)


def find_ecu(session: Session, vin: str, ecu: str) -> Ecu | None:
    """ECU ``ecu`` of ``vin``'s inventory, or None (no such entry, or no twin yet); reads
    only — for callers such as ingestion that must not create twins."""
    row = session.get(EcuRow, (vin, ecu))
    return None if row is None else ecu_of(row)


def record_ecu_inventory(
    session: Session,
    vin: str,
    ecus: Mapping[str, tuple[str | None, str | None]],
    *,
    now: datetime | None = None,
) -> int:
    """Store what a vehicle (or an update record) reports about its ECUs: name →
    (hardware id, software version), either may be None to keep the stored one. Returns how
    many entries were written.

    Raises:
        NotFoundError: the vehicle is not registered.
        BadInputError: too many ECUs, or a malformed name, hardware id or version (nothing is
            written then).
    """
    now = now or datetime.now(UTC)
    if len(ecus) > MAX_ECUS:
        raise BadInputError(f"ECU inventory of {vin}: {len(ecus)} ECUs; at most {MAX_ECUS}")
    row = twin_row(session, vin, tenant=None)
    stored = {
        r.ecu: r for r in session.scalars(select(EcuRow).where(EcuRow.vin == vin))
    }
    rows = []
    for name, (hardware_id, software_version) in ecus.items():
        known = stored.get(name)
        if known is not None:
            hardware_id = hardware_id if hardware_id is not None else known.hardware_id
            software_version = (
                software_version if software_version is not None else known.software_version
            )
        rows.append(_values(vin, name, hardware_id, software_version, "reported", now))
    if rows:
        _upsert(session, rows)
        queue_changes(
            session, [TwinChange("ecu", vin, row.tenant_id, now, tuple(sorted(ecus)))]
        )
    return len(rows)


def software_version_counts(
    session: Session, hardware_id: str, *, tenant: str | None, limit: int,
) -> list[tuple[str, int]]:
    """The ``limit`` software versions most often installed on ECUs built for
    ``hardware_id`` across ``tenant``'s twins (every tenant's when None), each with how many
    ECUs run it: most ECUs first, then by version name. ECUs with no reported version are
    not counted."""
    if limit <= 0:
        return []
    counted = func.count().label("ecus")
    statement = (
        select(EcuRow.software_version, counted)
        .where(EcuRow.hardware_id == hardware_id, EcuRow.software_version.is_not(None))
        .group_by(EcuRow.software_version)
        .order_by(counted.desc(), EcuRow.software_version)
        .limit(limit)
    )
    if tenant is not None:
        statement = statement.join(TwinRow, TwinRow.vin == EcuRow.vin).where(
            TwinRow.tenant_id == tenant
        )
    return [(str(version), int(n)) for version, n in session.execute(statement)]
