"""The platform status bus: committed status changes of every domain, to every process.

A domain records what changed in the session (:func:`queue_status`); once the transaction
commits — never before — the events go to the :class:`StatusBus` of that database engine
(:func:`status_bus`). Subscribers (the change streams of the API, dispatchers waiting for
work) each get a bounded queue; one that falls behind loses the oldest events and is told how
many (``StatusSubscription.overflowed``).

In the embedded deployment that is all: one process, one bus. In a fleet deployment several
processes (API replicas, ingest workers, dispatchers) share the state database, and a
:class:`BusBridge` on the broker (or, in the fleet profile, on the JetStream backbone, where
each domain's events land on a durable stream) carries each process's events to the others: every event a
process commits is published, as JSON, on ``dt/platform/v1/status/{domain}`` (QoS 1), and
every event another process published arrives on the local bus as if committed here (events
carry their origin, so a process never receives its own twice). Domains that keep their own
in-process hub (the twins' change feed) register a :meth:`StatusBus.on_remote` listener to be
fed what other processes committed.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from sqlalchemy import Engine, event
from sqlalchemy.orm import Session

from drivetrain.cloud.infra.waitqueue import WaitQueue
from drivetrain.core.errors import DrivetrainError
from drivetrain.core.transport import Message, Subscription, Transport

log = logging.getLogger(__name__)

#: Topic root of platform events on the broker (beside the vehicles' ``dt/v1/{vin}/...``).
STATUS_TOPIC_ROOT: Final = "dt/platform/v1/status"
DEFAULT_QUEUE: Final = 10_000
#: Largest message of status events accepted from the broker (bytes of JSON).
MAX_MESSAGE_BYTES: Final = 8 * 1024 * 1024
_SESSION_KEY: Final = "drivetrain.infra.status"


@dataclass(frozen=True, slots=True)
class StatusEvent:
    """A committed status change.

    Attributes:
        domain: the room that made it (``twins``, ``jobs``, ``campaigns``...).
        kind: what happened, in the domain's words (``created``, ``delivery``, ``finished``).
        tenant: whose it is (subscribers see their own tenant's events only).
        subject: what changed (a job id, a campaign id, a VIN).
        at: when (UTC).
        data: small JSON-ready facts (counts, states, reasons).
        origin: the process that committed it (set by the bus).
    """

    domain: str
    kind: str
    tenant: str
    subject: str
    at: datetime
    data: Mapping[str, Any] = field(default_factory=dict)
    origin: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "domain": self.domain, "kind": self.kind, "tenant": self.tenant,
            "subject": self.subject, "at": self.at.isoformat(), "data": dict(self.data),
            "origin": self.origin,
        }

    @classmethod
    def from_dict(cls, data: Any) -> StatusEvent:
        """Raises ValueError or TypeError for anything that is not a status event."""
        if not isinstance(data, dict):
            raise TypeError("a status event is a JSON object")
        for name in ("domain", "kind", "tenant", "subject", "at", "origin"):
            if not isinstance(data.get(name), str):
                raise TypeError(f"status event field {name!r} is missing or not a string")
        at = datetime.fromisoformat(data["at"])
        if at.tzinfo is None:
            raise ValueError("status event field 'at' has no timezone")
        details = data.get("data", {})
        if not isinstance(details, dict):
            raise TypeError("status event field 'data' is not an object")
        return cls(data["domain"], data["kind"], data["tenant"], data["subject"], at,
                   details, data["origin"])


class StatusSubscription(WaitQueue[StatusEvent]):
    """One subscriber's queue of events; made by :meth:`StatusBus.subscribe`."""

    def __init__(
        self, bus: StatusBus, tenant: str | None, domains: frozenset[str] | None, max_queue: int
    ) -> None:
        super().__init__(max_queue)
        self._bus = bus
        self.tenant = tenant
        self.domains = domains

    def wants(self, status: StatusEvent) -> bool:
        return (self.domains is None or status.domain in self.domains) and self.tenant in (
            None, status.tenant,
        )

    def close(self) -> None:
        """Stop receiving events and release a waiting ``get_batch``; idempotent."""
        self.active = False
        self._bus._remove(self)
        self.wake()


Relay = Callable[[list[StatusEvent]], None]


class StatusBus:
    """Fans committed status events out to subscribers, relays and remote listeners."""

    def __init__(self) -> None:
        self.origin = uuid.uuid4().hex
        self._lock = threading.Lock()
        self._subscriptions: list[StatusSubscription] = []
        self._relays: list[Relay] = []
        self._remote_listeners: list[Relay] = []

    def subscribe(
        self, *, tenant: str | None, domains: Iterable[str] | None = None,
        max_queue: int = DEFAULT_QUEUE,
    ) -> StatusSubscription:
        """Receive events of ``tenant`` (every tenant's with None) of ``domains`` (all: None)."""
        subscription = StatusSubscription(
            self, tenant, None if domains is None else frozenset(domains), max_queue
        )
        with self._lock:
            self._subscriptions.append(subscription)
        return subscription

    def _remove(self, subscription: StatusSubscription) -> None:
        with self._lock:
            if subscription in self._subscriptions:
                self._subscriptions.remove(subscription)

    def add_relay(self, relay: Relay) -> Callable[[], None]:
        """Also hand every event committed in this process to ``relay`` (a bridge to other
        processes); returns the function that removes it."""
        with self._lock:
            self._relays.append(relay)

        def remove() -> None:
            with self._lock:
                if relay in self._relays:
                    self._relays.remove(relay)

        return remove

    @property
    def relaying(self) -> bool:
        """True when events committed here travel to other processes."""
        with self._lock:
            return bool(self._relays)

    def on_remote(self, listener: Relay) -> None:
        """Hand ``listener`` every event committed by another process (see the module
        docstring); listeners live as long as the bus."""
        with self._lock:
            self._remote_listeners.append(listener)

    def publish(self, events: Iterable[StatusEvent]) -> None:
        """Deliver events committed in this process: to subscribers, then to the relays."""
        batch = [_stamped(e, self.origin) for e in events]
        if not batch:
            return
        self._deliver(batch)
        with self._lock:
            relays = list(self._relays)
        for relay in relays:
            try:
                relay(batch)
            except DrivetrainError as e:  # the broker is away: local subscribers still got it
                log.warning("status events not relayed to other processes: %s", e)

    def inject_remote(self, events: Iterable[StatusEvent]) -> None:
        """Deliver events another process committed (called by the bridge)."""
        batch = [e for e in events if e.origin != self.origin]
        if not batch:
            return
        self._deliver(batch)
        with self._lock:
            listeners = list(self._remote_listeners)
        for listener in listeners:
            listener(batch)

    def _deliver(self, batch: list[StatusEvent]) -> None:
        with self._lock:
            subscriptions = list(self._subscriptions)
        for status in batch:
            for subscription in subscriptions:
                if subscription.wants(status):
                    subscription._offer(status)


def _stamped(status: StatusEvent, origin: str) -> StatusEvent:
    if status.origin:
        return status
    return StatusEvent(status.domain, status.kind, status.tenant, status.subject, status.at,
                       status.data, origin)


_BUSES: weakref.WeakKeyDictionary[Engine, StatusBus] = weakref.WeakKeyDictionary()
_BUSES_LOCK = threading.Lock()


def decode_events(payload: bytes) -> list[StatusEvent]:
    """The status events of a message in the bus's JSON form (``{"events": [...]}``).

    Raises:
        ValueError: larger than :data:`MAX_MESSAGE_BYTES`, not JSON, or not that form.
    """
    try:
        if len(payload) > MAX_MESSAGE_BYTES:
            raise ValueError(f"{len(payload)} bytes; at most {MAX_MESSAGE_BYTES}")
        document = json.loads(payload)
        items = document["events"] if isinstance(document, dict) else None
        if not isinstance(items, list):
            raise TypeError("no 'events' list")
        return [StatusEvent.from_dict(item) for item in items]
    except (KeyError, TypeError, RecursionError) as e:
        raise ValueError(str(e)) from e


def status_bus(engine: Engine) -> StatusBus:
    """The status bus of ``engine`` (created on first use)."""
    with _BUSES_LOCK:
        bus = _BUSES.get(engine)
        if bus is None:
            bus = _BUSES[engine] = StatusBus()
        return bus


def _engine_of(session: Session) -> Engine:
    bind = session.get_bind()
    return bind if isinstance(bind, Engine) else bind.engine


def queue_status(session: Session, events: Iterable[StatusEvent]) -> None:
    """Publish ``events`` on the engine's status bus once the session's transaction commits
    (dropped if it rolls back)."""
    bus = status_bus(_engine_of(session))
    pending = session.info.get(_SESSION_KEY)
    if pending is None:
        pending = session.info[_SESSION_KEY] = []

        def after_commit(_session: Session) -> None:
            batch = list(pending)
            pending.clear()
            bus.publish(batch)

        event.listen(session, "after_commit", after_commit)
        event.listen(session, "after_soft_rollback", lambda _s, _t: pending.clear())
    pending.extend(events)


class BusBridge:
    """Carries a process's status events to the other processes through the broker.

    Args:
        bus: this process's status bus (``status_bus(database.engine)``).
        transport: a broker connection (``MqttTransport``); the bridge does not close it.
        root: the topic root (one per deployment sharing a broker).
        topic_of: the topic of a domain's events (default ``{root}/{domain}``); the fleet
            profile's JetStream backbone gives the domains with a stream of their own their
            own topic (``drivetrain.core.transport.jetstream_streams.backbone_topic``).
        inbound: the filters, under ``root``, of what other processes' events this process
            receives (default: every domain's).

    ``start()`` subscribes to every domain's topic and adds the outbound relay; ``stop()``
    undoes both. An event from the broker that does not parse is logged and dropped.
    """

    def __init__(
        self, bus: StatusBus, transport: Transport, *, root: str = STATUS_TOPIC_ROOT,
        topic_of: Callable[[str], str] | None = None, inbound: tuple[str, ...] = ("#",),
    ) -> None:
        self.bus = bus
        self.transport = transport
        self.root = root
        self.topic_of = topic_of or (lambda domain: f"{root}/{domain}")
        self.inbound = inbound
        self._subscriptions: list[Subscription] = []
        self._remove_relay: Callable[[], None] | None = None
        self.sent = 0
        self.received = 0
        self.dropped = 0

    def start(self) -> BusBridge:
        if not self._subscriptions:
            self._subscriptions = [
                self.transport.subscribe(f"{self.root}/{level}", self._receive, qos=1)
                for level in self.inbound
            ]
            self._remove_relay = self.bus.add_relay(self._send)
        return self

    def stop(self) -> None:
        if self._remove_relay is not None:
            self._remove_relay()
            self._remove_relay = None
        subscriptions, self._subscriptions = self._subscriptions, []
        for subscription in subscriptions:
            subscription.unsubscribe()

    def _send(self, events: list[StatusEvent]) -> None:
        by_domain: dict[str, list[dict[str, Any]]] = {}
        for status in events:
            by_domain.setdefault(status.domain, []).append(status.to_dict())
        for domain, items in by_domain.items():
            payload = json.dumps({"events": items}, separators=(",", ":")).encode()
            self.transport.publish(self.topic_of(domain), payload, qos=1)
            self.sent += len(items)

    def _receive(self, message: Message) -> None:
        try:
            events = decode_events(message.payload)
        except ValueError as e:
            self.dropped += 1
            log.warning("status event on %s dropped: %s", message.topic, e)
            return
        remote = [e for e in events if e.origin != self.bus.origin]
        self.received += len(remote)
        self.bus.inject_remote(remote)
