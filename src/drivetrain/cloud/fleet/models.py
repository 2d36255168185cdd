"""The fleet registry's table: one row per provisioned vehicle."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from drivetrain.cloud.infra.models import Base, UTCDateTime


class VehicleRow(Base):
    """A provisioned vehicle: identity, tenant, model, region and its signing key."""

    __tablename__ = "fleet_vehicles"

    vin: Mapped[str] = mapped_column(String(17), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(
        ForeignKey("tenants.tenant_id", ondelete="RESTRICT"), index=True
    )
    model: Mapped[str] = mapped_column(String(80))
    region: Mapped[str] = mapped_column(String(8), index=True)
    owner: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # Raw Ed25519 public key, base64 (44 chars), and its 16-hex-digit id.
    public_key: Mapped[str] = mapped_column(String(64))
    key_id: Mapped[str] = mapped_column(String(16))
    # "active" | "retired": a retired vehicle's messages are refused.
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
