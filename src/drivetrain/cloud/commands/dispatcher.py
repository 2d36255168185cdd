"""The dispatcher: the thin I/O shell that moves jobs' deliveries to vehicles.

Each round (``run_once``), in its own transactions: start scheduled jobs that are due; apply
the vehicles' acknowledgements; time out deliveries past their deadline; claim what each
running job's rollout allows, seal each message for its vehicle with the cloud key and publish
it **retained, QoS 1** on ``dt/v1/{vin}/{channel}``; clear the retained slots of settled
messages; settle jobs (counts, aborts, finished); then run the ``after_round`` steps of the
domains whose jobs need more than delivery (an OTA rollout takes its vehicles' answers in and
judges its waves there). Decisions are in ``machine`` and ``rounds``.

A vehicle offline when its message is published gets it from the broker's retained store when
it subscribes again, and acts on it if it is still fresh (a command's ``expires_ns``); if no
acknowledgement comes within the policy's timeout, the delivery times out saying so.

Without a vehicle link (``link=None``: an embedded deployment with no broker), nothing is
sent and waiting deliveries say ``not delivered: no vehicle link``.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from drivetrain.cloud.commands.payloads import Sealer
from drivetrain.cloud.commands.rounds import (
    AckReport,
    Claimed,
    RefusedAck,
    apply_acks,
    claim_deliveries,
    expire_deliveries,
    mark_no_link,
    settle_jobs,
    slots_to_clear,
    start_due_jobs,
    unclaim,
)
from drivetrain.cloud.infra import Database
from drivetrain.cloud.infra.bus import status_bus
from drivetrain.core.crypto import SigningKey
from drivetrain.core.errors import DrivetrainError, TransportError
from drivetrain.core.transport import PublishTicket, QoS, Transport, vehicle_topic

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RoundReport:
    """What one dispatcher round did."""

    started: int
    acks: AckReport
    sent: int
    unsent: int
    cleared: int
    settled: int
    wall_s: float


@dataclass
class DispatcherStats:
    """Totals since the dispatcher was made."""

    rounds: int = 0
    sent: int = 0
    succeeded: int = 0
    failed: int = 0
    refused_acks: int = 0
    errors: int = 0
    last_error: str | None = None
    recent_refusals: list[RefusedAck] = field(default_factory=list)


class Dispatcher:
    """Runs dispatcher rounds, on the caller's thread (``run_once``) or a background thread.

    Args:
        database: the state database.
        link: the vehicle link (an MQTT client or the in-process bus); None: no link.
        key: the cloud signing key (``drivetrain.cloud.fleet.cloud_signing_key``).
        poll_interval_s: longest wait between rounds when nothing wakes the dispatcher.
        after_round: steps run at the end of each round with the round's time, each in its
            own transactions (an owner of continuous jobs acting on their answers); a step
            that raises is logged and counted in ``stats.errors``, and the round goes on.
    """

    def __init__(
        self, database: Database, link: Transport | None, key: SigningKey, *,
        poll_interval_s: float = 0.5,
        after_round: Sequence[Callable[[datetime], object]] = (),
    ) -> None:
        self.after_round = list(after_round)
        self.database = database
        self.link = link
        self.key = key
        self.poll_interval_s = poll_interval_s
        self.stats = DispatcherStats()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._acks_seen: set[int] = set()

    def run_once(self, now: datetime | None = None) -> RoundReport:
        """One round (see the module docstring); rounds never overlap.

        Raises:
            StorageError: the database failed (what was committed stays; the next round
                carries on).
        """
        with self._lock:
            return self._round(now or datetime.now(UTC))

    def _round(self, now: datetime) -> RoundReport:
        began = time.perf_counter()
        seen = set(self._acks_seen)  # kept only if the transaction commits
        with self.database.session() as session:
            started = start_due_jobs(session, now)
            acks = apply_acks(session, now, seen)
            touched = set(acks.jobs) | expire_deliveries(session, now) | set(started)
        self._acks_seen = seen
        for refusal in acks.refused:
            log.warning("acknowledgement refused (%s): %s", refusal.reason, refusal.detail)
        sent = unsent = 0
        if self.link is None:
            with self.database.session() as session:
                touched |= mark_no_link(session)
        else:
            while True:
                with self.database.session() as session:
                    claimed = claim_deliveries(session, now, uuid.uuid4().hex)
                if not claimed:
                    break
                done, failed = self._publish(claimed, now)
                sent += done
                unsent += len(failed)
                touched.update(c.job_id for c in claimed)
                if failed:
                    with self.database.session() as session:
                        unclaim(session, failed, "not delivered: the vehicle link refused it; "
                                "retrying")
                    break
        cleared = self._clear_slots() if self.link is not None else 0
        with self.database.session() as session:
            progress = settle_jobs(session, now, touched)
        stats = self.stats
        for step in self.after_round:
            try:
                step(now)
            except DrivetrainError as e:
                stats.errors += 1
                stats.last_error = str(e)
                log.warning("after-round step %r failed: %s", step, e)
        stats.rounds += 1
        stats.sent += sent
        stats.succeeded += acks.succeeded
        stats.failed += acks.failed
        stats.refused_acks += len(acks.refused)
        stats.recent_refusals = (stats.recent_refusals + acks.refused)[-100:]
        return RoundReport(len(started), acks, sent, unsent, cleared, len(progress),
                           time.perf_counter() - began)

    def _publish(self, claimed: Sequence[Claimed], now: datetime) -> tuple[int, list[Claimed]]:
        """Seal and publish ``claimed``; returns (published, refused by the link).

        A message the link refused at once is returned to the queue. One the broker did not
        confirm in time may still have gone out, so it stays delivered: it is settled by an
        acknowledgement or times out (and is retried as the policy says) — never sent twice
        under two ids.
        """
        assert self.link is not None
        sealer = Sealer(self.key, int(now.timestamp() * 1e9))
        tickets: list[tuple[Claimed, PublishTicket]] = []
        failed: list[Claimed] = []
        link = self.link
        # A link whose publish returns at once (the in-process bus) gains nothing from
        # tickets; one that waits for the broker's acknowledgement (MQTT) keeps many in flight.
        publish = (
            _published(link) if type(link).publish_async is Transport.publish_async
            else link.publish_async
        )
        for item in claimed:
            body = sealer.body_bytes(item.kind, item.body_text, item.freshness_s)
            payload = sealer.seal(item.kind, item.vin, body, item.message_id)
            try:
                ticket = publish(
                    vehicle_topic(item.vin, item.channel), payload, qos=1, retain=True
                )
            except TransportError as e:
                log.warning("vehicle link refused a message to %s: %s", item.vin, e)
                failed.append(item)
                continue
            tickets.append((item, ticket))
        published = 0
        for item, ticket in tickets:
            try:
                ticket.wait(30.0)
            except TransportError as e:
                log.warning("vehicle link did not confirm the message to %s: %s", item.vin, e)
            else:
                published += 1
        return published, failed

    def _clear_slots(self) -> int:
        assert self.link is not None
        with self.database.session() as session:
            slots = slots_to_clear(session)
            for vin, channel in slots:
                # An empty retained message removes the slot's message (MQTT 5 §3.3.1.3).
                self.link.publish(vehicle_topic(vin, channel), b"", qos=1, retain=True)
        return len(slots)

    # --- background thread -----------------------------------------------------------------------
    def start(self) -> Dispatcher:
        """Run rounds on a background thread until ``stop()`` (idempotent)."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="drivetrain-dispatcher",
                                            daemon=True)
            self._thread.start()
        return self

    def _loop(self) -> None:
        wake = status_bus(self.database.engine).subscribe(tenant=None, domains=("jobs",))
        try:
            while not self._stop.is_set():
                try:
                    self.run_once()
                except DrivetrainError as e:  # keep dispatching; the next round retries
                    self.stats.errors += 1
                    self.stats.last_error = str(e)
                    log.warning("dispatcher round failed: %s", e)
                # Woken early by job events (a new or cancelled job; the progress a round
                # itself published costs one more, idle round).
                wake.get_batch(self.poll_interval_s)
        finally:
            wake.close()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the background thread after its current round; idempotent."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout_s)


_DONE = PublishTicket.completed("", 1)


def _published(link: Transport) -> Callable[..., PublishTicket]:
    """``link.publish`` returning one shared, completed ticket."""

    def publish(topic: str, payload: bytes, *, qos: QoS, retain: bool) -> PublishTicket:
        link.publish(topic, payload, qos=qos, retain=retain)
        return _DONE

    return publish
