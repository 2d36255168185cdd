"""The dispatcher's tables — jobs, one delivery per (job, vehicle, send), the ack cursor — and
the domain types the service returns.

A **job** holds what to send (message kind, channel and JSON body), whom (the query that
selected the vehicles, kept for the record), how (its rollout policy, a JSON document written
by ``RolloutPolicy.to_dict``) and its life cycle. Its **deliveries** are the vehicles: one row
per vehicle and send, with a body of its own where the job's owner gave one (a collection
campaign sends an install to one vehicle and a withdrawal to another). Mutable rollout state
(the token bucket) is in columns, never in the policy document.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from drivetrain.cloud.commands.machine import DeliveryCounts, DeliveryState, JobStatus
from drivetrain.cloud.commands.policy import RolloutPolicy
from drivetrain.cloud.infra.models import Base, UTCDateTime


class JobRow(Base):
    """One job: a payload, its targets' rollout policy and its life cycle."""

    __tablename__ = "dispatch_jobs"
    __table_args__ = (
        Index("ix_dispatch_jobs_tenant_id_created_at", "tenant_id", "created_at"),
        Index("ix_dispatch_jobs_status", "status"),
    )

    job_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.tenant_id", ondelete="RESTRICT"))
    # "command" (one vehicle), "job" (a query-selected group), or the owning domain's label
    # ("campaign", "ota", ...): who created it and who may change it.
    origin: Mapped[str] = mapped_column(String(40))
    # What the owner calls it: the command name, a campaign id...
    name: Mapped[str] = mapped_column(String(120))
    message_kind: Mapped[int] = mapped_column(Integer)
    channel: Mapped[str] = mapped_column(String(40))
    body: Mapped[str] = mapped_column(Text)  # JSON object
    query: Mapped[str | None] = mapped_column(Text, nullable=True)
    policy: Mapped[str] = mapped_column(Text)  # RolloutPolicy.to_dict(), JSON
    continuous: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_by: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    start_at: Mapped[datetime] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # The rollout's token bucket (see machine.refill_tokens) and when it was last filled.
    tokens: Mapped[float] = mapped_column(Float, default=0.0)
    tokens_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class DeliveryRow(Base):
    """One vehicle's copy of a job's message and what became of it."""

    __tablename__ = "dispatch_deliveries"
    __table_args__ = (
        Index("ix_dispatch_deliveries_job_id_state", "job_id", "state"),
        Index("ix_dispatch_deliveries_vin_channel_state", "vin", "channel", "state"),
        Index("ix_dispatch_deliveries_message_id", "message_id"),
        Index("ix_dispatch_deliveries_state_deadline_at", "state", "deadline_at"),
        Index("ix_dispatch_deliveries_clear_pending", "clear_pending"),
    )

    delivery_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("dispatch_jobs.job_id", ondelete="CASCADE")
    )
    tenant_id: Mapped[str] = mapped_column(String(63))
    vin: Mapped[str] = mapped_column(String(17))
    channel: Mapped[str] = mapped_column(String(40))
    # The owner's label for this send ("install", "withdraw"...); "" for plain jobs.
    label: Mapped[str] = mapped_column(String(32), default="")
    body: Mapped[str | None] = mapped_column(Text, nullable=True)  # None: the job's body
    # The payload version an acknowledgement must name (a campaign's wire version), if any.
    version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    message_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    queued_at: Mapped[datetime] = mapped_column(UTCDateTime())
    not_before: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    deadline_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # Why it failed, timed out, was cancelled, or is not being delivered; the vehicle's detail.
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    detail: Mapped[str | None] = mapped_column(Text, nullable=True)
    # The vehicle event (ack) that settled it: re-reading that event changes nothing.
    ack_event_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # True when the vehicle's retained slot still holds this message after it became final
    # (timed out, cancelled): the dispatcher clears the slot so a vehicle reconnecting later
    # does not act on it.
    clear_pending: Mapped[bool] = mapped_column(Boolean, default=False)


class CursorRow(Base):
    """How far the dispatcher has read a stream (the vehicle-events store's ack events)."""

    __tablename__ = "dispatch_cursors"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


JOBS = cast(Table, JobRow.__table__)
DELIVERIES = cast(Table, DeliveryRow.__table__)


# --- domain types -------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Job:
    """A job as its owner sees it, with its live counts."""

    job_id: str
    tenant: str
    origin: str
    name: str
    message_kind: int
    channel: str
    body: Mapping[str, Any]
    query: str | None
    policy: RolloutPolicy
    continuous: bool
    status: JobStatus
    reason: str | None
    created_by: str
    created_at: datetime
    start_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    counts: DeliveryCounts = field(default_factory=DeliveryCounts)
    #: Why queued deliveries are not moving, when the dispatcher said so (no vehicle link).
    waiting_reason: str | None = None

    @classmethod
    def of(
        cls, row: JobRow, counts: DeliveryCounts, waiting_reason: str | None = None
    ) -> Job:
        return cls(
            job_id=row.job_id, tenant=row.tenant_id, origin=row.origin, name=row.name,
            message_kind=row.message_kind, channel=row.channel, body=json.loads(row.body),
            query=row.query, policy=RolloutPolicy.from_dict(
                json.loads(row.policy), require_timeout_cover=False
            ),
            continuous=row.continuous, status=cast(JobStatus, row.status), reason=row.reason,
            created_by=row.created_by, created_at=row.created_at, start_at=row.start_at,
            started_at=row.started_at, ended_at=row.ended_at, counts=counts,
            waiting_reason=waiting_reason,
        )


@dataclass(frozen=True, slots=True)
class Delivery:
    """One vehicle's delivery of a job: its state, attempts and the vehicle's answer."""

    delivery_id: int
    job_id: str
    vin: str
    label: str
    state: DeliveryState
    attempts: int
    message_id: str | None
    version: int | None
    queued_at: datetime
    sent_at: datetime | None
    deadline_at: datetime | None
    finished_at: datetime | None
    reason: str | None
    detail: str | None

    @classmethod
    def of(cls, row: Any) -> Delivery:
        return cls(
            delivery_id=row.delivery_id, job_id=row.job_id, vin=row.vin, label=row.label,
            state=row.state, attempts=row.attempts, message_id=row.message_id,
            version=row.version, queued_at=row.queued_at, sent_at=row.sent_at,
            deadline_at=row.deadline_at, finished_at=row.finished_at, reason=row.reason,
            detail=row.detail,
        )
