"""Delivering desired state to vehicles: the reconciler (the I/O shell around ``reconcile``).

Whenever a twin's desired version changes (or items expire) the twin is flagged
``send_pending``. The reconciler publishes, for each flagged twin, its delta — the pending,
unexpired desired values with the desired version — sealed with the cloud signing key
(``MessageKind.DESIRED_STATE``, wire format v1) on ``dt/v1/{vin}/state/desired`` as a
**retained, QoS 1** message. Retained means the broker (or the in-process transport) keeps
the latest delta per vehicle and hands it to the vehicle the moment it subscribes again: a
vehicle offline during a change gets it on reconnect, without the cloud tracking sessions.
A vehicle applies a delta only if its version is newer than the last one it applied, so
re-deliveries and duplicate sends are harmless.

The reconciler wakes on every committed desired change in this process (through the change
hub) and also polls, so changes made by other processes and expiries are picked up too.

**No vehicle link.** A reconciler given no transport (the embedded deployment without a
broker) still expires items, and says on every pending item why it waits —
``not delivered: no vehicle link`` (:data:`~drivetrain.cloud.twins.reconcile.NO_LINK_REASON`)
— instead of leaving it silently pending. Publishing the twin's delta later (a process with a
link) clears that reason.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from drivetrain.cloud.infra import Database
from drivetrain.cloud.twins.desired import expire_due
from drivetrain.cloud.twins.feed import Subscription, hub_for
from drivetrain.cloud.twins.models import DESIRED, TWINS, TwinRow
from drivetrain.cloud.twins.reconcile import NO_LINK_REASON, build_delta
from drivetrain.cloud.twins.rows import load_items
from drivetrain.core.crypto import SigningKey
from drivetrain.core.errors import DrivetrainError
from drivetrain.core.transport import STATE_DESIRED, Transport, vehicle_topic
from drivetrain.core.wire import MessageKind, new_message_id, seal_json

log = logging.getLogger(__name__)

#: Twins published per transaction.
SEND_BATCH: Final = 200


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    """What one reconciliation round did: deltas published and items expired."""

    sent: int
    expired: int
    not_delivered: int = 0


def send_pending(
    session: Session, transport: Transport, key: SigningKey, *, now: datetime | None = None,
    limit: int = SEND_BATCH,
) -> int:
    """Publish the delta of up to ``limit`` flagged twins; returns how many were published.

    A twin whose desired version moved on while its delta was being published stays flagged
    (the next round sends the newer one).

    Raises:
        TransportError: the transport refused a message (the twin stays flagged).
    """
    now = now or datetime.now(UTC)
    rows = session.scalars(
        select(TwinRow).where(TwinRow.send_pending.is_(True)).order_by(TwinRow.vin).limit(limit)
    ).all()
    twins = TWINS.c
    for row in rows:
        version, seq, message_id = row.desired_version, row.sent_seq + 1, new_message_id()
        delta = build_delta(version, load_items(session, row.vin), now)
        payload = seal_json(
            MessageKind.DESIRED_STATE, row.vin, delta.to_dict(), key=key, seq=seq,
            message_id=message_id,
        )
        transport.publish(vehicle_topic(row.vin, STATE_DESIRED), payload, qos=1, retain=True)
        session.connection().execute(
            update(TWINS)
            .where(twins.vin == row.vin)
            .values(
                sent_version=version, sent_seq=seq, sent_message_id=message_id, sent_at=now,
                send_pending=twins.desired_version != version,
            )
        )
    if rows:
        desired = DESIRED.c
        session.connection().execute(
            update(DESIRED)
            .where(desired.vin.in_([r.vin for r in rows]), desired.status == "pending",
                   desired.reason == NO_LINK_REASON)
            .values(reason=None)
        )
    return len(rows)


def mark_no_link(session: Session) -> int:
    """Say on every pending desired item that has no reason yet that it is not delivered for
    want of a vehicle link; returns how many were told."""
    desired = DESIRED.c
    return session.connection().execute(
        update(DESIRED)
        .where(desired.status == "pending", desired.reason.is_(None))
        .values(reason=NO_LINK_REASON)
    ).rowcount


class Reconciler:
    """Runs reconciliation rounds on a background thread: expire due items, publish deltas.

    Args:
        database: the state database.
        transport: where vehicles listen (in-process or an MQTT client); None: no vehicle
            link — pending items are marked ``not delivered: no vehicle link``.
        key: the cloud signing key (``drivetrain.cloud.fleet.cloud_signing_key``).
        poll_interval_s: longest wait between rounds when nothing wakes the reconciler.
    """

    def __init__(
        self, database: Database, transport: Transport | None, key: SigningKey, *,
        poll_interval_s: float = 2.0,
    ) -> None:
        self._database = database
        self._transport = transport
        self._key = key
        self._poll_interval_s = poll_interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._subscription: Subscription | None = None
        self.rounds = 0
        self.sent = 0
        self.errors = 0

    def run_once(self, now: datetime | None = None) -> DeliveryReport:
        """One round, on the caller's thread: expire due items, then publish every flagged
        twin's delta (in batches of :data:`SEND_BATCH`) — or, with no transport, mark the
        pending items not delivered.

        Raises:
            StorageError: the database failed.
            TransportError: a message could not be published.
        """
        now = now or datetime.now(UTC)
        with self._database.session() as session:
            expired = len(expire_due(session, now))
        if self._transport is None:
            with self._database.session() as session:
                told = mark_no_link(session)
            self.rounds += 1
            return DeliveryReport(sent=0, expired=expired, not_delivered=told)
        sent = 0
        while True:
            with self._database.session() as session:
                batch = send_pending(session, self._transport, self._key, now=now)
            sent += batch
            if batch < SEND_BATCH:
                break
        self.rounds += 1
        self.sent += sent
        return DeliveryReport(sent=sent, expired=expired)

    def start(self) -> None:
        """Start the background thread (idempotent)."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._subscription = hub_for(self._database.engine).subscribe(
            tenant=None, kinds=("desired", "failed")
        )
        self._thread = threading.Thread(
            target=self._loop, name="drivetrain-twins-reconciler", daemon=True
        )
        self._thread.start()

    def _loop(self) -> None:
        subscription = self._subscription
        assert subscription is not None
        while not self._stop.is_set():
            try:
                self.run_once()
            except DrivetrainError as e:  # keep reconciling; the next round retries
                self.errors += 1
                log.warning("twin reconciliation round failed: %s", e)
            subscription.get_batch(self._poll_interval_s)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the thread after its current round; idempotent."""
        self._stop.set()
        if self._subscription is not None:
            self._subscription.close()
        if self._thread is not None:
            self._thread.join(timeout_s)
        self._thread = None
        self._subscription = None
