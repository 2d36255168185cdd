"""Who consumes the shared subscription: ingest workers' heartbeats in the state database.

With a shared subscription (``$share/ingest/...``) the broker hands each message to one
member of the group. A member that disconnects keeps its persistent session for
``session_expiry_s``, and a broker such as Mosquitto keeps routing that member's share of the
messages into the session, where they wait until the member comes back — or are discarded
when the session expires. The member cannot say so itself, so each worker records a heartbeat
(:func:`record_heartbeat`) and its clean stop (:func:`record_stop`); :func:`list_ingest_workers`
turns them into online / offline / stopped members and when each one's session expires, which
``drivetrain ingest stats`` shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from drivetrain.cloud.ingest.models import WorkerRow

MemberState = Literal["online", "offline", "stopped"]
#: Heartbeats missed before a member counts as offline.
MISSED_BEATS = 3
#: How long a member's row is kept after its session expired.
FORGET_AFTER = timedelta(days=7)


@dataclass(frozen=True)
class WorkerIdentity:
    """What a worker says about itself in its heartbeat."""

    client_id: str
    group: str
    broker: str
    session_expiry_s: int
    host: str
    pid: int
    heartbeat_s: float = 10.0


@dataclass(frozen=True)
class IngestWorkerStatus:
    """One member of a shared subscription as the heartbeats show it.

    ``session_expires_at``: when the broker drops the member's session (and with it any
    messages still routed to it) if it does not come back; ``holds_messages``: the member is
    away while its session lives on — the broker may be routing its share of the messages
    there.
    """

    client_id: str
    group: str
    host: str
    pid: int
    broker: str
    state: MemberState
    started_at: datetime
    last_seen_at: datetime
    stopped_at: datetime | None
    session_expires_at: datetime
    holds_messages: bool
    acknowledged: int
    pending: int
    failures: int


def record_heartbeat(
    session: Session,
    identity: WorkerIdentity,
    *,
    now: datetime,
    started_at: datetime,
    acknowledged: int,
    pending: int,
    failures: int,
) -> None:
    """Insert or refresh the worker's row (a restart under the same client id clears its
    stop)."""
    row = session.get(WorkerRow, identity.client_id)
    if row is None:
        row = WorkerRow(client_id=identity.client_id)
        session.add(row)
    row.group_name = identity.group[:64]
    row.host = identity.host[:255]
    row.pid = identity.pid
    row.broker = identity.broker[:255]
    row.session_expiry_s = identity.session_expiry_s
    row.heartbeat_s = identity.heartbeat_s
    row.started_at = started_at
    row.last_seen_at = now
    row.stopped_at = None
    row.acknowledged = acknowledged
    row.pending = pending
    row.failures = failures


def record_stop(session: Session, client_id: str, *, now: datetime) -> None:
    """The worker stopped cleanly (its broker session stays until it expires)."""
    session.execute(
        update(WorkerRow).where(WorkerRow.client_id == client_id).values(stopped_at=now)
    )


def list_ingest_workers(session: Session, *, now: datetime) -> list[IngestWorkerStatus]:
    """Every known ingest worker, online first, then by client id; forgets members whose
    session expired more than :data:`FORGET_AFTER` ago."""
    members = []
    for row in session.scalars(select(WorkerRow).order_by(WorkerRow.client_id)):
        away_since = row.stopped_at or row.last_seen_at
        expires = away_since + timedelta(seconds=row.session_expiry_s)
        if expires + FORGET_AFTER < now:
            session.execute(delete(WorkerRow).where(WorkerRow.client_id == row.client_id))
            continue
        state: MemberState
        if row.stopped_at is not None:
            state = "stopped"
        elif now - row.last_seen_at > timedelta(seconds=MISSED_BEATS * row.heartbeat_s):
            state = "offline"
        else:
            state = "online"
        members.append(
            IngestWorkerStatus(
                client_id=row.client_id,
                group=row.group_name,
                host=row.host,
                pid=row.pid,
                broker=row.broker,
                state=state,
                started_at=row.started_at,
                last_seen_at=row.last_seen_at,
                stopped_at=row.stopped_at,
                session_expires_at=expires,
                holds_messages=state != "online" and now < expires,
                acknowledged=row.acknowledged,
                pending=row.pending,
                failures=row.failures,
            )
        )
    return sorted(members, key=lambda m: (m.state != "online", m.client_id))
