"""``InProcessTransport``: the embedded message bus, one process, no broker.

Delivery semantics (documented in docs/transport.md):

- **Asynchronous, in order.** ``publish`` routes the message to the subscriptions that match at
  that moment and puts it on a bounded queue; one dispatcher thread delivers queued messages in
  publish order, calling handlers one at a time. A subscriber therefore sees messages in the
  order they were published, and never two at once.
- **Back-pressure, never silent loss.** When the queue holds ``max_queue`` messages, ``publish``
  blocks until there is room; after ``publish_timeout_s`` it raises
  ``BackpressureTimeoutError`` and the message is not published. A handler that publishes (it
  runs on the dispatcher thread) is never blocked — blocking there would wait for itself — so its
  messages may briefly exceed the bound.
- **QoS 1 = at least once within the process.** A handler that raises has not acknowledged the
  message: it is delivered again (``Message.attempt`` > 1, MQTT's DUP) up to ``max_attempts``
  times; a shared subscription retries on the group's next member. QoS 0 is tried once.
- **Handler errors are isolated.** An exception in one handler never stops delivery to others;
  each one is counted in ``stats()`` and reported to ``on_handler_error`` (default: logged).
- **Retained messages** (``retain=True``) are kept per topic and delivered to later plain
  subscriptions whose filter matches, flagged ``retain=True``; an empty payload clears one.
  Shared subscriptions receive no retained messages (MQTT 5 §4.8.2).
- ``drain()`` waits until everything queued has been delivered; ``close()`` refuses new
  messages, delivers what is queued, and stops the dispatcher thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace

from drivetrain.core.errors import BackpressureTimeoutError, TransportClosedError, TransportError
from drivetrain.core.transport.base import (
    HandlerFailure,
    Message,
    MessageHandler,
    QoS,
    Subscription,
    Transport,
    TransportStats,
    as_payload_bytes,
    check_qos,
)
from drivetrain.core.transport.topics import (
    split_shared_filter,
    topic_matches,
    validate_topic_filter,
    validate_topic_name,
)

_log = logging.getLogger("drivetrain.transport")


class _SharedGroup:
    """The members of one ``$share/{group}/{filter}``; hands out members round-robin."""

    def __init__(self, name: str, plain_filter: str) -> None:
        self.name = name
        self.plain_filter = plain_filter
        self.members: list[Subscription] = []
        self._next = 0

    def next_member(self) -> Subscription | None:
        """The next active member in turn, or None when the group has none (caller holds lock)."""
        active = [m for m in self.members if m.active]
        if not active:
            return None
        member = active[self._next % len(active)]
        self._next = (self._next + 1) % len(active)
        return member


@dataclass
class _Queued:
    message: Message
    targets: list[Subscription | _SharedGroup]


def _log_failure(failure: HandlerFailure) -> None:
    outcome = "gave up" if failure.gave_up else "will retry"
    _log.error(
        "handler for %r raised on topic %r (attempt %d, %s): %r",
        failure.topic_filter,
        failure.message.topic,
        failure.message.attempt,
        outcome,
        failure.error,
        exc_info=failure.error,
    )


class InProcessTransport(Transport):
    """Thread-safe publish/subscribe inside one process (see the module docstring).

    Args:
        max_queue: most messages waiting for delivery before ``publish`` blocks (>= 1).
        publish_timeout_s: how long a blocked ``publish`` waits for room before raising
            ``BackpressureTimeoutError``; None waits indefinitely.
        max_attempts: deliveries of a QoS 1 message to a subscription whose handler raises
            (>= 1).
        on_handler_error: called (on the dispatcher thread) for every handler exception;
            default logs it on the ``drivetrain.transport`` logger.
    """

    def __init__(
        self,
        *,
        max_queue: int = 10_000,
        publish_timeout_s: float | None = 30.0,
        max_attempts: int = 3,
        on_handler_error: Callable[[HandlerFailure], None] | None = None,
    ) -> None:
        if max_queue < 1:
            raise ValueError(f"max_queue must be >= 1, got {max_queue}")
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")
        if publish_timeout_s is not None and publish_timeout_s < 0:
            raise ValueError(f"publish_timeout_s must be >= 0 or None, got {publish_timeout_s}")
        self._max_queue = max_queue
        self._publish_timeout_s = publish_timeout_s
        self._max_attempts = max_attempts
        self._on_handler_error = on_handler_error or _log_failure

        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._not_full = threading.Condition(self._lock)
        self._idle = threading.Condition(self._lock)
        self._queue: deque[_Queued] = deque()
        self._unfinished = 0
        self._closed = False

        self._subscriptions: list[Subscription] = []
        # Routing index: filters without wildcards by topic, the others scanned; each
        # subscription's sequence number keeps handlers called in subscription order. A fleet
        # host with thousands of vehicles subscribes thousands of exact topics.
        self._exact: dict[str, list[Subscription]] = {}
        self._wildcard: list[Subscription] = []
        self._sequence: dict[Subscription, int] = {}
        self._next_sequence = 0
        self._groups: dict[tuple[str, str], _SharedGroup] = {}
        self._retained: dict[str, Message] = {}

        self._published = 0
        self._delivered = 0
        self._handler_errors = 0
        self._redelivered = 0
        self._undelivered = 0
        self._no_subscriber = 0

        self._dispatcher = threading.Thread(
            target=self._run_dispatcher, name="drivetrain-transport-dispatch", daemon=True
        )
        self._dispatcher.start()

    # --- publishing ------------------------------------------------------------------------

    def publish(self, topic: str, payload: bytes, *, qos: QoS = 1, retain: bool = False) -> None:
        """See ``Transport.publish``; blocks while the delivery queue is full.

        Raises:
            InvalidTopicError: ``topic`` is not a valid topic name.
            TransportClosedError: the transport is closed.
            BackpressureTimeoutError: the queue stayed full for ``publish_timeout_s`` seconds.
        """
        validate_topic_name(topic)
        body = as_payload_bytes(payload)
        check_qos(qos)
        message = Message(topic=topic, payload=body, qos=qos)
        with self._lock:
            self._raise_if_closed(f"publish to {topic!r}")
            targets = self._route(topic)
            if targets:
                self._put(_Queued(message, targets))
            else:
                self._no_subscriber += 1
            if retain:
                if body:
                    self._retained[topic] = replace(message, retain=True)
                else:
                    self._retained.pop(topic, None)
            self._published += 1

    def _route(self, topic: str) -> list[Subscription | _SharedGroup]:
        exact = self._exact.get(topic, ())
        wild = [s for s in self._wildcard if topic_matches(s.plain_filter, topic)]
        plain = (
            sorted([*exact, *wild], key=self._sequence.__getitem__)
            if exact and wild
            else [*exact, *wild]
        )
        targets: list[Subscription | _SharedGroup] = list(plain)
        targets.extend(g for g in self._groups.values() if topic_matches(g.plain_filter, topic))
        return targets

    def _put(self, item: _Queued) -> None:
        """Queue ``item``, waiting for room unless on the dispatcher thread (caller holds lock)."""
        if threading.current_thread() is not self._dispatcher:
            deadline = (
                None
                if self._publish_timeout_s is None
                else time.monotonic() + self._publish_timeout_s
            )
            while len(self._queue) >= self._max_queue:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise BackpressureTimeoutError(
                        f"delivery queue stayed full ({self._max_queue} messages) for "
                        f"{self._publish_timeout_s} s; message to {item.message.topic!r} was "
                        "not published (subscribers are slower than publishers)"
                    )
                self._not_full.wait(remaining)
                self._raise_if_closed(f"publish to {item.message.topic!r}")
        self._queue.append(item)
        self._unfinished += 1
        self._not_empty.notify()

    # --- subscribing -----------------------------------------------------------------------

    def subscribe(
        self,
        topic_filter: str,
        handler: MessageHandler,
        *,
        qos: QoS = 1,
        manual_ack: bool = False,
    ) -> Subscription:
        """See ``Transport.subscribe``.

        ``manual_ack`` is accepted for interface compatibility: delivery is within one process
        with nothing to resend after a crash, so ``Message.ack()`` does nothing here and a
        message counts as handled when its handler returns.

        Raises:
            InvalidTopicError: ``topic_filter`` is not a valid filter.
            TransportClosedError: the transport is closed.
        """
        validate_topic_filter(topic_filter)
        check_qos(qos)
        if not callable(handler):
            raise TypeError(f"handler must be callable, got {type(handler).__name__}")
        group_name, plain = split_shared_filter(topic_filter)
        subscription = Subscription(
            topic_filter,
            handler,
            qos,
            group_name,
            plain,
            on_unsubscribe=self._remove,
            manual_ack=manual_ack,
        )
        with self._lock:
            self._raise_if_closed(f"subscribe to {topic_filter!r}")
            if group_name is None:
                self._subscriptions.append(subscription)
                self._sequence[subscription] = self._next_sequence
                self._next_sequence += 1
                if "+" in plain or "#" in plain:
                    self._wildcard.append(subscription)
                else:
                    self._exact.setdefault(plain, []).append(subscription)
                for topic, retained in sorted(self._retained.items()):
                    if topic_matches(plain, topic):
                        self._put(_Queued(retained, [subscription]))
            else:
                key = (group_name, plain)
                group = self._groups.get(key)
                if group is None:
                    group = self._groups[key] = _SharedGroup(group_name, plain)
                group.members.append(subscription)
        return subscription

    def _remove(self, subscription: Subscription) -> None:
        with self._lock:
            if subscription.share_group is None:
                if self._sequence.pop(subscription, None) is not None:
                    self._subscriptions.remove(subscription)
                    exact = self._exact.get(subscription.plain_filter)
                    if exact is not None and subscription in exact:
                        exact.remove(subscription)
                        if not exact:
                            del self._exact[subscription.plain_filter]
                    else:
                        self._wildcard.remove(subscription)
                return
            key = (subscription.share_group, subscription.plain_filter)
            group = self._groups.get(key)
            if group is not None and subscription in group.members:
                group.members.remove(subscription)
                if not group.members:
                    del self._groups[key]

    # --- delivering ------------------------------------------------------------------------

    def _run_dispatcher(self) -> None:
        while True:
            with self._lock:
                while not self._queue and not self._closed:
                    self._not_empty.wait()
                if not self._queue:
                    return  # closed and fully delivered
                item = self._queue.popleft()
                self._not_full.notify()
            try:
                for target in item.targets:
                    if isinstance(target, _SharedGroup):
                        self._deliver_shared(target, item.message)
                    else:
                        self._deliver(target, item.message)
            finally:
                with self._lock:
                    self._unfinished -= 1
                    if self._unfinished == 0:
                        self._idle.notify_all()

    def _deliver(self, subscription: Subscription, message: Message) -> None:
        qos: QoS = min(message.qos, subscription.qos)
        attempts = self._max_attempts if qos == 1 else 1
        for attempt in range(1, attempts + 1):
            if not subscription.active:
                return
            if self._call(subscription, replace(message, qos=qos, attempt=attempt), attempts):
                return

    def _deliver_shared(self, group: _SharedGroup, message: Message) -> None:
        attempts = self._max_attempts if message.qos == 1 else 1
        for attempt in range(1, attempts + 1):
            with self._lock:
                member = group.next_member()
            if member is None:
                if attempt == 1:
                    self._no_subscriber += 1
                else:
                    self._undelivered += 1
                return
            qos: QoS = min(message.qos, member.qos)
            if self._call(member, replace(message, qos=qos, attempt=attempt), attempts):
                return

    def _call(self, subscription: Subscription, message: Message, attempts: int) -> bool:
        """Run one handler call; True when it returned normally."""
        try:
            subscription.handler(message)
        except Exception as error:  # noqa: BLE001 - isolation: one failing handler must not stop the others
            gave_up = message.attempt >= attempts or message.qos == 0
            self._handler_errors += 1
            if gave_up:
                self._undelivered += 1
            else:
                self._redelivered += 1
            self._report(HandlerFailure(subscription.topic_filter, message, error, gave_up))
            return False
        self._delivered += 1
        return True

    def _report(self, failure: HandlerFailure) -> None:
        try:
            self._on_handler_error(failure)
        except Exception:  # noqa: BLE001 - a broken error callback must not stop delivery either
            _log.exception("on_handler_error callback raised while reporting %r", failure)

    # --- lifecycle -------------------------------------------------------------------------

    def drain(self, timeout_s: float | None = None) -> None:
        """Wait until every queued message (and any published meanwhile) has been delivered.

        Raises:
            TransportError: still busy after ``timeout_s`` seconds.
            RuntimeError: called from a handler (it would wait for itself).
        """
        if threading.current_thread() is self._dispatcher:
            raise RuntimeError("drain() called from a message handler would wait for itself")
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._lock:
            while self._unfinished:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise TransportError(
                        f"{self._unfinished} messages still undelivered after {timeout_s} s"
                    )
                self._idle.wait(remaining)

    def close(self) -> None:
        """Refuse new messages, deliver the queued ones, stop the dispatcher thread; idempotent.

        Called from a handler it only refuses new messages; the dispatcher stops after the
        handler returns and the queue is empty.
        """
        with self._lock:
            self._closed = True
            self._not_empty.notify_all()
            self._not_full.notify_all()
            subscriptions = list(self._subscriptions)
            subscriptions += [m for g in self._groups.values() for m in g.members]
        if threading.current_thread() is not self._dispatcher:
            self._dispatcher.join()
            for subscription in subscriptions:
                subscription.unsubscribe()

    @property
    def closed(self) -> bool:
        """True once ``close()`` has been called."""
        return self._closed

    def stats(self) -> TransportStats:
        """A snapshot of the delivery counters."""
        with self._lock:
            return TransportStats(
                published=self._published,
                delivered=self._delivered,
                handler_errors=self._handler_errors,
                redelivered=self._redelivered,
                undelivered=self._undelivered,
                no_subscriber=self._no_subscriber,
                retained=len(self._retained),
            )

    def _raise_if_closed(self, action: str) -> None:
        if self._closed:
            raise TransportClosedError(f"cannot {action}: the transport is closed")
