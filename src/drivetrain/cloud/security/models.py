"""Security operations' tables: incidents (one per vehicle and signature while open), the
analyst's actions on them, and the cursor over the vehicle events already correlated."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from drivetrain.cloud.infra.models import Base, UTCDateTime


class SecurityIncidentRow(Base):
    """One vehicle's incident: every security event of one signature while it is open."""

    __tablename__ = "security_incidents"
    __table_args__ = (
        Index("ix_security_incidents_tenant_id_signature_status", "tenant_id", "signature", "status"),
        Index("ix_security_incidents_tenant_id_vin", "tenant_id", "vin"),
    )

    incident_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.tenant_id", ondelete="RESTRICT"))
    vin: Mapped[str] = mapped_column(String(17))
    model: Mapped[str] = mapped_column(String(80))
    region: Mapped[str] = mapped_column(String(16))
    signature: Mapped[str] = mapped_column(String(200))
    sensor: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(16))  # open | acknowledged | resolved
    severity: Mapped[str] = mapped_column(String(16))
    assignee: Mapped[str | None] = mapped_column(String(120), nullable=True)
    event_count: Mapped[int] = mapped_column(BigInteger)
    first_ns: Mapped[int] = mapped_column(BigInteger)
    last_ns: Mapped[int] = mapped_column(BigInteger)
    max_score: Mapped[float] = mapped_column(Float)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SecurityIncidentActionRow(Base):
    """What an analyst (or the correlator) did to an incident, in order."""

    __tablename__ = "security_incident_actions"

    action_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    incident_id: Mapped[int] = mapped_column(
        ForeignKey("security_incidents.incident_id", ondelete="CASCADE"), index=True
    )
    actor: Mapped[str] = mapped_column(String(120))
    action: Mapped[str] = mapped_column(String(24))
    text: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UTCDateTime())


class SecurityCursorRow(Base):
    """Per tenant, the last vehicle event the correlator has read."""

    __tablename__ = "security_cursors"

    tenant_id: Mapped[str] = mapped_column(
        ForeignKey("tenants.tenant_id", ondelete="RESTRICT"), primary_key=True
    )
    last_event_id: Mapped[int] = mapped_column(BigInteger)


class SecurityResponseRow(Base):
    """A response playbook run against the vehicles of an incident signature."""

    __tablename__ = "security_responses"
    __table_args__ = (Index("ix_security_responses_tenant_id_status", "tenant_id", "status"),)

    response_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.tenant_id", ondelete="RESTRICT"))
    signature: Mapped[str] = mapped_column(String(200))
    playbook: Mapped[str] = mapped_column(String(40))
    args: Mapped[str] = mapped_column(Text)  # canonical JSON object
    vins: Mapped[str] = mapped_column(Text)  # JSON list
    status: Mapped[str] = mapped_column(String(16))  # proposed | executed | refused
    requested_by: Mapped[str] = mapped_column(String(120))
    decided_by: Mapped[str | None] = mapped_column(String(120), nullable=True)
    job_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
