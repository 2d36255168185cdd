"""``IngestWorker``: consumes the vehicles' uplink from a transport in micro-batches.

The worker joins the shared subscriptions ``$share/{group}/dt/v1/+/telemetry`` (and
``events``, ``ack``) with manual acknowledgement, so N stateless workers split the stream.
Messages accumulate until ``max_batch_messages`` are waiting or the oldest has waited
``max_delay_ms``; the micro-batch then goes through the pipeline, and **each message is
acknowledged only after the lake append, the dead letters and the counters are committed**.
A worker killed at any point leaves its unacknowledged messages with the broker, which
redelivers them when the session resumes (same client id); the pipeline's batch-id ledger and
the lake's idempotent append turn that at-least-once delivery into exactly-once storage.

When the pipeline fails because the platform is unavailable (database or lake), the
micro-batch is retried with back-off until it succeeds or the worker is stopped — never
acknowledged, never dropped. When it fails on something in the batch itself, after
``max_attempts`` the batch is tried in halves and the message it keeps failing on is set aside
as a ``processing_error`` dead letter (:mod:`.isolation`): one poison message never stalls
the worker, and the valid messages behind it are stored.
``stop()`` finishes the micro-batch in hand, acknowledges it, and returns; messages the
transport still holds stay unacknowledged for the next session.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Final, Self

from drivetrain.cloud.ingest.envelopes import RawMessage
from drivetrain.cloud.ingest.inbox import Inbox
from drivetrain.cloud.ingest.isolation import Failure, is_transient, settle
from drivetrain.cloud.ingest.membership import WorkerIdentity, record_heartbeat, record_stop
from drivetrain.cloud.ingest.metrics import IngestMetrics
from drivetrain.cloud.ingest.pipeline import IngestPipeline
from drivetrain.cloud.ingest.results import IngestReport
from drivetrain.cloud.ingest.service import prune_ingest_ledger
from drivetrain.cloud.ingest.sessions import forget_superseded_sessions
from drivetrain.cloud.ingest.webhooks import WebhookStats
from drivetrain.core import tracing
from drivetrain.core.errors import DrivetrainError, TransportError
from drivetrain.core.transport import (
    Message,
    Subscription,
    Transport,
    shared_filter,
    vehicle_filter,
)

_log = logging.getLogger("drivetrain.ingest")

#: The uplink channels a worker consumes.
UPLINK_CHANNELS: Final = ("telemetry", "events", "ack")
DEFAULT_GROUP: Final = "ingest"
#: How long ingested batch ids are remembered: longer than any redelivery (a worker's broker
#: session expires after 10 minutes by default, and may be configured up to a day), seconds.
DEFAULT_LEDGER_RETENTION_S: Final = 2 * 86_400.0


@dataclass(frozen=True)
class WorkerStats:
    """Counters since the worker started (a snapshot).

    Attributes:
        received: messages handed to the worker by the transport.
        acknowledged: messages processed, committed and acknowledged.
        micro_batches: micro-batches committed.
        samples_accepted, samples_refused, samples_not_consented: sample outcomes.
        not_consented_by_category: the samples dropped by consent, per privacy category.
        coarsened_by_region: accepted values the region's minimisation policy coarsened.
        messages_refused: messages dead-lettered as a whole.
        duplicates: re-delivered batches skipped.
        failures: micro-batch attempts that failed (and were retried or isolated).
        processing_errors: messages set aside as ``processing_error`` (poison messages).
        dead_letters_not_kept: dead letters over the rate limit (counted, not stored).
        last_error: the last failure, or "".
        last_batch_ms: wall time of the last committed micro-batch.
        pending: messages received and not yet acknowledged.
        twin_values_pending: latest values stored in the lake and not yet written to the twins
            (they are flushed every ``twin_flush_s`` and when the worker is idle).
        webhooks: the campaign webhook sender's counters (None: webhooks not fed).
    """

    received: int = 0
    acknowledged: int = 0
    micro_batches: int = 0
    samples_accepted: int = 0
    samples_refused: int = 0
    samples_not_consented: int = 0
    not_consented_by_category: Mapping[str, int] = field(default_factory=dict)
    coarsened_by_region: Mapping[str, int] = field(default_factory=dict)
    messages_refused: int = 0
    duplicates: int = 0
    failures: int = 0
    processing_errors: int = 0
    dead_letters_not_kept: int = 0
    last_error: str = ""
    last_batch_ms: float = 0.0
    pending: int = 0
    twin_values_pending: int = 0
    webhooks: WebhookStats | None = None


class IngestWorker:
    """Micro-batching consumer of the uplink (see the module docstring).

    Args:
        transport: where messages come from (``MqttTransport`` or the in-process bus).
        pipeline: what processes them.
        max_batch_messages: most messages per micro-batch (keep it at or below the MQTT
            client's receive maximum, the unacknowledged messages a broker will send).
        max_delay_ms: longest a message waits for its micro-batch to fill, milliseconds.
        group: the shared-subscription group the workers of one deployment share.
        on_batch: called after each committed micro-batch with its report (status lines).
        ledger_retention_s: how long ingested batch ids are remembered (re-deliveries older
            than this would still be skipped by the lake, but counted again), seconds.
        prune_interval_s: how often the worker forgets older ones, seconds.
        max_attempts: attempts at a micro-batch failing on its own content before its
            messages are tried apart (default: the pipeline's ``limits.max_attempts``).
        identity: when given, the worker records a heartbeat every ``identity.heartbeat_s``
            and its clean stop in the state database (:mod:`.membership`), so offline
            members of the shared subscription show in ``drivetrain ingest stats``.
        metrics: when given, the Prometheus instruments it updates (:mod:`.metrics`).
    """

    def __init__(
        self,
        transport: Transport,
        pipeline: IngestPipeline,
        max_batch_messages: int = 500,
        max_delay_ms: float = 200.0,
        *,
        group: str = DEFAULT_GROUP,
        on_batch: Callable[[IngestReport], None] | None = None,
        ledger_retention_s: float = DEFAULT_LEDGER_RETENTION_S,
        prune_interval_s: float = 600.0,
        max_attempts: int | None = None,
        identity: WorkerIdentity | None = None,
        metrics: IngestMetrics | None = None,
    ) -> None:
        if max_batch_messages < 1:
            raise ValueError(f"max_batch_messages must be >= 1, got {max_batch_messages}")
        if max_delay_ms < 0:
            raise ValueError(f"max_delay_ms must be >= 0, got {max_delay_ms}")
        self.transport = transport
        self.pipeline = pipeline
        if pipeline.stream_to is None:  # campaigns' MQTT destinations go out on the same link
            pipeline.stream_to = transport
        self.max_batch_messages = max_batch_messages
        self.max_delay_s = max_delay_ms / 1000.0
        self.group = group
        self._on_batch = on_batch
        # Bounded: a full queue blocks the transport's delivery thread, which is the
        # back-pressure to publishers (in-process) or to the broker's receive window (MQTT).
        # Each message with the monotonic time it was received (the ingest lag starts there).
        self._inbox: Inbox[tuple[Message, float]] = Inbox(4 * max_batch_messages)
        self._subscriptions: list[Subscription] = []
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._stats = WorkerStats()
        self._idle = threading.Condition(self._lock)
        self._unacked = 0  # received and not yet acknowledged
        self._received = 0
        self.ledger_retention_s = ledger_retention_s
        self.prune_interval_s = prune_interval_s
        self._pruned_at = time.monotonic()
        self.max_attempts = max_attempts or pipeline.limits.max_attempts
        self._flushed_at = time.monotonic()
        self.identity = identity
        self.metrics = metrics
        if metrics is not None:
            metrics.watch(self)
        self._beat_at = 0.0
        self._started_at = datetime.now(UTC)
        self._flush_failures = 0

    # --- lifecycle ------------------------------------------------------------------------------
    def start(self) -> IngestWorker:
        """Subscribe and start the processing thread; returns self.

        Raises:
            TransportError: the subscriptions could not be made.
        """
        if self._thread is not None:
            return self
        self._thread = threading.Thread(target=self._run, name="drivetrain-ingest", daemon=True)
        self._thread.start()
        for channel in UPLINK_CHANNELS:
            topic_filter = shared_filter(self.group, vehicle_filter(channel))
            self._subscriptions.append(
                self.transport.subscribe(topic_filter, self._receive, qos=1, manual_ack=True)
            )
        return self

    def stop(self, timeout_s: float = 30.0) -> None:
        """Finish the micro-batch in hand and whatever is already queued, acknowledge it, and
        stop the thread (the subscriptions stay with the transport's session). Idempotent."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                _log.error("ingest worker did not finish its micro-batch within %.0f s", timeout_s)

    def close(self, timeout_s: float = 30.0) -> None:
        """``stop``, then end the subscriptions too — for a worker that shares a long-lived
        in-process transport with later consumers (no broker session keeps them, and a
        stopped member of the shared group would otherwise still be handed its share of the
        messages). Idempotent."""
        self.stop(timeout_s)
        for subscription in self._subscriptions:
            subscription.unsubscribe()
        self._subscriptions.clear()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """True while the processing thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def stats(self) -> WorkerStats:
        """A snapshot of the counters."""
        with self._lock:
            hooks = self.pipeline.webhooks
            return replace(self._stats, received=self._received, pending=self._unacked,
                           twin_values_pending=self.pipeline.pending_reports,
                           webhooks=None if hooks is None else hooks.stats())

    def wait_idle(self, timeout_s: float = 30.0) -> bool:
        """Wait until every received message is acknowledged; False on timeout (tests, demo)."""
        deadline = time.monotonic() + timeout_s
        with self._idle:
            while self._unacked or self.pipeline.pending_reports:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(min(remaining, 0.05))
        return True

    # --- receiving and processing ---------------------------------------------------------------
    def _receive(self, message: Message) -> None:
        """Queue ``message`` for the next micro-batch.

        Raises:
            TransportError: the worker is stopping. The message is not handled: MQTT leaves
                it unacknowledged for the next session; the in-process bus hands it to
                another member of the shared group (or reports it undelivered) — a stopping
                worker never swallows a message.
        """
        if self._stopping.is_set():
            raise TransportError(f"ingest worker stopping: message on {message.topic!r} not taken")
        with self._lock:
            self._received += 1  # (a counter of its own: a stats record per message cost more)
            self._unacked += 1
        item = (message, time.monotonic())
        while not self._stopping.is_set():
            if self._inbox.put(item, timeout_s=0.1):
                return
        self._done(1)
        raise TransportError(f"ingest worker stopping: message on {message.topic!r} not taken")

    def _done(self, messages: int) -> None:
        with self._lock:
            self._unacked -= messages
            self._idle.notify_all()

    def _collect(self) -> list[tuple[Message, float]]:
        batch = self._inbox.take(self.max_batch_messages, timeout_s=0.05)
        if not batch:
            return []
        deadline = time.monotonic() + self.max_delay_s
        while len(batch) < self.max_batch_messages:
            remaining = deadline - time.monotonic()
            # short waits, so a stop request cuts the wait for a fuller batch short
            more = self._inbox.take(
                self.max_batch_messages - len(batch), timeout_s=min(remaining, 0.05)
            )
            batch.extend(more)
            if not more and (remaining <= 0 or self._stopping.is_set()):
                break
        return batch

    def _run(self) -> None:
        while True:
            if self._stopping.is_set() and not self._inbox:
                self._flush_twins(idle=True)
                self._membership(stopping=True)
                return
            self._prune_when_due()
            self._membership(stopping=False)
            received = self._collect()
            if not received:
                self._flush_twins(idle=True)
                continue
            batch = [message for message, _ in received]
            reports = self._process_until_done(batch)
            if reports is None:
                self._done(len(batch))
                return  # stopped while the pipeline kept failing: nothing acknowledged
            self.transport.acknowledge(batch)  # (MQTT: the PUBACKs in one write)
            self._count(reports, len(batch))
            if self.metrics is not None:
                acked_at = time.monotonic()
                self.metrics.committed(reports, [acked_at - at for _, at in received])
            self._done(len(batch))
            self._flush_twins(idle=False)

    def _flush_twins(self, *, idle: bool) -> None:
        """Write the pending latest values to the twins when idle or every
        ``pipeline.twin_flush_s`` (see :mod:`.pending_reports`). A platform failure leaves
        them pending; values the twins refuse ``max_attempts`` times are dropped (they are
        in the lake)."""
        if not self.pipeline.pending_reports:
            return
        if not idle and time.monotonic() - self._flushed_at < self.pipeline.twin_flush_s:
            return
        self._flushed_at = time.monotonic()
        try:
            self.pipeline.flush_reported()
            self._flush_failures = 0
        except Exception as e:  # noqa: BLE001 - judged just below: transient or not
            transient = is_transient(e)
            self._flush_failures += 0 if transient else 1
            _log.error("writing the latest values to the twins failed: %s", e, exc_info=e)
            if self._flush_failures >= self.max_attempts:
                dropped = self.pipeline.drop_pending_reports()
                _log.error("dropped %d latest values the twins refused", dropped)
                self._flush_failures = 0
            with self._idle:
                self._idle.notify_all()
            return
        with self._idle:
            self._idle.notify_all()

    def _membership(self, *, stopping: bool) -> None:
        """Record a heartbeat when due (or the clean stop); housekeeping: a failure is
        logged and ingestion goes on."""
        if self.identity is None:
            return
        if not stopping and time.monotonic() - self._beat_at < self.identity.heartbeat_s:
            return
        self._beat_at = time.monotonic()
        stats = self.stats()
        try:
            with self.pipeline.database.session() as session:
                now = datetime.now(UTC)
                record_heartbeat(
                    session,
                    self.identity,
                    now=now,
                    started_at=self._started_at,
                    acknowledged=stats.acknowledged,
                    pending=stats.pending,
                    failures=stats.failures,
                )
                if stopping:
                    record_stop(session, self.identity.client_id, now=now)
        except DrivetrainError as e:
            _log.warning("recording the worker's heartbeat failed (will try again): %s", e)

    def _prune_when_due(self) -> None:
        """Forget ingested batch ids older than the retention, and vehicle sessions replaced
        before the samples' acceptance window (:func:`.sessions.forget_superseded_sessions`),
        every ``prune_interval_s``."""
        if time.monotonic() - self._pruned_at < self.prune_interval_s:
            return
        self._pruned_at = time.monotonic()
        now = datetime.now(UTC)
        window_start = now - timedelta(microseconds=self.pipeline.window.max_age_ns // 1000)
        try:
            with self.pipeline.database.session() as session:
                forgotten = prune_ingest_ledger(
                    session, older_than=timedelta(seconds=self.ledger_retention_s), now=now
                )
                replaced = forget_superseded_sessions(session, superseded_before=window_start)
        except DrivetrainError as e:  # pruning is housekeeping: ingestion goes on
            _log.warning("pruning the ingest ledger failed (will try again): %s", e)
            return
        if forgotten:
            _log.info(
                "forgot %d ingested batch ids older than %.0f s", forgotten, self.ledger_retention_s
            )
        if replaced:
            _log.info("forgot %d vehicle sessions replaced before %s", replaced, window_start)

    def _process_until_done(self, batch: list[Message]) -> list[IngestReport] | None:
        """Settle ``batch`` (see :mod:`.isolation`): its reports, or None when stopped while
        a failure was being waited out (then nothing may be acknowledged)."""
        raw = [RawMessage(m.topic, m.payload) for m in batch]
        started = time.perf_counter()

        def failed(e: BaseException) -> None:
            with self._lock:
                self._stats = replace(
                    self._stats,
                    failures=self._stats.failures + 1,
                    last_error=f"{type(e).__name__}: {e}",
                )

        # One consumer span per micro-batch (OpenTelemetry messaging, batch receive): the
        # pipeline links it to each message's producer context.
        with tracing.span("ingest.receive", {
            "messaging.system": "mqtt",
            "messaging.consumer.group.name": self.group,
            "messaging.batch.message_count": len(batch),
        }, kind="consumer"):
            settled = settle(
                raw,
                self.pipeline.process,
                self._set_aside,
                max_attempts=self.max_attempts,
                stop=self._stopping,
                on_failure=failed,
            )
        if settled is None:
            return None
        with self._lock:
            self._stats = replace(
                self._stats,
                last_batch_ms=(time.perf_counter() - started) * 1000,
                processing_errors=self._stats.processing_errors + settled.set_aside,
            )
        return settled.reports

    def _set_aside(self, message: RawMessage, failure: Failure) -> IngestReport:
        """Dead-letter a poison message; if even attributing it fails on its content, keep
        its bare bytes (a transient failure propagates: retried)."""
        _log.error(
            "setting aside a message on %r as processing_error after %d failed attempts: %s",
            message.topic[:200],
            failure.attempts,
            failure.error,
        )
        try:
            return self.pipeline.set_aside(message, failure.error, failure.attempts)
        except Exception as e:  # judged just below: transient or not
            if is_transient(e):
                raise
            return self.pipeline.set_aside(
                message, failure.error, failure.attempts, attribute=False
            )

    def _count(self, reports: list[IngestReport], messages: int) -> None:
        with self._lock:
            s = self._stats
            self._stats = replace(
                s,
                acknowledged=s.acknowledged + messages,
                micro_batches=s.micro_batches + 1,
                samples_accepted=s.samples_accepted + sum(r.samples_accepted for r in reports),
                samples_refused=s.samples_refused + sum(r.samples_refused for r in reports),
                samples_not_consented=s.samples_not_consented
                + sum(r.samples_not_consented for r in reports),
                not_consented_by_category=_added(
                    s.not_consented_by_category,
                    *(r.not_consented_by_category for r in reports),
                ),
                coarsened_by_region=_added(
                    s.coarsened_by_region, *(r.coarsened_by_region for r in reports)
                ),
                messages_refused=s.messages_refused + sum(r.count("refused") for r in reports),
                duplicates=s.duplicates + sum(r.count("duplicate") for r in reports),
                dead_letters_not_kept=s.dead_letters_not_kept
                + sum(r.dead_letters_not_kept for r in reports),
            )
        if self._on_batch is not None:
            for report in reports:
                try:
                    self._on_batch(report)
                except Exception:  # noqa: BLE001 - a status callback must not stop ingestion
                    _log.exception("on_batch callback raised")


def _added(counts: Mapping[str, int], *more: Mapping[str, int]) -> dict[str, int]:
    """``counts`` plus each of ``more``, key by key."""
    total = dict(counts)
    for other in more:
        for key, n in other.items():
            total[key] = total.get(key, 0) + n
    return total
