"""The delivery thread of ``MqttTransport``: calls handlers, retries, decides the PUBACK.

Handlers run here — never on paho's network thread — one at a time in arrival order, so a slow
handler does not stall keep-alives and acknowledgements, and a handler may publish and wait
for its PUBACK. After a handler returned (or its attempts were spent and the failure
reported), the message is released; on a ``manual_ack`` subscription only ``Message.ack()``
releases it. The transport sends the PUBACK when every local delivery released the message.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import replace

from drivetrain.core.transport.base import HandlerFailure, Message, QoS, Subscription
from drivetrain.core.transport.mqtt_routing import Inbound

_log = logging.getLogger("drivetrain.transport")


def log_handler_failure(failure: HandlerFailure) -> None:
    """The default ``on_handler_error``: log the failure with its traceback."""
    _log.error(
        "handler for %r raised on topic %r (attempt %d, %s): %r",
        failure.topic_filter, failure.message.topic, failure.message.attempt,
        "gave up" if failure.gave_up else "will retry", failure.error,
        exc_info=failure.error,
    )  # fmt: skip


class DeliveryCounts:
    """Handler outcomes (see ``TransportStats``); guarded by its own lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.delivered = 0
        self.handler_errors = 0
        self.redelivered = 0
        self.undelivered = 0


class Release:
    """A delivery's ``Message._ack``: releases its message once, from any thread, however
    often it is called (``MqttTransport.acknowledge`` claims many at once)."""

    __slots__ = ("_release", "_unreleased", "inbound")

    def __init__(self, inbound: Inbound, release: Callable[[Inbound], None]) -> None:
        self.inbound = inbound
        self._release = release
        # a one-shot flag that is safe across threads: a bare lock taken once
        self._unreleased = threading.Lock()

    def claim(self) -> bool:
        """True the first time only: the caller then releases ``inbound`` itself."""
        return self._unreleased.acquire(blocking=False)

    def __call__(self) -> None:
        if self._unreleased.acquire(blocking=False):
            self._release(self.inbound)


class Deliverer:
    """One thread that delivers queued ``(subscription, inbound)`` pairs.

    Args:
        name: the thread's name.
        release: called once per delivery when it is done with the message (the transport
            sends the PUBACK after the last release).
        max_attempts: handler calls for a QoS 1 message whose handler raises.
        on_handler_error: called for every handler exception.
    """

    def __init__(
        self,
        name: str,
        release: Callable[[Inbound], None],
        max_attempts: int,
        on_handler_error: Callable[[HandlerFailure], None],
    ) -> None:
        self.counts = DeliveryCounts()
        self._release = release
        self._max_attempts = max_attempts
        self._on_handler_error = on_handler_error
        self._queue: queue.SimpleQueue[list[tuple[Subscription, Inbound]] | None] = (
            queue.SimpleQueue()
        )
        #: deliveries ``put`` while ``batching`` and not yet handed over by ``flush``
        self._pending: list[tuple[Subscription, Inbound]] = []
        self.batching = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def put(self, subscription: Subscription, inbound: Inbound) -> None:
        """Queue one delivery (never blocks); while ``batching``, only once ``flush``ed: one
        hand-over (and one wake-up of the delivery thread) for a whole burst of messages.
        The caller serialises ``put`` and ``flush`` (the transport's lock)."""
        if self.batching:
            self._pending.append((subscription, inbound))
        else:
            self._queue.put([(subscription, inbound)])

    def flush(self) -> None:
        """Hand the deliveries ``put`` since the last flush to the delivery thread."""
        if self._pending:
            self._queue.put(self._pending)
            self._pending = []

    def stop(self) -> None:
        """Deliver what is queued, then end the thread (without waiting when called from a
        handler, which would wait for itself)."""
        self._queue.put(None)
        if threading.current_thread() is not self._thread:
            self._thread.join()

    def _run(self) -> None:
        while (items := self._queue.get()) is not None:
            for subscription, inbound in items:
                self._deliver(subscription, inbound)

    def _deliver(self, subscription: Subscription, inbound: Inbound) -> None:
        qos: QoS = 1 if inbound.qos == 1 and subscription.qos == 1 else 0
        manual = subscription.manual_ack and inbound.qos == 1
        ack = Release(inbound, self._release)
        message = Message(
            inbound.topic, inbound.payload, qos, inbound.retain,
            attempt=2 if inbound.duplicate else 1, _ack=ack if manual else None,
        )  # fmt: skip
        attempts = self._max_attempts if qos == 1 else 1
        counts = self.counts
        for attempt in range(attempts):
            if not subscription.active:
                break
            # (a copy only for a retry: copying a message costs more than delivering it)
            delivered = message if not attempt else replace(message, attempt=message.attempt + attempt)
            try:
                subscription.handler(delivered)
            except Exception as error:  # noqa: BLE001 - one failing handler must not stop others
                gave_up = attempt + 1 >= attempts
                with counts.lock:
                    counts.handler_errors += 1
                    if gave_up:
                        counts.undelivered += 1
                    else:
                        counts.redelivered += 1
                self._report(HandlerFailure(subscription.topic_filter, delivered, error, gave_up))
                continue
            with counts.lock:
                counts.delivered += 1
            break
        if not manual or not subscription.active:
            ack()  # automatic: handled (or given up, and reported); unsubscribed: not wanted

    def _report(self, failure: HandlerFailure) -> None:
        try:
            self._on_handler_error(failure)
        except Exception:  # noqa: BLE001 - a broken error callback must not stop delivery
            _log.exception("on_handler_error callback raised while reporting %r", failure)
