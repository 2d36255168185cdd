"""The privacy domain's tables: per-tenant pseudonym keys and per-vehicle consent."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from drivetrain.cloud.infra.models import Base, UTCDateTime


class PseudonymKeyRow(Base):
    """The secret key a tenant's vehicle ids are pseudonymised with in analytical data."""

    __tablename__ = "privacy_pseudonym_keys"

    tenant_id: Mapped[str] = mapped_column(
        ForeignKey("tenants.tenant_id", ondelete="RESTRICT"), primary_key=True
    )
    # 32 random bytes, base64; never leaves the privacy domain.
    key: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ConsentRow(Base):
    """Which privacy categories of a vehicle's data may be stored (its current consent)."""

    __tablename__ = "privacy_consent"

    vin: Mapped[str] = mapped_column(String(17), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(
        ForeignKey("tenants.tenant_id", ondelete="RESTRICT"), index=True
    )
    # Space-separated, sorted category names.
    categories: Mapped[str] = mapped_column(Text)
    # Where the consent came from: "driver-app", "contract", "operator"...
    source: Mapped[str] = mapped_column(String(80))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
