"""The stream consumers' tables: the ledger of messages applied, per consumer group, and
the per-vehicle activity the telemetry and twin consumers keep."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from drivetrain.cloud.infra.models import Base, UTCDateTime


class StreamAppliedRow(Base):
    """One backbone message a consumer group has applied: written in the transaction of the
    message's effect, so a redelivered message finds it and is skipped."""

    __tablename__ = "stream_applied"
    __table_args__ = (Index("ix_stream_applied_applied_at", "applied_at"),)

    group_name: Mapped[str] = mapped_column(String(80), primary_key=True)
    message_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    applied_at: Mapped[datetime] = mapped_column(UTCDateTime())


class VehicleActivityRow(Base):
    """Per vehicle: telemetry batches committed to the lake and twin changes, as the backbone
    announced them (counted once each)."""

    __tablename__ = "vehicle_activity"

    tenant_id: Mapped[str] = mapped_column(String(63), primary_key=True)
    vin: Mapped[str] = mapped_column(String(17), primary_key=True)
    lake_batches: Mapped[int] = mapped_column(BigInteger, default=0)
    lake_samples: Mapped[int] = mapped_column(BigInteger, default=0)
    last_lake_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    twin_changes: Mapped[int] = mapped_column(BigInteger, default=0)
    last_twin_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
