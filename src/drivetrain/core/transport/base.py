"""The transport interface every vehicle link and cloud consumer codes against.

A ``Transport`` moves opaque byte payloads between publishers and subscribers by topic, with
MQTT 5 semantics (topic filters, shared subscriptions, retained messages, QoS 0/1). The
in-process implementation ships here; an MQTT 5 client will implement the same interface, so
the code above the transport is the same in one process and at fleet scale.
"""

from __future__ import annotations

import abc
import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Literal, Self

#: MQTT quality of service: 0 = at most once, 1 = at least once (QoS 2 is not offered).
QoS = Literal[0, 1]


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
            handler raised (QoS 1 only); ``attempt > 1`` is MQTT's DUP flag.
    """

    topic: str
    payload: bytes
    qos: QoS = 1
    retain: bool = False
    attempt: int = 1

    @property
    def duplicate(self) -> bool:
        """True for a redelivery: a handler may already have seen this message."""
        return self.attempt > 1


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
    ) -> None:
        self.topic_filter = topic_filter
        self.handler = handler
        self.qos: QoS = qos
        self.share_group = share_group
        self.plain_filter = plain_filter
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

    Implementations: ``InProcessTransport`` (one process, the embedded default); an MQTT 5
    client for a real broker. Use as a context manager or call ``close()``.
    """

    @abc.abstractmethod
    def publish(self, topic: str, payload: bytes, *, qos: QoS = 1, retain: bool = False) -> None:
        """Send ``payload`` to every subscription whose filter matches ``topic``.

        With ``retain=True`` the message also replaces the topic's retained message, which new
        subscriptions receive; an empty retained payload clears it (MQTT 5 §3.3.1.3).

        Raises:
            InvalidTopicError: ``topic`` is not a valid topic name.
            TransportClosedError: the transport is closed.
            TransportError: the message could not be accepted (e.g. back-pressure timeout).
        """

    @abc.abstractmethod
    def subscribe(
        self, topic_filter: str, handler: MessageHandler, *, qos: QoS = 1
    ) -> Subscription:
        """Deliver every later message matching ``topic_filter`` to ``handler``.

        ``topic_filter`` may use ``+`` and ``#``, or be ``$share/{group}/{filter}`` so that each
        message goes to one member of the group. Retained messages matching a plain filter are
        delivered first.

        Raises:
            InvalidTopicError: ``topic_filter`` is not a valid filter.
            TransportClosedError: the transport is closed.
        """

    @abc.abstractmethod
    def close(self) -> None:
        """Stop the transport and release its resources; idempotent."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
