"""HTTP bodies of ``/v1/commands`` and ``/v1/jobs`` (Pydantic v2, at the edge only).

Rollout policies travel as the JSON object ``RolloutPolicy.from_dict`` reads, so the API, the
CLI's ``--policy`` file and the stored document have one shape (docs/commands.md).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from drivetrain.cloud.commands.machine import DeliveryState, JobStatus
from drivetrain.cloud.commands.models import Delivery, Job
from drivetrain.cloud.commands.payloads import ACK_KINDS
from drivetrain.cloud.infra.http.params import Instant
from drivetrain.core.wire import MessageKind

POLICY_EXAMPLE: dict[str, Any] = {
    "rate_per_min": 600, "growth_factor": 2, "grow_every_successes": 100,
    "max_rate_per_min": 5000, "max_retries": 1, "abort_failure_rate": 0.2,
    "abort_min_outcomes": 20, "freshness_s": 300, "timeout_s": 330,
    "maintenance_windows": [{"days": ["sat", "sun"], "start": "01:00", "end": "05:00"}],
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CommandIn(_Strict):
    """A command as the vehicle receives it."""

    name: str = Field(max_length=64, examples=["flash_lights"])
    args: dict[str, Any] = Field(default_factory=dict, examples=[{"times": 3}])


class SendCommand(CommandIn):
    """One signed command to one vehicle."""

    vin: str = Field(min_length=17, max_length=17, examples=["DTV14A5UXTRGXBBBA"])
    policy: dict[str, Any] | None = Field(
        None, description="Freshness, timeout and retries (see docs/commands.md).",
        examples=[{"freshness_s": 300, "timeout_s": 330, "max_retries": 1}],
    )


class CreateJob(_Strict):
    """A command to every vehicle a fleet query selects, rolled out by a policy."""

    command: CommandIn
    query: str | None = Field(
        None, max_length=4000, examples=['region == "EU" and software."BMS" < "2.4.0"'],
        description='Fleet query selecting the targets ("" selects every vehicle).',
    )
    vins: list[str] | None = Field(None, max_length=10_000,
                                   description="Or: the targets by VIN.")
    policy: dict[str, Any] | None = Field(None, examples=[POLICY_EXAMPLE])
    start_at: Instant | None = Field(None, description="Scheduled start; default now.")
    name: str | None = Field(None, max_length=120, description="A name for the job.")


class CancelJob(_Strict):
    reason: str | None = Field(None, max_length=500)


class CountsOut(BaseModel):
    """Deliveries by state (live)."""

    queued: int
    delivered: int
    succeeded: int
    failed: int
    timed_out: int
    cancelled: int
    total: int


class JobOut(BaseModel):
    """A job (or a command: a job of one vehicle) with its live counts."""

    job_id: str
    origin: str = Field(description="command, job, or the owning domain (campaign, ...).")
    name: str
    kind: str = Field(description="The downlink message kind: command or campaign.")
    body: dict[str, Any]
    query: str | None
    policy: dict[str, Any]
    status: JobStatus
    reason: str | None = Field(description="Why it ended (aborted, cancelled, empty).")
    waiting_reason: str | None = Field(
        description="Why queued vehicles wait, e.g. 'not delivered: no vehicle link'."
    )
    created_by: str
    created_at: datetime
    start_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    counts: CountsOut

    @classmethod
    def of(cls, job: Job) -> JobOut:
        counts = job.counts
        return cls(
            job_id=job.job_id, origin=job.origin, name=job.name,
            kind=ACK_KINDS.get(MessageKind(job.message_kind), str(job.message_kind)),
            body=dict(job.body), query=job.query, policy=job.policy.to_dict(),
            status=job.status, reason=job.reason, waiting_reason=job.waiting_reason,
            created_by=job.created_by, created_at=job.created_at, start_at=job.start_at,
            started_at=job.started_at, ended_at=job.ended_at,
            counts=CountsOut(**counts.to_dict(), total=counts.total),
        )


class DeliveryOut(BaseModel):
    """One vehicle's delivery: its state, attempts and the vehicle's answer."""

    delivery_id: int
    vin: str
    label: str
    state: DeliveryState
    attempts: int
    message_id: str | None
    queued_at: datetime
    sent_at: datetime | None
    deadline_at: datetime | None
    finished_at: datetime | None
    reason: str | None
    detail: str | None = Field(description="What the vehicle answered.")

    @classmethod
    def of(cls, delivery: Delivery) -> DeliveryOut:
        return cls(
            delivery_id=delivery.delivery_id, vin=delivery.vin, label=delivery.label,
            state=delivery.state, attempts=delivery.attempts, message_id=delivery.message_id,
            queued_at=delivery.queued_at, sent_at=delivery.sent_at,
            deadline_at=delivery.deadline_at, finished_at=delivery.finished_at,
            reason=delivery.reason, detail=delivery.detail,
        )


class CommandOut(JobOut):
    """A command with its one vehicle's delivery."""

    delivery: DeliveryOut | None


class DeliveryPageOut(BaseModel):
    deliveries: list[DeliveryOut]
    next_after: int | None = Field(description="Pass as ?after= for the next page.")


class JobListOut(BaseModel):
    jobs: list[JobOut]
    next_before: str | None = Field(description="Pass as ?before= for the next page.")
