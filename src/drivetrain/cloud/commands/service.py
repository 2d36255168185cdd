"""The dispatcher's public functions: create jobs and commands, follow them, cancel them.

Every function takes an open session and the tenant it acts for; another tenant's job answers
exactly as a job that does not exist, and naming another tenant's vehicle as a target is
refused as an unknown vehicle, with nothing stored. State changes are recorded in the audit
log and published on the platform status bus (domain ``jobs``) when the transaction commits.

Owners other than operators (collection campaigns, and later OTA rollouts, security responses
and entitlements) create **continuous** jobs with their own ``origin`` and add deliveries as
their targeting changes (:func:`add_deliveries`, :func:`cancel_deliveries`,
:func:`latest_deliveries`, :func:`close_job`).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, cast

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from drivetrain.cloud.commands.bulk import bound, executemany, table_name
from drivetrain.cloud.commands.machine import (
    DELIVERY_STATES,
    JOB_STATUSES,
    OPEN_JOB_STATUSES,
    DeliveryCounts,
    JobStatus,
    check_cancellable,
)
from drivetrain.cloud.commands.models import (
    DELIVERIES,
    Delivery,
    DeliveryRow,
    Job,
    JobRow,
)
from drivetrain.cloud.commands.payloads import Payload, body_json, check_payload
from drivetrain.cloud.commands.policy import RolloutPolicy
from drivetrain.cloud.infra import record_audit
from drivetrain.cloud.infra.bus import StatusEvent, queue_status
from drivetrain.cloud.twins import select_twins
from drivetrain.core.errors import BadInputError, NotFoundError
from drivetrain.core.vss import Catalog
from drivetrain.core.wire import MessageKind

DOMAIN: Final = "jobs"
MAX_PAGE: Final = 1000
#: Most VINs a job may name explicitly (a larger group is selected by query).
MAX_EXPLICIT_VINS: Final = 10_000
_IN_CHUNK: Final = 900


@dataclass(frozen=True, slots=True)
class DeliveryDraft:
    """A delivery an owner adds to its continuous job: the vehicle, a label, and optionally
    a body of its own and the payload version the vehicle's acknowledgement must name."""

    vin: str
    label: str = ""
    body: Mapping[str, Any] | None = None
    version: int | None = None


@dataclass(frozen=True, slots=True)
class DeliveryPage:
    """A page of deliveries and the ``after`` id of the next page (None: last page)."""

    deliveries: tuple[Delivery, ...]
    next_after: int | None


def _now(now: datetime | None) -> datetime:
    return now or datetime.now(UTC)


def new_job_id(prefix: str = "job") -> str:
    """A fresh job id, e.g. ``job-3f9a0c1b2d4e``."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def _status(job: JobRow, kind: str, now: datetime, **data: Any) -> StatusEvent:
    return StatusEvent(DOMAIN, kind, job.tenant_id, job.job_id, now,
                       {"origin": job.origin, "status": job.status, **data})


def _targets(
    session: Session, tenant: str, query: str | None, vins: Sequence[str] | None,
    catalog: Catalog | None,
) -> list[str]:
    if vins is not None:
        wanted = list(dict.fromkeys(vins))
        if not wanted:
            raise BadInputError("targets: no VIN given; name at least one vehicle or a query")
        if len(wanted) > MAX_EXPLICIT_VINS:
            raise BadInputError(f"targets: {len(wanted):,} VINs; at most {MAX_EXPLICIT_VINS:,} "
                                "by name (select a larger group with a query)")
        found = set(select_twins(session, tenant, query or "", among=wanted, catalog=catalog))
        unknown = [v for v in wanted if v not in found]
        if unknown and query:
            wanted = [v for v in wanted if v in found]  # the query narrows the named group
        elif unknown:
            raise NotFoundError(
                f"target vehicle {unknown[0]} is not a vehicle of tenant {tenant!r}"
                + (f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else "")
            )
        return wanted
    if query is None:
        raise BadInputError("targets: give a query (\"\" selects every vehicle) or VINs")
    return select_twins(session, tenant, query, catalog=catalog)


def _insert_deliveries(
    session: Session, job: JobRow, drafts: Iterable[DeliveryDraft], now: datetime
) -> int:
    connection = session.connection()
    c = DELIVERIES.c
    queued_at = bound(connection, c.queued_at, now)
    no = bound(connection, c.clear_pending, False)
    rows = [
        (job.job_id, job.tenant_id, d.vin, job.channel, d.label,
         None if d.body is None else body_json(d.body), d.version, "queued", 0, queued_at, no)
        for d in drafts
    ]
    executemany(
        connection,
        f"INSERT INTO {table_name(connection)} (job_id, tenant_id, vin, channel, label, body, "
        "version, state, attempts, queued_at, clear_pending) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, "
        "?, ?)",
        rows,
    )
    return len(rows)


def create_job(
    session: Session,
    *,
    tenant: str,
    actor: str,
    payload: Payload,
    query: str | None = None,
    vins: Sequence[str] | None = None,
    policy: RolloutPolicy | None = None,
    name: str | None = None,
    origin: str = "job",
    start_at: datetime | None = None,
    continuous: bool = False,
    catalog: Catalog | None = None,
    now: datetime | None = None,
    request_id: str | None = None,
) -> Job:
    """Create a job sending ``payload`` to the vehicles ``query`` selects (or to ``vins``).

    The targets are resolved now, once: each becomes a queued delivery. The job is
    ``scheduled`` until ``start_at`` (default: now), then ``running``; the dispatcher hands its
    deliveries to the vehicle link as the policy allows. A job whose query selects nothing is
    ``finished`` at once, saying so. A continuous job (``continuous=True``; owners such as
    campaigns) starts empty when given no targets and runs until :func:`close_job`.

    Raises:
        BadInputError: a bad payload, policy, VIN or start time (nothing is stored).
        QuerySyntaxError: the query does not parse.
        NotFoundError: a named VIN is not a vehicle of ``tenant`` (another tenant's included).
    """
    now = _now(now)
    check_payload(payload)
    policy = policy or RolloutPolicy()
    if start_at is not None and start_at.tzinfo is None:
        raise BadInputError(f"start_at {start_at.isoformat()!r} has no timezone")
    targets: list[str] = []
    if not (continuous and query is None and vins is None):
        targets = _targets(session, tenant, query, vins, catalog)
    start = max(start_at or now, now)
    prefix = "cmd" if origin == "command" else "job"
    job = JobRow(
        job_id=new_job_id(prefix), tenant_id=tenant, origin=origin,
        name=(name or str(payload.body.get("name", payload.kind.name.lower())))[:120],
        message_kind=int(payload.kind), channel=payload.channel, body=body_json(payload.body),
        query=query, policy=json.dumps(policy.to_dict(), sort_keys=True),
        continuous=continuous, status="scheduled" if start > now else "running",
        created_by=actor, created_at=now, start_at=start,
        started_at=None if start > now else now, tokens=0.0, tokens_at=now,
    )
    if not targets and not continuous:
        job.status, job.ended_at = "finished", now
        job.reason = "no vehicle matched the query" if query is not None else "no targets"
    session.add(job)
    session.flush()
    _insert_deliveries(session, job, (DeliveryDraft(v) for v in targets), now)
    record_audit(
        session, tenant=tenant, actor=actor,
        action="commands.command.send" if origin == "command" else "commands.job.create",
        target=f"job:{job.job_id}",
        details={"origin": origin, "name": job.name, "kind": payload.kind.name.lower(),
                 "query": query, "targets": len(targets), "policy": policy.to_dict(),
                 "start_at": start.isoformat()},
        request_id=request_id, now=now,
    )
    queue_status(session, [_status(job, "created", now, targets=len(targets))])
    return Job.of(job, DeliveryCounts(queued=len(targets)))


def send_command(
    session: Session,
    vin: str,
    name: str,
    args: Mapping[str, Any] | None = None,
    *,
    tenant: str,
    actor: str,
    policy: RolloutPolicy | None = None,
    now: datetime | None = None,
    request_id: str | None = None,
) -> Job:
    """Send one signed command to one vehicle (a job of one delivery, origin ``command``).

    Raises:
        BadInputError: a bad command name, args or policy.
        NotFoundError: ``vin`` is not a vehicle of ``tenant``.
    """
    return create_job(
        session, tenant=tenant, actor=actor, payload=Payload.command(name, args), vins=[vin],
        policy=policy, origin="command", now=now, request_id=request_id,
    )


def _job_row(session: Session, job_id: str, tenant: str | None) -> JobRow:
    row = session.get(JobRow, job_id) if isinstance(job_id, str) and len(job_id) <= 40 else None
    if row is None or (tenant is not None and row.tenant_id != tenant):
        raise NotFoundError(f"job {job_id!r} does not exist")
    return row


def job_counts(session: Session, job_ids: Sequence[str]) -> dict[str, DeliveryCounts]:
    """Live delivery counts of each job."""
    counts: dict[str, dict[str, int]] = {j: {} for j in job_ids}
    d = DELIVERIES.c
    for start in range(0, len(job_ids), _IN_CHUNK):
        chunk = list(job_ids[start : start + _IN_CHUNK])
        for job_id, state, count in session.execute(
            select(d.job_id, d.state, func.count()).where(d.job_id.in_(chunk))
            .group_by(d.job_id, d.state)
        ):
            counts[job_id][state] = int(count)
    return {j: DeliveryCounts.of(c) for j, c in counts.items()}


@dataclass(frozen=True)
class JobProgress:
    """An open job's live delivery counts (for monitoring: no payload, no targets)."""

    tenant: str
    job_id: str
    name: str
    counts: DeliveryCounts


def open_job_progress(session: Session, *, origin: str, limit: int = 1000) -> list[JobProgress]:
    """The open (scheduled or running) jobs of ``origin`` across every tenant, oldest first
    (at most ``limit``), with their delivery counts by state."""
    rows = session.execute(
        select(JobRow.tenant_id, JobRow.job_id, JobRow.name)
        .where(JobRow.origin == origin, JobRow.status.in_(sorted(OPEN_JOB_STATUSES)))
        .order_by(JobRow.created_at, JobRow.job_id)
        .limit(limit)
    ).all()
    counts = job_counts(session, [job_id for _, job_id, _ in rows])
    return [JobProgress(tenant, job_id, name, counts[job_id]) for tenant, job_id, name in rows]


def _waiting_reason(session: Session, job_id: str) -> str | None:
    d = DELIVERIES.c
    return session.scalar(
        select(d.reason).where(d.job_id == job_id, d.state == "queued", d.reason.is_not(None))
        .limit(1)
    )


def get_job(session: Session, job_id: str, *, tenant: str | None) -> Job:
    """The job with its live counts (and why queued deliveries wait, when the dispatcher
    said: e.g. ``not delivered: no vehicle link``).

    Raises:
        NotFoundError: no such job of ``tenant`` (None: any tenant).
    """
    row = _job_row(session, job_id, tenant)
    return Job.of(row, job_counts(session, [job_id])[job_id], _waiting_reason(session, job_id))


def list_jobs(
    session: Session,
    *,
    tenant: str,
    origin: str | None = None,
    status: str | None = None,
    limit: int = 100,
    before: str | None = None,
) -> list[Job]:
    """``tenant``'s jobs, newest first, with their counts. ``before``: a job id of the
    previous page (its last); ``origin``/``status``: filters.

    Raises:
        BadInputError: an unknown status, a limit outside 1..1000, an unknown ``before``.
    """
    if status is not None and status not in JOB_STATUSES:
        raise BadInputError(f"status {status!r} is not known; expected one of {JOB_STATUSES}")
    if isinstance(limit, bool) or not 1 <= limit <= MAX_PAGE:
        raise BadInputError(f"limit {limit!r} is not valid; expected 1 to {MAX_PAGE}")
    query = select(JobRow).where(JobRow.tenant_id == tenant)
    if origin is not None:
        query = query.where(JobRow.origin == origin)
    if status is not None:
        query = query.where(JobRow.status == status)
    if before is not None:
        anchor = _job_row(session, before, tenant)
        query = query.where(
            (JobRow.created_at < anchor.created_at)
            | ((JobRow.created_at == anchor.created_at) & (JobRow.job_id < anchor.job_id))
        )
    rows = session.scalars(
        query.order_by(JobRow.created_at.desc(), JobRow.job_id.desc()).limit(limit)
    ).all()
    counts = job_counts(session, [r.job_id for r in rows])
    return [Job.of(r, counts[r.job_id]) for r in rows]


def list_deliveries(
    session: Session,
    job_id: str,
    *,
    tenant: str | None,
    state: str | None = None,
    after: int = 0,
    limit: int = 100,
) -> DeliveryPage:
    """A job's deliveries (per vehicle: state, attempts, reason), by delivery id.

    Raises:
        NotFoundError: no such job of ``tenant``.
        BadInputError: an unknown state or a limit outside 1..1000.
    """
    _job_row(session, job_id, tenant)
    if state is not None and state not in DELIVERY_STATES:
        raise BadInputError(f"state {state!r} is not known; expected one of {DELIVERY_STATES}")
    if isinstance(limit, bool) or not 1 <= limit <= MAX_PAGE:
        raise BadInputError(f"limit {limit!r} is not valid; expected 1 to {MAX_PAGE}")
    query = select(DeliveryRow).where(DeliveryRow.job_id == job_id,
                                      DeliveryRow.delivery_id > after)
    if state is not None:
        query = query.where(DeliveryRow.state == state)
    rows = session.scalars(query.order_by(DeliveryRow.delivery_id).limit(limit + 1)).all()
    more = len(rows) > limit
    page = tuple(Delivery.of(r) for r in rows[:limit])
    return DeliveryPage(page, page[-1].delivery_id if more and page else None)


def _cancel_open(
    session: Session, condition: Any, reason: str, now: datetime
) -> int:
    """Cancel the queued and delivered deliveries matching ``condition``; a delivered one's
    vehicle slot is cleared by the dispatcher. Returns how many."""
    d = DELIVERIES.c
    connection = session.connection()
    queued = connection.execute(
        update(DELIVERIES).where(condition, d.state == "queued")
        .values(state="cancelled", finished_at=now, reason=reason)
    ).rowcount
    delivered = connection.execute(
        update(DELIVERIES).where(condition, d.state == "delivered")
        .values(state="cancelled", finished_at=now, reason=reason, clear_pending=True)
    ).rowcount
    return int(queued or 0) + int(delivered or 0)


def cancel_job(
    session: Session,
    job_id: str,
    *,
    tenant: str,
    actor: str,
    reason: str | None = None,
    now: datetime | None = None,
    request_id: str | None = None,
) -> Job:
    """Cancel a scheduled or running job: its queued deliveries are cancelled, and those
    already delivered too (the dispatcher clears them from the vehicles' retained slots, so a
    vehicle that reconnects later does not act on them; one that already acted reports it).

    Raises:
        NotFoundError: no such job of ``tenant``.
        StateTransitionError: the job is already finished, cancelled or aborted.
    """
    now = _now(now)
    row = _job_row(session, job_id, tenant)
    check_cancellable(cast(JobStatus, row.status), job_id)
    text = f"cancelled by {actor}" + (f": {reason}" if reason else "")
    cancelled = _cancel_open(session, DELIVERIES.c.job_id == job_id, text, now)
    row.status, row.reason, row.ended_at = "cancelled", text, now
    record_audit(session, tenant=tenant, actor=actor, action="commands.job.cancel",
                 target=f"job:{job_id}", details={"reason": reason, "cancelled": cancelled},
                 request_id=request_id, now=now)
    session.flush()
    queue_status(session, [_status(row, "cancelled", now, cancelled=cancelled)])
    return get_job(session, job_id, tenant=tenant)


# --- for owners of continuous jobs (campaigns, OTA, security responses, entitlements) --------
def add_deliveries(
    session: Session, job_id: str, drafts: Sequence[DeliveryDraft], *, tenant: str,
    now: datetime | None = None,
) -> int:
    """Queue more deliveries on an open job (VINs must be ``tenant``'s; the owner checked its
    targeting). Returns how many were added.

    Raises:
        NotFoundError: no such job of ``tenant``, or a VIN not of ``tenant``.
        StateTransitionError: the job is no longer open.
        BadInputError: a draft's body is not a valid payload of the job's kind.
    """
    now = _now(now)
    row = _job_row(session, job_id, tenant)
    check_cancellable(cast(JobStatus, row.status), job_id)
    if not drafts:
        return 0
    for draft in drafts:
        if draft.body is not None:
            check_payload(Payload(MessageKind(row.message_kind), draft.body))
    vins = [d.vin for d in drafts]
    known = set(select_twins(session, tenant, "", among=vins))
    unknown = [v for v in vins if v not in known]
    if unknown:
        raise NotFoundError(f"vehicle {unknown[0]} is not a vehicle of tenant {tenant!r}")
    return _insert_deliveries(session, row, drafts, now)


def cancel_deliveries(
    session: Session, job_id: str, vins: Iterable[str], *, tenant: str, reason: str,
    now: datetime | None = None,
) -> int:
    """Cancel the open deliveries of ``vins`` on a job (superseded by a newer send). Returns
    how many.

    Raises:
        NotFoundError: no such job of ``tenant``.
    """
    now = _now(now)
    _job_row(session, job_id, tenant)
    wanted = sorted(set(vins))
    d = DELIVERIES.c
    total = 0
    for start in range(0, len(wanted), _IN_CHUNK):
        chunk = wanted[start : start + _IN_CHUNK]
        total += _cancel_open(session, (d.job_id == job_id) & d.vin.in_(chunk), reason, now)
    return total


def latest_deliveries(
    session: Session, job_id: str, *, tenant: str, labels: Sequence[str] | None = None
) -> dict[str, Delivery]:
    """Per VIN, the most recent delivery of a job (of ``labels`` only, when given).

    Raises:
        NotFoundError: no such job of ``tenant``.
    """
    _job_row(session, job_id, tenant)
    d = DELIVERIES.c
    newest = select(d.vin, func.max(d.delivery_id).label("last")).where(d.job_id == job_id)
    if labels is not None:
        newest = newest.where(d.label.in_(list(labels)))
    newest_q = newest.group_by(d.vin).subquery()
    rows = session.execute(
        select(DELIVERIES).join(newest_q, DELIVERIES.c.delivery_id == newest_q.c.last)
    ).all()
    return {r.vin: Delivery.of(r) for r in rows}


def close_job(
    session: Session, job_id: str, *, tenant: str, actor: str, reason: str,
    status: JobStatus = "finished", now: datetime | None = None,
) -> Job:
    """End an owner's job (a continuous one when its owner is done): open deliveries are
    cancelled with ``reason``.

    Raises:
        NotFoundError: no such job of ``tenant``.
        StateTransitionError: the job is already closed.
        ValueError: ``status`` is not a final job status.
    """
    if status not in ("finished", "cancelled", "aborted"):
        raise ValueError(f"close_job status must be final, got {status!r}")
    now = _now(now)
    row = _job_row(session, job_id, tenant)
    check_cancellable(cast(JobStatus, row.status), job_id)
    cancelled = _cancel_open(session, DELIVERIES.c.job_id == job_id, reason, now)
    row.status, row.reason, row.ended_at = status, reason, now
    session.flush()
    queue_status(session, [_status(row, status, now, cancelled=cancelled)])
    return get_job(session, job_id, tenant=tenant)
