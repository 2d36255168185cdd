"""Reading what the activity consumers counted, per vehicle."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from drivetrain.cloud.streams.models import VehicleActivityRow


@dataclass(frozen=True)
class VehicleActivity:
    """A vehicle's telemetry batches in the lake and twin changes, as announced."""

    vin: str
    lake_batches: int
    lake_samples: int
    last_lake_at: datetime | None
    twin_changes: int
    last_twin_at: datetime | None


def vehicle_activity(session: Session, *, tenant: str) -> list[VehicleActivity]:
    """Every vehicle of ``tenant`` the consumers have seen, by VIN."""
    rows = session.scalars(
        select(VehicleActivityRow)
        .where(VehicleActivityRow.tenant_id == tenant)
        .order_by(VehicleActivityRow.vin)
    )
    return [
        VehicleActivity(
            r.vin, r.lake_batches, r.lake_samples, r.last_lake_at, r.twin_changes, r.last_twin_at
        )
        for r in rows
    ]
