"""``Publisher``: the publishing side of ``MqttTransport``.

``publish_async`` hands a message to paho and returns a ``PublishTicket`` at once; the ticket
completes on the broker's PUBACK (QoS 1) or once written (QoS 0), and fails when the broker
refused the message (a PUBACK reason code >= 0x80), when a QoS 0 message was not written
before the connection dropped, or when the transport closes first. A QoS 1 message in flight
when the connection drops is resent (DUP) after the reconnect, and its ticket completes then.
"""

from __future__ import annotations

import time
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from drivetrain.core.errors import TransportClosedError, TransportError
from drivetrain.core.transport.base import PublishTicket, QoS, as_payload_bytes, check_qos
from drivetrain.core.transport.mqtt_link import BrokerLink
from drivetrain.core.transport.mqtt_options import describe_error, describe_reason
from drivetrain.core.transport.mqtt_routing import AckWaiters
from drivetrain.core.transport.topics import validate_topic_name


class Publisher:
    """Publishes over ``link`` and tracks the tickets of messages in flight.

    Attributes:
        published: messages handed to the connection since the start.
    """

    def __init__(self, link: BrokerLink) -> None:
        self._link = link
        self._tickets: AckWaiters[PublishTicket, ReasonCode] = AckWaiters()
        self.published = 0

    def publish_async(
        self, topic: str, payload: bytes, *, qos: QoS = 1, retain: bool = False
    ) -> PublishTicket:
        """See ``MqttTransport.publish_async``."""
        link = self._link
        validate_topic_name(topic)
        body = as_payload_bytes(payload)
        check_qos(qos)
        with link.lock:
            link.raise_if_closed(f"publish to {topic!r}")
            if not link.connected.is_set():
                raise TransportError(
                    f"cannot publish to {topic!r}: not connected to the broker at "
                    f"{link.address.display} ({link.last_error or 'connecting'})"
                )
        try:
            info = link.client.publish(topic, body, qos=qos, retain=retain)
        except ValueError as e:  # payload over 256 MiB (MQTT's limit)
            raise TransportError(f"cannot publish to {topic!r}: {e}") from e
        # a QoS 1 message paho holds while reconnecting (NO_CONN) is sent after the CONNACK
        if info.rc != paho.MQTT_ERR_SUCCESS and not (qos == 1 and info.rc == paho.MQTT_ERR_NO_CONN):
            raise TransportError(f"cannot publish to {topic!r}: {describe_error(info.rc)}")
        ticket = PublishTicket(topic, qos)
        with link.lock:
            self.published += 1
            early = self._tickets.register(info.mid, ticket)
        if early is not None:
            ticket.complete(self._puback_error(topic, early))
        return ticket

    def on_publish(
        self,
        client: paho.Client,
        userdata: Any,
        mid: int,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        """paho's callback: a PUBACK arrived (QoS 1) or a QoS 0 message was written."""
        with self._link.lock:
            ticket = self._tickets.resolve(mid, reason)
        if ticket is not None:
            ticket.complete(self._puback_error(ticket.topic, reason))

    def _puback_error(self, topic: str, reason: ReasonCode) -> TransportError | None:
        if not reason.is_failure:
            return None  # includes 0x10 "No matching subscribers": accepted, nobody listening
        return TransportError(
            f"the broker at {self._link.address.display} refused the message to {topic!r}: "
            f"{describe_reason(reason)}"
        )

    @property
    def pending(self) -> int:
        """Messages handed to the connection and not yet acknowledged."""
        with self._link.lock:
            return len(self._tickets.waiting)

    def take_unwritten(self) -> list[PublishTicket]:
        """The QoS 0 tickets of a connection just lost (call under the link's lock): paho
        drops unwritten QoS 0 packets on reconnect. Fail them with ``fail_unwritten``."""
        return self._tickets.take(lambda ticket: ticket.qos == 0)

    def fail_unwritten(self, tickets: list[PublishTicket]) -> None:
        for ticket in tickets:
            ticket.complete(TransportError(
                f"connection to {self._link.address.display} lost before the QoS 0 message to "
                f"{ticket.topic!r} was sent"
            ))  # fmt: skip

    def wait_in_flight(self, timeout_s: float) -> None:
        """Give the messages in flight up to ``timeout_s`` in all for their acknowledgements
        (while connected); a refusal or timeout is left for its publisher to learn."""
        with self._link.lock:
            tickets = list(self._tickets.waiting.values())
        deadline = time.monotonic() + timeout_s
        for ticket in tickets:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._link.connected.is_set():
                break
            try:
                ticket.wait(remaining)
            except TransportError:
                continue

    def fail_remaining(self) -> None:
        """Fail every ticket still waiting: the transport closed before its PUBACK."""
        with self._link.lock:
            tickets = self._tickets.take()
        for ticket in tickets:
            ticket.complete(TransportClosedError(
                f"the transport closed before the broker acknowledged the message to "
                f"{ticket.topic!r}"
            ))  # fmt: skip
