"""The transport interface every vehicle link and cloud consumer codes against.

A ``Transport`` moves opaque byte payloads between publishers and subscribers by topic, with
MQTT 5 semantics (topic filters, shared subscriptions, retained messages, QoS 0/1). The
in-process implementation and an MQTT 5 client (``MqttTransport``) implement the same
interface, so the code above the transport is the same in one process and at fleet scale.
"""

from __future__ import annotations

import abc
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal, Self

from drivetrain.core.errors import TransportError

_log = logging.getLogger("drivetrain.transport")

#: MQTT quality of service: 0 = at most once, 1 = at least once (QoS 2 is not offered).
QoS = Literal[0, 1]


def as_payload_bytes(payload: bytes) -> bytes:
    """``payload`` as ``bytes`` (a ``bytearray`` or ``memoryview`` is copied).

    Raises:
        TypeError: ``payload`` is not bytes-like.
    """
    if isinstance(payload, bytes):
        return payload
    if isinstance(payload, (bytearray, memoryview)):
        return bytes(payload)
    raise TypeError(f"payload must be bytes, got {type(payload).__name__}")


def check_qos(qos: int) -> None:
    """Refuse a quality of service other than 0 or 1.

    Raises:
        ValueError: ``qos`` is not 0 or 1.
    """
    if qos not in (0, 1):
        raise ValueError(f"qos must be 0 (at most once) or 1 (at least once), got {qos!r}")


@dataclass(frozen=True)
class Message:
    """One message as a subscriber receives it.

    Attributes:
        topic: the topic name it was published to.
        payload: the bytes as published (never altered by the transport).
        qos: the quality of service it is delivered with.
        retain: True when it comes from the retained store (sent on subscribe), as MQTT sets
            the RETAIN flag for retained messages delivered to a new subscription.
        attempt: 1 for the first delivery to this subscription, 2+ for a redelivery after the
            handler raised (QoS 1 only) or after the broker resent it; ``attempt > 1`` is
            MQTT's DUP flag.
    """

    topic: str
    payload: bytes
    qos: QoS = 1
    retain: bool = False
    attempt: int = 1
    #: Sends the acknowledgement of a manually acknowledged message (set by the transport).
    _ack: Callable[[], None] | None = field(default=None, repr=False, compare=False)
    #: The publisher's id of the message where the transport carries one (JetStream's
    #: ``Nats-Msg-Id``), so a consumer can drop a redelivery; "" otherwise.
    message_id: str = ""

    @property
    def duplicate(self) -> bool:
        """True for a redelivery: a handler may already have seen this message."""
        return self.attempt > 1

    def ack(self) -> None:
        """Acknowledge the message (send MQTT's PUBACK) on a ``manual_ack=True`` subscription.

        Call it once the message is safely handled (e.g. after a durable write); it may be
        called from any thread, also after the handler returned, and more than once. A QoS 1
        message never acknowledged is redelivered by the broker when the session resumes (a
        new connection with the same client id, MQTT 5 §4.4). For automatically acknowledged
        subscriptions, QoS 0 messages and the in-process transport (delivery within one
        process, nothing to resend) it does nothing.
        """
        if self._ack is not None:
            self._ack()


#: A subscriber's callback. It runs on the transport's delivery thread and should be quick.
MessageHandler = Callable[[Message], None]


@dataclass(frozen=True)
class HandlerFailure:
    """A handler raised while a message was being delivered to it.

    Attributes:
        topic_filter: the subscription's filter (with its ``$share/...`` prefix if shared).
        message: the message whose delivery failed.
        error: what the handler raised.
        gave_up: True when no further attempt will be made (QoS 0, or QoS 1 attempts spent).
    """

    topic_filter: str
    message: Message
    error: BaseException
    gave_up: bool


@dataclass(frozen=True)
class TransportStats:
    """Counters since the transport was created (a snapshot).

    Attributes:
        published: messages accepted by ``publish``.
        delivered: handler calls that returned normally.
        handler_errors: handler calls that raised.
        redelivered: deliveries retried after a handler error (QoS 1).
        undelivered: deliveries abandoned after the last attempt raised (reported, not hidden).
        no_subscriber: published messages that matched no subscription (MQTT drops these too;
            retained ones stay in the retained store).
        retained: topics currently holding a retained message.
    """

    published: int = 0
    delivered: int = 0
    handler_errors: int = 0
    redelivered: int = 0
    undelivered: int = 0
    no_subscriber: int = 0
    retained: int = 0


class PublishTicket:
    """The outcome of one ``Transport.publish_async``: pending until the broker acknowledged.

    For QoS 1 the ticket completes when the broker's PUBACK arrives (MQTT 5 §4.3.2); for QoS 0
    when the message was written to the connection. A ticket fails with a ``TransportError``
    when the broker refused the message (a PUBACK reason code >= 0x80, e.g. not authorized) or
    the transport closed before the acknowledgement. Thread-safe.
    """

    def __init__(self, topic: str, qos: QoS) -> None:
        self.topic = topic
        self.qos: QoS = qos
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._error: TransportError | None = None
        self._callbacks: list[Callable[[PublishTicket], None]] = []

    @classmethod
    def completed(cls, topic: str, qos: QoS) -> PublishTicket:
        """A ticket that is already acknowledged (for transports that deliver synchronously)."""
        ticket = cls(topic, qos)
        ticket.complete()
        return ticket

    @property
    def done(self) -> bool:
        """True once acknowledged or failed."""
        return self._done.is_set()

    @property
    def acknowledged(self) -> bool:
        """True once the broker acknowledged the message (done without an error)."""
        return self._done.is_set() and self._error is None

    @property
    def error(self) -> TransportError | None:
        """Why the publish failed, or None (pending or acknowledged)."""
        return self._error

    def wait(self, timeout_s: float | None = None) -> None:
        """Block until the message is acknowledged; ``timeout_s`` None waits indefinitely.

        Raises:
            TransportError: the publish failed (the ticket's ``error``), or no acknowledgement
                arrived within ``timeout_s`` seconds (the ticket stays pending: a later
                acknowledgement still completes it).
        """
        if not self._done.wait(timeout_s):
            raise TransportError(
                f"the broker did not acknowledge the QoS {self.qos} message to {self.topic!r} "
                f"within {timeout_s} s (connection lost or broker overloaded)"
            )
        if self._error is not None:
            raise self._error

    def add_done_callback(self, callback: Callable[[PublishTicket], None]) -> None:
        """Call ``callback(ticket)`` when the ticket completes (at once if it already has).

        The callback runs on the thread that completes the ticket (for MQTT: the network
        thread), so it must be quick and must not block; an exception in it is logged.
        """
        with self._lock:
            if not self._done.is_set():
                self._callbacks.append(callback)
                return
        _run_callback(callback, self)

    def complete(self, error: TransportError | None = None) -> bool:
        """Mark the ticket acknowledged (``error`` None) or failed; False when already done.

        Called by transports, not by publishers.
        """
        with self._lock:
            if self._done.is_set():
                return False
            self._error = error
            self._done.set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            _run_callback(callback, self)
        return True

    def __repr__(self) -> str:
        state = "pending" if not self.done else ("failed" if self._error else "acknowledged")
        return f"PublishTicket({self.topic!r}, qos={self.qos}, {state})"


def _run_callback(callback: Callable[[PublishTicket], None], ticket: PublishTicket) -> None:
    try:
        callback(ticket)
    except Exception:  # noqa: BLE001 - a caller's callback must not break the network thread
        _log.exception("publish ticket callback %r raised for %r", callback, ticket)


class Subscription:
    """A live subscription; ``unsubscribe()`` stops deliveries to its handler.

    Subscriptions are made by ``Transport.subscribe``, not directly.
    """

    def __init__(
        self,
        topic_filter: str,
        handler: MessageHandler,
        qos: QoS,
        share_group: str | None,
        plain_filter: str,
        on_unsubscribe: Callable[[Subscription], None],
        manual_ack: bool = False,
    ) -> None:
        self.topic_filter = topic_filter
        self.handler = handler
        self.qos: QoS = qos
        self.share_group = share_group
        self.plain_filter = plain_filter
        self.manual_ack = manual_ack
        self._on_unsubscribe = on_unsubscribe
        self._active = True
        self._lock = threading.Lock()

    @property
    def active(self) -> bool:
        """False once unsubscribed (or the transport closed)."""
        return self._active

    def unsubscribe(self) -> None:
        """Stop deliveries to this subscription; calling it again does nothing.

        A message already being handled finishes; queued messages for this subscription are
        not delivered.
        """
        with self._lock:
            if not self._active:
                return
            self._active = False
        self._on_unsubscribe(self)

    def __repr__(self) -> str:
        state = "active" if self._active else "closed"
        return f"Subscription({self.topic_filter!r}, qos={self.qos}, {state})"


class Transport(abc.ABC):
    """Publish/subscribe by topic with MQTT 5 semantics.

    Implementations: ``InProcessTransport`` (one process, the embedded default),
    ``MqttTransport`` (an MQTT 5 client of a real broker; ``open_transport`` picks one of these
    two from a URL) and ``JetStreamTransport`` (the fleet profile's backbone between ingest and
    its consumers, ``drivetrain.core.transport.jetstream``). Use as a context manager or call ``close()``.
    """

    @abc.abstractmethod
    def publish(self, topic: str, payload: bytes, *, qos: QoS = 1, retain: bool = False) -> None:
        """Send ``payload`` to every subscription whose filter matches ``topic``.

        With ``retain=True`` the message also replaces the topic's retained message, which new
        subscriptions receive; an empty retained payload clears it (MQTT 5 §3.3.1.3).

        Raises:
            InvalidTopicError: ``topic`` is not a valid topic name.
            TransportClosedError: the transport is closed.
            TransportError: the message could not be accepted (e.g. back-pressure timeout);
                for a broker: not acknowledged in time, or refused.
        """

    def publish_async(
        self, topic: str, payload: bytes, *, qos: QoS = 1, retain: bool = False
    ) -> PublishTicket:
        """Like ``publish`` but return at once with a ticket that completes on acknowledgement.

        Lets a publisher keep many QoS 1 messages in flight and act on each acknowledged one
        (``ticket.wait``, ``ticket.done``, ``ticket.add_done_callback``). This default
        publishes synchronously and returns a completed ticket (right for transports that
        deliver within the process).

        Raises:
            InvalidTopicError: ``topic`` is not a valid topic name.
            TransportClosedError: the transport is closed.
            TransportError: the message could not be handed over at all.
        """
        self.publish(topic, payload, qos=qos, retain=retain)
        return PublishTicket.completed(topic, qos)

    @abc.abstractmethod
    def subscribe(
        self,
        topic_filter: str,
        handler: MessageHandler,
        *,
        qos: QoS = 1,
        manual_ack: bool = False,
    ) -> Subscription:
        """Deliver every later message matching ``topic_filter`` to ``handler``.

        ``topic_filter`` may use ``+`` and ``#``, or be ``$share/{group}/{filter}`` so that each
        message goes to one member of the group. Retained messages matching a plain filter are
        delivered first.

        With ``manual_ack=True`` a QoS 1 message is acknowledged only when the subscriber calls
        ``Message.ack()`` (e.g. after a durable write); an unacknowledged one is redelivered
        when the broker session resumes. Default: acknowledged when the handler returns.

        Raises:
            InvalidTopicError: ``topic_filter`` is not a valid filter.
            TransportClosedError: the transport is closed.
        """

    def acknowledge(self, messages: Iterable[Message]) -> None:
        """Acknowledge each of ``messages`` (``Message.ack()``); a transport may send the
        acknowledgements together (``MqttTransport``: the PUBACKs in one write)."""
        for message in messages:
            message.ack()

    @abc.abstractmethod
    def close(self) -> None:
        """Stop the transport and release its resources; idempotent."""

    @property
    def connections(self) -> int:
        """Connections the broker accepted so far: a client that reconnected counts more
        than one (what it missed while away may need asking for). 0 for a transport with no
        connection to lose (in-process)."""
        return 0

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
