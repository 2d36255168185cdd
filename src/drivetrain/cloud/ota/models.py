"""The rollout tables: one row per rollout, one per targeted vehicle, one per UN R156 update
record.

A rollout row holds what was asked (ECU, images, query, wave policy, maintenance windows,
whether the update is optional) in columns, and its progress (status, waves started, where
each wave ends, reason, gate evidence) in columns too; the per-vehicle state is in
``ota_rollout_vehicles``. The dispatcher job that carries the notices is named by id only:
this domain never reads the dispatcher's tables.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from drivetrain.cloud.infra.models import Base, UTCDateTime


class RolloutRow(Base):
    """One rollout of one ECU's build (an image per hardware id) to a twin query's vehicles."""

    __tablename__ = "ota_rollouts"
    __table_args__ = (Index("ix_ota_rollouts_tenant_id_created_at", "tenant_id", "created_at"),)

    rollout_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.tenant_id", ondelete="RESTRICT"))
    name: Mapped[str] = mapped_column(String(120))
    ecu: Mapped[str] = mapped_column(String(64))
    images: Mapped[str] = mapped_column(Text)  # JSON list of image names, one per hardware id
    version: Mapped[str] = mapped_column(String(64))
    rxswin: Mapped[str] = mapped_column(String(120))
    query: Mapped[str] = mapped_column(Text)
    waves: Mapped[str] = mapped_column(Text)  # JSON list of cumulative fractions
    success_threshold: Mapped[float] = mapped_column(Float)
    error_threshold: Mapped[float] = mapped_column(Float)
    health_margin: Mapped[float] = mapped_column(Float)
    min_control: Mapped[int] = mapped_column(Integer)
    # Seconds the updated cars are observed after a wave's last install before the gate.
    observe_s: Mapped[float] = mapped_column(Float, server_default="3600")
    # JSON list in the dispatcher's MaintenanceWindow form (RolloutPolicy.to_dict)
    maintenance_windows: Mapped[str] = mapped_column(Text)
    optional: Mapped[bool] = mapped_column(Boolean)
    status: Mapped[str] = mapped_column(String(16))
    wave: Mapped[int] = mapped_column(Integer)
    wave_ends: Mapped[str] = mapped_column(Text)  # JSON list: where each started wave ends
    reason: Mapped[str] = mapped_column(Text)
    evidence: Mapped[str] = mapped_column(Text)  # JSON: the health gate's evidence
    job_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    # The last ``ota.manifest`` vehicle event taken in (ingest's event id).
    manifest_cursor: Mapped[int] = mapped_column(BigInteger)
    created_by: Mapped[str] = mapped_column(String(120))
    approved_by: Mapped[str | None] = mapped_column(String(120), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class RolloutVehicleRow(Base):
    """One targeted vehicle of a rollout: its place in the target order and its state."""

    __tablename__ = "ota_rollout_vehicles"
    __table_args__ = (Index("ix_ota_rollout_vehicles_vin", "vin"),)

    rollout_id: Mapped[str] = mapped_column(
        ForeignKey("ota_rollouts.rollout_id", ondelete="CASCADE"), primary_key=True)
    vin: Mapped[str] = mapped_column(String(17), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    wave: Mapped[int] = mapped_column(Integer)  # 0: not in a started wave yet
    state: Mapped[str] = mapped_column(String(16))  # "waiting" or a VehicleState
    detail: Mapped[str] = mapped_column(Text)
    software_before: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class UpdateRecordRow(Base):
    """One vehicle's update as UN R156 §7.2 asks it to be kept."""

    __tablename__ = "ota_update_records"
    __table_args__ = (
        Index("ix_ota_update_records_tenant_id_vin", "tenant_id", "vin"),
        Index("ix_ota_update_records_rollout_id", "rollout_id"),
    )

    record_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.tenant_id", ondelete="RESTRICT"))
    rollout_id: Mapped[str] = mapped_column(String(40))
    vin: Mapped[str] = mapped_column(String(17))
    campaign: Mapped[str] = mapped_column(String(120))
    software_before: Mapped[str] = mapped_column(String(64))
    software_after: Mapped[str] = mapped_column(String(64))
    rxswin: Mapped[str] = mapped_column(String(120))
    preconditions: Mapped[str] = mapped_column(Text)
    result: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime] = mapped_column(UTCDateTime())


class VehicleKeyRow(Base):
    """A public key that signs a vehicle's version reports: its primary's (``primary``) or
    one ECU's, registered at the factory; ``last_counter`` is the highest report counter
    accepted (a lower or equal one is a replay)."""

    __tablename__ = "ota_vehicle_keys"

    vin: Mapped[str] = mapped_column(String(17), primary_key=True)
    ecu_serial: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.tenant_id", ondelete="RESTRICT"))
    primary: Mapped[bool] = mapped_column(Boolean)
    key: Mapped[str] = mapped_column(Text)  # securesystemslib Key.to_dict(), JSON
    last_counter: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
