"""Reading twins out of their tables into domain types (shared by the service's modules)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from drivetrain.cloud.twins.desired_personal import (
    REJECTED_IN_REGION,
    desired_reasons,
    desired_values,
)
from drivetrain.cloud.twins.models import (
    DesiredItem,
    DesiredRow,
    Ecu,
    EcuRow,
    ItemStatus,
    PersonalReportedRow,
    ReportedRow,
    ReportedValue,
    Twin,
    TwinRow,
)
from drivetrain.cloud.twins.personal import is_personal_path, personal_values
from drivetrain.cloud.twins.values import decode_value, from_ns, render_reported
from drivetrain.core.vss import Catalog, builtin_catalog


def item_of(
    row: DesiredRow, stored: tuple[str, float | None, str | None] | None = None,
    reason: str | None = None,
) -> DesiredItem:
    """The domain item of a stored desired row (``stored``: its value, (kind, num, text), and
    ``reason``: the vehicle's words, both from the region store where the path is
    personal)."""
    value = decode_value(*stored) if stored is not None else decode_value(
        row.kind, row.num, row.text)
    assert value is not None  # desired values are never empty
    status: ItemStatus = row.status  # type: ignore[assignment]  # written only by this domain
    return DesiredItem(
        path=row.path,
        value=value,
        set_version=row.set_version,
        set_at=row.set_at,
        set_by=row.set_by,
        expires_at=row.expires_at,
        status=status,
        status_at=row.status_at,
        reason=reason if reason is not None else row.reason,
    )


def load_items(session: Session, vin: str) -> list[DesiredItem]:
    """Every desired item of ``vin``, by path."""
    query = select(DesiredRow).where(DesiredRow.vin == vin).order_by(DesiredRow.path)
    rows = list(session.scalars(query))
    personal = [row.path for row in rows if is_personal_path(row.path)]
    stored = desired_values(session, [vin], personal) if personal else {}
    rejected = [row.path for row in rows if row.reason == REJECTED_IN_REGION]
    reasons = desired_reasons(session, vin, rejected) if rejected else {}
    return [item_of(row, stored.get((vin, row.path)), reasons.get(row.path)) for row in rows]


def ecu_of(row: EcuRow) -> Ecu:
    """The domain ECU of a stored ECU row."""
    return Ecu(
        name=row.ecu,
        hardware_id=row.hardware_id,
        software_version=row.software_version,
        source=row.source,
        updated_at=row.updated_at,
    )


def load_ecus(session: Session, vin: str) -> list[Ecu]:
    """The ECU inventory of ``vin``, by name."""
    query = select(EcuRow).where(EcuRow.vin == vin).order_by(EcuRow.ecu)
    return [ecu_of(row) for row in session.scalars(query)]


def load_twin(session: Session, row: TwinRow, catalog: Catalog | None = None) -> Twin:
    """The full twin of a twin row: reported values, desired items and ECUs."""
    catalog = catalog or builtin_catalog()
    reported_rows: list[ReportedRow | PersonalReportedRow] = list(session.scalars(
        select(ReportedRow).where(ReportedRow.vin == row.vin).order_by(ReportedRow.path)
    ))
    # The personal values from the vehicle's region store (personal.py), merged by path.
    reported_rows += personal_values(session, row.vin, row.region)
    reported_rows.sort(key=lambda r: r.path)
    reported = {
        r.path: ReportedValue(
            value=render_reported(catalog, r.path, r.kind, r.num, r.text),
            ts=from_ns(r.ts_ns),
            updated_at=from_ns(r.updated_ns),
        )
        for r in reported_rows
    }
    return Twin(
        vin=row.vin,
        tenant=row.tenant_id,
        model=row.model,
        region=row.region,
        owner=row.owner,
        version=row.desired_version,
        desired_updated_at=row.desired_updated_at,
        reported=reported,
        items=tuple(load_items(session, row.vin)),
        ecus=tuple(load_ecus(session, row.vin)),
        sent_version=row.sent_version,
        sent_at=row.sent_at,
        acked_version=row.acked_version,
        acked_at=row.acked_at,
    )
