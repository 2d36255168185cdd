"""The database steps of one dispatcher round (each in the caller's transaction).

The dispatcher (``dispatcher.py``) runs, each round: :func:`start_due_jobs`, :func:`apply_acks`
(the vehicles' acknowledgements, read from the vehicle-events store where ingestion keeps them),
:func:`expire_deliveries`, then :func:`claim_deliveries` (a rollout's share of queued
deliveries, marked delivered before they are published — a crash between commit and publish
leaves a delivery that times out, never one sent twice under two ids), :func:`slots_to_clear`,
and :func:`settle_jobs` (live counts, aborts, finished jobs). Decisions come from ``machine``.

**One message per vehicle slot.** Messages travel as retained messages on the vehicle's
channel (``dt/v1/{vin}/commands``, ``.../campaigns``): the broker keeps the latest per topic and
hands it to a vehicle that reconnects. So at most one delivery per (vehicle, channel) is in
flight; others wait queued until it is settled, and a settled message that the vehicle never
took (timed out, cancelled) is cleared from the slot.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final, cast

from sqlalchemy import and_, exists, or_, select, update
from sqlalchemy.orm import Session, aliased

from drivetrain.cloud.commands.bulk import executemany, table_name
from drivetrain.cloud.commands.machine import (
    NO_LINK_REASON,
    AckRefusal,
    DeliveryCounts,
    DeliveryState,
    JobStatus,
    abort_reason,
    job_status_after,
    judge_ack,
    refill_tokens,
    release_budget,
    should_retry,
)
from drivetrain.cloud.commands.models import DELIVERIES, JOBS, CursorRow, DeliveryRow, JobRow
from drivetrain.cloud.commands.payloads import ACK_KINDS, CHANNELS, message_id_for
from drivetrain.cloud.commands.policy import RolloutPolicy
from drivetrain.cloud.commands.service import DOMAIN, job_counts
from drivetrain.cloud.infra.bus import StatusEvent, queue_status
from drivetrain.cloud.ingest.service import list_vehicle_events
from drivetrain.core.wire import MessageKind

ACK_EVENT_TYPES: Final = tuple(f"ack.{k}" for k in ACK_KINDS.values())
ACK_CURSOR: Final = "acks"
#: Ack events read per page.
ACK_PAGE: Final = 1000
#: Events younger than this are processed but the cursor stays before them: on PostgreSQL
#: ids of concurrent transactions can commit out of order, and a settled tail is re-read
#: (harmlessly: a delivery remembers the event that settled it).
CURSOR_LAG_S: Final = 10.0
#: Most deliveries one claim hands out (one transaction).
CLAIM_LIMIT: Final = 50_000
_IN_CHUNK: Final = 900


def _policy(row: JobRow) -> RolloutPolicy:
    return RolloutPolicy.from_dict(json.loads(row.policy), require_timeout_cover=False)


def _event(row: JobRow, kind: str, now: datetime, **data: Any) -> StatusEvent:
    return StatusEvent(DOMAIN, kind, row.tenant_id, row.job_id, now,
                       {"origin": row.origin, "status": row.status, **data})


# --- 1. scheduled jobs start ---------------------------------------------------------------------
def start_due_jobs(session: Session, now: datetime) -> list[str]:
    """Move every scheduled job whose start time has come to running; returns their ids."""
    rows = session.scalars(
        select(JobRow).where(JobRow.status == "scheduled", JobRow.start_at <= now)
    ).all()
    for row in rows:
        row.status, row.started_at, row.tokens, row.tokens_at = "running", now, 0.0, now
    if rows:
        session.flush()
        queue_status(session, [_event(r, "started", now) for r in rows])
    return [r.job_id for r in rows]


# --- 2. acknowledgements -------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RefusedAck:
    """An acknowledgement that changed nothing, and why."""

    vin: str
    ref: str
    reason: AckRefusal
    detail: str


@dataclass
class AckReport:
    """What :func:`apply_acks` did."""

    read: int = 0
    succeeded: int = 0
    failed: int = 0
    retried: int = 0
    refused: list[RefusedAck] = field(default_factory=list)
    jobs: set[str] = field(default_factory=set)


def _cursor(session: Session, now: datetime) -> CursorRow:
    row = session.scalars(
        select(CursorRow).where(CursorRow.name == ACK_CURSOR).with_for_update()
    ).first()
    if row is None:
        row = CursorRow(name=ACK_CURSOR, position=0, updated_at=now)
        session.add(row)
        session.flush()
    return row


def _ack_fields(data: Mapping[str, Any]) -> tuple[str, str, str, str, int | None] | None:
    ref, kind, status = data.get("ref"), data.get("ref_kind"), data.get("status")
    version = data.get("version")
    if not all(isinstance(v, str) for v in (ref, kind, status)):
        return None
    if version is not None and (not isinstance(version, int) or isinstance(version, bool)):
        return None
    detail = data.get("detail", "")
    return cast(str, ref), cast(str, kind), cast(str, status), str(detail)[:2000], version


def apply_acks(session: Session, now: datetime, seen: set[int] | None = None) -> AckReport:
    """Apply the acknowledgements stored since the last round (see the module docstring).

    An acknowledgement settles the delivered message it names: ``applied`` → succeeded,
    ``rejected`` → failed with the vehicle's reason (or queued again while the policy allows
    retries). One that names no delivery of that message to that vehicle, a delivery not
    awaiting an ack, or another payload version is refused (``machine.judge_ack``): nothing
    changes, and the refusal is returned (and logged by the dispatcher).

    ``seen`` holds the ids of events this caller processed beyond the cursor (the unsettled
    tail it re-reads); they are skipped, and ids the cursor passed are dropped from it.
    """
    seen = set() if seen is None else seen
    report = AckReport()
    cursor = _cursor(session, now)
    settled_before = now - timedelta(seconds=CURSOR_LAG_S)
    position = cursor.position
    after = cursor.position
    settled = True
    policies: dict[str, RolloutPolicy] = {}
    while True:
        events = list_vehicle_events(session, tenant=None, types=ACK_EVENT_TYPES,
                                     after_id=after, limit=ACK_PAGE)
        if not events:
            break
        report.read += len(events)
        wanted = {(e.vin, str(e.data.get("ref", ""))) for e in events}
        deliveries = _deliveries_by_message(session, wanted)
        for event in events:
            after = event.event_id
            settled = settled and event.received_at <= settled_before
            if settled:
                position = event.event_id
            if event.event_id in seen:
                continue
            seen.add(event.event_id)
            _apply_one(session, event, deliveries, policies, report, now)
        if len(events) < ACK_PAGE:
            break
    # Advance only over the settled prefix (see CURSOR_LAG_S).
    if position != cursor.position:
        cursor.position, cursor.updated_at = position, now
    seen.difference_update([i for i in seen if i <= position])
    session.flush()
    return report


def _deliveries_by_message(
    session: Session, wanted: set[tuple[str, str]]
) -> dict[tuple[str, str], DeliveryRow]:
    refs = sorted({ref for _, ref in wanted if ref})
    found: dict[tuple[str, str], DeliveryRow] = {}
    for start in range(0, len(refs), _IN_CHUNK):
        for row in session.scalars(
            select(DeliveryRow).where(DeliveryRow.message_id.in_(refs[start : start + _IN_CHUNK]))
        ):
            assert row.message_id is not None
            found[(row.vin, row.message_id)] = row
    return found


def _apply_one(
    session: Session, event: Any, deliveries: Mapping[tuple[str, str], DeliveryRow],
    policies: dict[str, RolloutPolicy], report: AckReport, now: datetime,
) -> None:
    fields = _ack_fields(event.data)
    if fields is None:
        report.refused.append(RefusedAck(event.vin, str(event.data.get("ref", "")),
                                         "malformed", f"ack event {event.event_id} of "
                                         f"{event.vin} is not an acknowledgement"))
        return
    ref, kind, status, detail, version = fields
    row = deliveries.get((event.vin, ref))
    if row is not None and row.ack_event_id == event.event_id:
        return  # re-read after a restart: already applied
    verdict = judge_ack(
        vin=event.vin, ref=ref, ack_kind=kind, status=status, ack_version=version,
        delivery_kind=None if row is None else ACK_KINDS[_kind_of_channel(row.channel)],
        delivery_state=None if row is None else cast(DeliveryState, row.state),
        delivery_version=None if row is None else row.version,
    )
    if verdict.event is None or row is None:
        assert verdict.refusal is not None
        report.refused.append(RefusedAck(event.vin, ref, verdict.refusal, verdict.detail))
        return
    row.ack_event_id, row.detail, row.clear_pending = event.event_id, detail, True
    report.jobs.add(row.job_id)
    if verdict.event == "applied":
        row.state, row.finished_at, row.reason = "succeeded", now, None
        report.succeeded += 1
        return
    policy = policies.get(row.job_id)
    if policy is None:
        job = session.get(JobRow, row.job_id)
        assert job is not None
        policy = policies[row.job_id] = _policy(job)
    reason = f"rejected by the vehicle: {detail or 'no reason given'}"
    if should_retry(policy, row.attempts):
        row.state, row.reason = "queued", f"retrying after: {reason}"
        row.not_before = now + timedelta(seconds=policy.retry_delay_s)
        report.retried += 1
    else:
        row.state, row.finished_at, row.reason = "failed", now, reason
        report.failed += 1


def _kind_of_channel(channel: str) -> MessageKind:
    for kind, name in CHANNELS.items():
        if name == channel:
            return kind
    raise ValueError(f"no message kind travels on channel {channel!r}")


# --- 3. timeouts -----------------------------------------------------------------------------------
def expire_deliveries(session: Session, now: datetime) -> set[str]:
    """Time out delivered messages past their deadline (or queue them again while the policy
    allows retries); their slots are cleared. Returns the jobs touched."""
    d = DELIVERIES.c
    jobs = session.scalars(
        select(JobRow).where(JobRow.job_id.in_(
            select(d.job_id).where(d.state == "delivered", d.deadline_at <= now).distinct()
        ))
    ).all()
    for job in jobs:
        policy = _policy(job)
        due = and_(d.job_id == job.job_id, d.state == "delivered", d.deadline_at <= now)
        reason = (
            f"timed out: no acknowledgement within {policy.timeout_s:g} s of delivery (the "
            f"vehicle was offline or did not answer; the message expired on its way after "
            f"{policy.freshness_s:g} s)"
            if job.message_kind == int(MessageKind.COMMAND)
            else f"timed out: no acknowledgement within {policy.timeout_s:g} s of delivery "
            "(the vehicle was offline or did not answer)"
        )
        session.execute(
            update(DELIVERIES).where(due, d.attempts <= policy.max_retries).values(
                state="queued", reason=f"retrying after: {reason}", clear_pending=True,
                not_before=now + timedelta(seconds=policy.retry_delay_s),
            )
        )
        session.execute(
            update(DELIVERIES).where(due).values(
                state="timed_out", finished_at=now, reason=reason, clear_pending=True
            )
        )
    return {j.job_id for j in jobs}


# --- 4. handing out ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Claimed:
    """A delivery claimed for sending in this round."""

    delivery_id: int
    job_id: str
    vin: str
    kind: MessageKind
    channel: str
    body_text: str
    freshness_s: float
    message_id: str


def _busy_slot() -> Any:
    other = aliased(DeliveryRow)
    return exists().where(
        other.vin == DeliveryRow.vin, other.channel == DeliveryRow.channel,
        other.state == "delivered",
    )


def mark_no_link(session: Session) -> set[str]:
    """Say on every waiting delivery of a running job that there is no vehicle link; returns
    the jobs whose deliveries were not told yet."""
    d = DELIVERIES.c
    waiting = and_(d.state == "queued", d.reason.is_(None),
                   d.job_id.in_(select(JOBS.c.job_id).where(JOBS.c.status == "running")))
    jobs = set(session.scalars(select(d.job_id).where(waiting).distinct()))
    if jobs:
        session.execute(update(DELIVERIES).where(waiting).values(reason=NO_LINK_REASON))
    return jobs


def claim_deliveries(
    session: Session, now: datetime, nonce: str, *, limit: int = CLAIM_LIMIT
) -> list[Claimed]:
    """Claim the queued deliveries running jobs may hand out now (rate, windows, one per
    vehicle slot), mark them delivered with their message ids, and return them.

    Another dispatcher claiming at the same time never gets the same delivery: the claim is a
    compare-and-set on the state.
    """
    jobs = session.scalars(
        select(JobRow).where(JobRow.status == "running").order_by(JobRow.created_at)
    ).all()
    claimed: list[Claimed] = []
    policies = {j.job_id: _policy(j) for j in jobs}
    # Counts only where a rate depends on them (growth with successes, the queued share).
    counts = job_counts(session, [j for j, p in policies.items() if p.rate_per_min is not None])
    slots: set[tuple[str, str]] = set()
    for job in jobs:
        if len(claimed) >= limit:
            break
        policy = policies[job.job_id]
        job_counted = counts.get(job.job_id)
        elapsed = (now - job.tokens_at).total_seconds() if job.tokens_at else 0.0
        tokens = refill_tokens(policy, job.tokens, elapsed,
                               job_counted.succeeded if job_counted else 0)
        job.tokens_at = now
        if not policy.window_open(now):
            job.tokens = 0.0 if math.isinf(tokens) else tokens
            continue
        queued = job_counted.queued if job_counted else limit
        budget = min(release_budget(tokens, queued), limit - len(claimed))
        if budget <= 0:
            job.tokens = tokens
            continue
        got = _claim_job(session, job, policy, now, nonce, budget, slots)
        claimed.extend(got)
        job.tokens = tokens if math.isinf(tokens) else max(0.0, tokens - len(got))
    session.flush()
    return claimed


def _claim_job(
    session: Session, job: JobRow, policy: RolloutPolicy, now: datetime, nonce: str,
    budget: int, slots: set[tuple[str, str]],
) -> list[Claimed]:
    d = DELIVERIES.c
    candidates = session.execute(
        select(d.delivery_id, d.vin, d.attempts, d.body).where(
            d.job_id == job.job_id, d.state == "queued",
            or_(d.not_before.is_(None), d.not_before <= now), ~_busy_slot(),
        ).order_by(d.delivery_id).limit(budget * 2 + 10)
    ).all()
    chosen = []
    for row in candidates:  # one per vehicle slot, this round included
        if (row.vin, job.channel) in slots:
            continue
        slots.add((row.vin, job.channel))
        chosen.append(row)
        if len(chosen) >= budget:
            break
    if not chosen:
        return []
    deadline = None if policy.timeout_s is None else now + timedelta(seconds=policy.timeout_s)
    connection = session.connection()
    claimed: list[tuple[int, int]] = []
    ids = [r.delivery_id for r in chosen]
    for start in range(0, len(ids), _IN_CHUNK):
        # Compare-and-set: a delivery another dispatcher claimed meanwhile is not queued.
        claimed.extend(tuple(r) for r in connection.execute(
            update(DELIVERIES)
            .where(d.delivery_id.in_(ids[start : start + _IN_CHUNK]), d.state == "queued")
            .values(state="delivered", attempts=d.attempts + 1, sent_at=now,
                    deadline_at=deadline, reason=None, not_before=None, clear_pending=False)
            .returning(d.delivery_id, d.attempts)
        ))
    message_ids = {i: message_id_for(nonce, i, attempt) for i, attempt in claimed}
    executemany(connection, f"UPDATE {table_name(connection)} SET message_id = ? "
                "WHERE delivery_id = ?", [(m, i) for i, m in message_ids.items()])
    kind = MessageKind(job.message_kind)
    return [
        Claimed(r.delivery_id, job.job_id, r.vin, kind, job.channel,
                r.body if r.body is not None else job.body, policy.freshness_s,
                message_ids[r.delivery_id])
        for r in chosen if r.delivery_id in message_ids
    ]


def unclaim(session: Session, claimed: Sequence[Claimed], reason: str) -> None:
    """Return deliveries the link refused to the queue (their attempt did not happen)."""
    d = DELIVERIES.c
    ids = [c.delivery_id for c in claimed]
    for start in range(0, len(ids), _IN_CHUNK):
        session.execute(
            update(DELIVERIES)
            .where(d.delivery_id.in_(ids[start : start + _IN_CHUNK]), d.state == "delivered")
            .values(state="queued", attempts=d.attempts - 1, message_id=None, sent_at=None,
                    deadline_at=None, reason=reason)
        )


# --- 5. clearing vehicle slots ----------------------------------------------------------------------
def slots_to_clear(session: Session) -> list[tuple[str, str]]:
    """(VIN, channel) slots holding a settled message and no message in flight; their
    ``clear_pending`` flags are reset (call after publishing the clears, same transaction)."""
    d = DELIVERIES.c
    rows = session.execute(
        select(d.vin, d.channel).where(d.clear_pending.is_(True), ~_busy_slot()).distinct()
    ).all()
    session.execute(
        update(DELIVERIES).where(d.clear_pending.is_(True)).values(clear_pending=False)
    )
    return [(r.vin, r.channel) for r in rows]


# --- 6. settling jobs ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class JobProgress:
    """A running job's counts after a round, and its status."""

    job_id: str
    status: JobStatus
    counts: DeliveryCounts


def settle_jobs(
    session: Session, now: datetime, touched: Iterable[str] = ()
) -> list[JobProgress]:
    """Abort jobs past their failure threshold, finish jobs with nothing outstanding, and
    publish the counts of running jobs that changed (``touched``) or ended."""
    rows = session.scalars(select(JobRow).where(JobRow.status == "running")).all()
    counts = job_counts(session, [r.job_id for r in rows]) if rows else {}
    touched = set(touched)
    events: list[StatusEvent] = []
    progress: list[JobProgress] = []
    for row in rows:
        job_counted = counts[row.job_id]
        reason = abort_reason(_policy(row), job_counted)
        status: JobStatus = cast(JobStatus, row.status)
        if reason is not None:
            d = DELIVERIES.c
            session.execute(update(DELIVERIES).where(d.job_id == row.job_id, d.state == "queued")
                            .values(state="cancelled", finished_at=now, reason=reason))
            row.status, row.reason, row.ended_at = "aborted", reason, now
            job_counted = job_counts(session, [row.job_id])[row.job_id]
        else:
            status = job_status_after(status, job_counted, continuous=row.continuous)
            if status != row.status:
                row.status, row.ended_at = status, now
        if row.status != "running" or row.job_id in touched:
            events.append(_event(row, "progress" if row.status == "running" else row.status,
                                 now, counts=job_counted.to_dict(), reason=row.reason))
            progress.append(JobProgress(row.job_id, cast(JobStatus, row.status), job_counted))
    if events:
        session.flush()
        queue_status(session, events)
    return progress
