"""The platform's consumer groups of the backbone, run in a process.

:class:`ConsumerGroups` joins each named group of :data:`~.effects.CONSUMERS` as a member of
its durable JetStream consumer (``$share/{group}/{topic}``): the group's members — any
number of processes, stateless — share the stream's messages, and a member that stops leaves
its unacknowledged messages to the others or to its restart. Each message is applied in a
state-database transaction that also records its id (:mod:`.ledger`) and acknowledged only
after the commit: a member killed at any point loses nothing and applies nothing twice.

``since`` first **replays** each group's stream from a point in time through a consumer of
this process alone — the same handler, so messages already applied are skipped and only the
missing ones take effect (after restoring the state database from a backup, replay from the
backup's time) — until the replay reaches the time it started or the stream is idle for a
moment; then the process joins the group.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final

from drivetrain.cloud.infra import Database
from drivetrain.cloud.infra.bus import StatusEvent, decode_events
from drivetrain.cloud.streams import ledger
from drivetrain.cloud.streams.effects import CONSUMERS, StreamConsumer
from drivetrain.core.errors import ConfigurationError
from drivetrain.core.settings import Settings
from drivetrain.core.transport import Message, MessageHandler, Subscription
from drivetrain.core.transport.jetstream import JetStreamTransport, content_id

log = logging.getLogger(__name__)

#: How long the ledger remembers an id: past the streams' 7-day retention.
LEDGER_KEEP: Final = timedelta(days=8)
_PRUNE_EVERY_S: Final = 3600.0
#: The events ingest announces per batch (:mod:`drivetrain.cloud.ingest.announce`).
_PER_BATCH: Final = frozenset({("telemetry", "validated"), ("security", "reported")})


@dataclass
class GroupStats:
    """What one group's member in this process did."""

    applied: int = 0  # messages whose effect was committed here
    duplicates: int = 0  # messages already in the ledger (redelivered, replayed)
    dropped: int = 0  # messages that are not status events (logged, acknowledged)
    failed: int = 0  # attempts that raised (the message goes back to the stream)
    replayed: int = 0  # messages delivered by the replay from ``since``


@dataclass
class ConsumerGroups:
    """Members of the platform's consumer groups in this process (see the module docstring).

    Args:
        database: the state database the effects go to.
        backbone: a connected ``JetStreamTransport`` (not closed by :meth:`stop`).
        groups: names from :data:`CONSUMERS` (default: all).
        since: replay each group's stream from this time before joining the group.
        replay_idle_s: a replay that receives nothing for this long is complete.
        group_prefix: put before each group's name on the backbone and in the ledger (two
            deployments sharing one JetStream keep their groups apart).
    """

    database: Database
    backbone: JetStreamTransport
    groups: Sequence[str] = tuple(CONSUMERS)
    since: datetime | None = None
    replay_idle_s: float = 2.0
    group_prefix: str = ""
    stats: dict[str, GroupStats] = field(default_factory=dict)
    _subscriptions: list[Subscription] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _pruned_at: float = 0.0

    def __post_init__(self) -> None:
        unknown = [g for g in self.groups if g not in CONSUMERS]
        if unknown:
            raise ConfigurationError(
                f"consumer group {unknown[0]!r}: expected one of {', '.join(CONSUMERS)}"
            )
        if self.since is not None and self.since.tzinfo is None:
            raise ConfigurationError("--from must name a time zone (e.g. 2026-12-07T09:00Z)")
        self._pruned_at = time.monotonic()

    def start(self) -> ConsumerGroups:
        """Replay (with ``since``), then join every group.

        Raises:
            TransportError: a consumer cannot be created on the backbone.
        """
        for name in self.groups:
            consumer = CONSUMERS[name]
            self.stats[name] = GroupStats()
            if self.since is not None:
                self._replay(consumer, self.since)
            self._subscriptions.append(
                self.backbone.subscribe(
                    f"$share/{self.group_prefix}{name}/{consumer.topic}", self._handler(consumer)
                )
            )
        return self

    def stop(self) -> None:
        """Leave the groups (unacknowledged messages go back to the stream); idempotent."""
        subscriptions, self._subscriptions = self._subscriptions, []
        for subscription in subscriptions:
            subscription.unsubscribe()

    def _replay(self, consumer: StreamConsumer, since: datetime) -> None:
        started = datetime.now(UTC)
        caught_up = threading.Event()
        last = [time.monotonic()]
        apply = self._handler(consumer)

        def handle(message: Message) -> None:
            last[0] = time.monotonic()
            apply(message)
            self.stats[consumer.group].replayed += 1
            if any(e.at >= started for e in _events(message)):
                caught_up.set()

        subscription = self.backbone.replay(consumer.topic, since, handle)
        try:
            while not caught_up.wait(0.2):
                if time.monotonic() - last[0] > self.replay_idle_s:
                    break
        finally:
            subscription.unsubscribe()
        log.info(
            "%s: replayed %d messages from %s",
            consumer.group,
            self.stats[consumer.group].replayed,
            since.isoformat(),
        )

    def _handler(self, consumer: StreamConsumer) -> MessageHandler:
        stats = self.stats[consumer.group]

        def handle(message: Message) -> None:
            try:
                events = decode_events(message.payload)
            except ValueError as e:
                with self._lock:
                    stats.dropped += 1
                log.warning("%s: message on %s dropped: %s", consumer.group, message.topic, e)
                return  # acknowledged: a redelivery would not parse either
            message_id = message.message_id or content_id(message.topic, message.payload)
            keyed = [(claim_key(e, message_id), e) for e in events]
            now = datetime.now(UTC)
            try:
                with self.database.session() as session:
                    new = ledger.claim_new(
                        session, self.group_prefix + consumer.group,
                        {k for k, _ in keyed} or {message_id}, now,
                    )
                    fresh = bool(new)
                    if fresh:
                        consumer.apply(session, _once(keyed, new, message_id))
            except Exception:
                with self._lock:
                    stats.failed += 1
                raise  # not acknowledged: the stream delivers it again
            with self._lock:
                if fresh:
                    stats.applied += 1
                else:
                    stats.duplicates += 1
            self._prune_now_and_then(now)

        return handle

    def _prune_now_and_then(self, now: datetime) -> None:
        with self._lock:
            if time.monotonic() - self._pruned_at < _PRUNE_EVERY_S:
                return
            self._pruned_at = time.monotonic()
        with self.database.session() as session:
            ledger.prune(session, now - LEDGER_KEEP)


def claim_key(event: StatusEvent, message_id: str) -> str:
    """What the ledger records ``event`` under: its batch id when it announces an ingest batch
    (one-batch messages and chunks of many alike), else the id of its message."""
    batch_id = event.data.get("batch_id")
    if (event.domain, event.kind) in _PER_BATCH and isinstance(batch_id, str) and batch_id:
        return batch_id
    return message_id


def _once(
    keyed: Sequence[tuple[str, StatusEvent]], new: set[str], message_id: str
) -> list[StatusEvent]:
    """The events to apply: those claimed just now, each batch once (a message may carry a
    batch twice when it was redelivered within one micro-batch)."""
    taken: set[str] = set()
    out = []
    for key, event in keyed:
        if key in new and (key == message_id or key not in taken):
            out.append(event)
            taken.add(key)
    return out


def _events(message: Message) -> list[StatusEvent]:
    try:
        return decode_events(message.payload)
    except ValueError:
        return []


def open_consumer_groups(
    settings: Settings,
    database: Database,
    client_id: str,
    groups: Sequence[str] = tuple(CONSUMERS),
    since: datetime | None = None,
    group_prefix: str = "",
) -> tuple[JetStreamTransport, ConsumerGroups]:
    """Connect to ``settings.backbone_url`` and start members of ``groups`` there.

    Raises:
        ConfigurationError: no ``backbone_url``, or an unknown group.
        TransportError: the backbone cannot be reached.
    """
    if settings.backbone_url is None:
        raise ConfigurationError("the consumer groups need backbone_url (nats://host:port)")
    backbone = JetStreamTransport(
        settings.backbone_url, client_id=client_id, replicas=settings.backbone_replicas,
        namespace=settings.backbone_namespace,
    )
    try:
        return backbone, ConsumerGroups(
            database, backbone, groups, since, group_prefix=group_prefix
        ).start()
    except BaseException:
        backbone.close()
        raise
