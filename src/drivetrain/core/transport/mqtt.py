"""``MqttTransport``: the ``Transport`` interface over a real MQTT 5 broker (paho-mqtt 2.x).

Delivery semantics (docs/transport.md, "MQTT 5"):

This module assembles the transport from its parts: ``mqtt_link`` (the connection and its
state), ``mqtt_publish`` (publishing and tickets), ``mqtt_subscribe`` (subscriptions and
routing of what arrives), ``mqtt_delivery`` (the delivery thread), ``mqtt_options`` (URL, TLS,
client options), ``mqtt_client`` (paho's client with a cheaper receive path).

- **Publishing.** ``publish`` returns once the broker acknowledged a QoS 1 message (PUBACK) and
  raises ``TransportError`` after ``ack_timeout_s``, when not connected, or when the broker
  refused it (a PUBACK reason code >= 0x80). ``publish_async`` returns a ``PublishTicket`` at
  once, so a publisher can keep many QoS 1 messages in flight. A message in flight when the
  connection drops is resent (DUP) after the reconnect and its ticket completes then.
- **Receiving** (``mqtt_delivery``). Handlers run on one delivery thread of this transport,
  never on paho's network thread, one at a time, in arrival order. A handler that raises is
  called again (``attempt`` 2, 3, ...) up to ``max_attempts`` times.
- **Acknowledgement.** A QoS 1 message is acknowledged (PUBACK) when its handler returned, or,
  on a ``manual_ack=True`` subscription, when the subscriber calls ``Message.ack()`` (or
  ``acknowledge`` for many: their PUBACKs go out in one write). One never
  acknowledged is redelivered by the broker when the session resumes (MQTT 5 §4.4).
- **Routing** by Subscription Identifier (``mqtt_routing``).
- **Sessions and reconnects.** ``session_expiry_s > 0`` asks for a persistent session
  (Clean Start 0 + Session Expiry Interval): the broker keeps the subscriptions and queues QoS 1
  messages while the client is away. paho's network thread reconnects with exponential
  back-off; filters are subscribed again when the broker lost the session. ``close()`` does not
  unsubscribe, so a persistent session keeps collecting messages.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from drivetrain.core.transport.base import (
    HandlerFailure,
    Message,
    MessageHandler,
    PublishTicket,
    QoS,
    Subscription,
    Transport,
    TransportStats,
)
from drivetrain.core.transport.mqtt_client import ReadAheadClient
from drivetrain.core.transport.mqtt_delivery import Deliverer, Release, log_handler_failure
from drivetrain.core.transport.mqtt_link import BrokerLink
from drivetrain.core.transport.mqtt_options import (
    BrokerAddress,
    ClientOptions,
    TlsFiles,
    new_client,
    parse_broker_url,
)
from drivetrain.core.transport.mqtt_publish import Publisher
from drivetrain.core.transport.mqtt_subscribe import Subscriptions

_log = logging.getLogger("drivetrain.transport")


class MqttTransport(Transport):
    """An MQTT 5 client with the ``Transport`` semantics (see the module docstring).

    Args:
        url: ``mqtt://host[:port]`` or ``mqtts://host[:port]`` (TLS); credentials in the URL's
            user part are used unless ``username``/``password`` are given.
        client_id: the MQTT client identifier; a persistent session belongs to it (a vehicle:
            its VIN; an ingest worker: a stable worker name).
        username, password: broker credentials (MQTT 5 §3.1.3.5), or None.
        ca_file, cert_file, key_file: PEM files for ``mqtts://`` (see ``TlsFiles``).
        session_expiry_s: seconds the broker keeps the session after a disconnect; > 0 makes
            it persistent (Clean Start 0), 0 starts clean each time.
        keepalive_s: MQTT keep-alive interval, seconds.
        connect_timeout_s: how long the first connection may take (TCP, TLS, CONNACK).
        wait_for_connection: True: the constructor raises when the first connection fails;
            False: it returns at once and keeps trying in the background.
        ack_timeout_s: how long ``publish`` (QoS 1) and ``subscribe`` wait for the broker.
        reconnect_min_delay_s, reconnect_max_delay_s: the exponential back-off between
            reconnect attempts, seconds.
        max_inflight: QoS 1 messages sent and not yet acknowledged, at most (more wait in
            paho's queue); lowered to the broker's Receive Maximum.
        receive_maximum: QoS 1 messages the broker may send before we acknowledge: the window
            a manually acknowledging consumer can batch in (MQTT 5 §3.1.2.11.3).
        max_attempts: handler calls for a QoS 1 message whose handler raises (>= 1).
        on_handler_error: called on the delivery thread for every handler exception;
            default: logged on the ``drivetrain.transport`` logger.

    Raises:
        ValueError: an option out of range.
        ConfigurationError: a malformed URL or unreadable TLS files.
        TransportError: ``wait_for_connection`` and the broker cannot be reached, refuses the
            connection (bad credentials, not authorized) or does not answer within
            ``connect_timeout_s``; the message names the URL.
    """

    def __init__(
        self,
        url: str,
        *,
        client_id: str,
        username: str | None = None,
        password: str | None = None,
        ca_file: str | Path | None = None,
        cert_file: str | Path | None = None,
        key_file: str | Path | None = None,
        session_expiry_s: int = 0,
        keepalive_s: int = 30,
        connect_timeout_s: float = 10.0,
        wait_for_connection: bool = True,
        ack_timeout_s: float = 30.0,
        reconnect_min_delay_s: float = 0.5,
        reconnect_max_delay_s: float = 30.0,
        max_inflight: int = 100,
        receive_maximum: int = 1000,
        max_attempts: int = 3,
        on_handler_error: Callable[[HandlerFailure], None] | None = None,
    ) -> None:
        self.address: BrokerAddress = parse_broker_url(url)
        self.options = ClientOptions(
            client_id, session_expiry_s, keepalive_s, connect_timeout_s, ack_timeout_s,
            reconnect_min_delay_s, reconnect_max_delay_s, max_inflight, receive_maximum,
            max_attempts,
        )  # fmt: skip
        self.client_id = client_id
        tls = TlsFiles(*(None if f is None else Path(f) for f in (ca_file, cert_file, key_file)))
        client = new_client(self.address, self.options, username, password, tls)
        self._link = BrokerLink(self.address, self.options, client)
        self._publisher = Publisher(self._link)
        self._subscriptions = Subscriptions(self._link)
        client.on_connect = self._on_connect
        client.on_connect_fail = lambda client, userdata: self._link.unreachable()
        client.on_disconnect = self._on_disconnect
        client.on_message = self._subscriptions.on_message
        client.on_publish = self._publisher.on_publish
        client.on_subscribe = self._subscriptions.on_subscribe
        client.enable_logger(self._link.paho_logger())
        self._deliverer = Deliverer(
            f"drivetrain-mqtt-deliver-{client_id}",
            self._subscriptions.release,
            self.options.max_attempts,
            on_handler_error or log_handler_failure,
        )
        self._subscriptions.attach(self._deliverer)
        if isinstance(client, ReadAheadClient):  # PUBLISHes decoded without an MQTTMessage
            client.on_publish_received = self._subscriptions.received
            client.on_burst_end = self._subscriptions.flush
            self._deliverer.batching = True
        try:
            self._link.start(wait_for_connection)
        except BaseException:
            self._link.shutdown()
            self._deliverer.stop()
            raise

    # --- connection ------------------------------------------------------------------------

    def _on_connect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: paho.ConnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        link = self._link
        if reason.is_failure:
            link.refused(reason)
            return
        with link.lock:
            link.accepted(properties)
            to_subscribe = self._subscriptions.connected(flags.session_present)
            link.connected.set()
        _log.info(
            "connected to %s as %r (session %s)", self.address.display, self.client_id,
            "resumed" if flags.session_present else "new",
        )  # fmt: skip
        for entry in to_subscribe:
            self._subscriptions.send_subscribe(entry)  # the SUBACK arrives later: no waiting
        link.first_attempt_done()

    def _on_disconnect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: paho.DisconnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        with self._link.lock:
            was_connected = self._link.lost(reason)
            unwritten = self._publisher.take_unwritten()
        self._publisher.fail_unwritten(unwritten)
        if was_connected and not self._link.closing:
            _log.warning("disconnected from %s (%s); reconnecting", self.address.display, reason)

    @property
    def connected(self) -> bool:
        """True while a connection to the broker is up (CONNACK received, not yet lost)."""
        return self._link.connected.is_set()

    @property
    def connections(self) -> int:
        """Connections the broker accepted so far (the first, then each reconnect)."""
        return self._link.connections

    def wait_connected(self, timeout_s: float | None = None) -> bool:
        """Wait until connected (e.g. after a broker restart); False after ``timeout_s``."""
        return self._link.connected.wait(timeout_s)

    # --- publishing ------------------------------------------------------------------------

    def publish(self, topic: str, payload: bytes, *, qos: QoS = 1, retain: bool = False) -> None:
        """Send a message; for QoS 1 return after the broker's PUBACK.

        Raises:
            InvalidTopicError: ``topic`` is not a valid topic name.
            TransportClosedError: the transport is closed.
            TransportError: not connected (nothing was sent), no PUBACK within
                ``ack_timeout_s`` (the message may still arrive: at least once), or the broker
                refused the message (e.g. ``Not authorized (0x87)``).
        """
        ticket = self.publish_async(topic, payload, qos=qos, retain=retain)
        if qos == 1:
            ticket.wait(self.options.ack_timeout_s)

    def publish_async(
        self, topic: str, payload: bytes, *, qos: QoS = 1, retain: bool = False
    ) -> PublishTicket:
        """Hand a message to the network thread; the ticket completes on the PUBACK (QoS 1)
        or once written (QoS 0).

        Raises:
            InvalidTopicError: ``topic`` is not a valid topic name.
            TransportClosedError: the transport is closed.
            TransportError: not connected (nothing was sent), or the message cannot be sent
                at all (over 256 MiB).
        """
        return self._publisher.publish_async(topic, payload, qos=qos, retain=retain)

    @property
    def pending_publishes(self) -> int:
        """Messages handed to the connection and not yet acknowledged."""
        return self._publisher.pending

    # --- subscribing -----------------------------------------------------------------------

    def subscribe(
        self,
        topic_filter: str,
        handler: MessageHandler,
        *,
        qos: QoS = 1,
        manual_ack: bool = False,
    ) -> Subscription:
        """See ``Transport.subscribe``; returns once the broker granted the subscription.

        While disconnected the subscription is recorded and made on the next connection.
        Messages of a resumed session that arrived for this filter before it was subscribed
        are delivered first.

        Raises:
            InvalidTopicError: ``topic_filter`` is not a valid filter.
            TransportClosedError: the transport is closed.
            TransportError: the broker refused the filter (e.g. ``Not authorized (0x87)``) or
                did not answer within ``ack_timeout_s``; nothing stays subscribed then.
        """
        return self._subscriptions.subscribe(topic_filter, handler, qos=qos, manual_ack=manual_ack)

    def acknowledge(self, messages: Iterable[Message]) -> None:
        """``Message.ack()`` for each of ``messages``, with their PUBACKs in one write."""
        inbounds = []
        for message in messages:
            release = message._ack
            if isinstance(release, Release):
                if release.claim():
                    inbounds.append(release.inbound)
            else:
                message.ack()
        if inbounds:
            self._subscriptions.release_many(inbounds)

    # --- lifecycle -------------------------------------------------------------------------

    def close(self, *, end_session: bool = False) -> None:
        """Finish in-flight work, disconnect cleanly, stop the threads; idempotent.

        In-flight publishes get up to ``ack_timeout_s`` in all for their PUBACKs (while
        connected); tickets still pending then fail with ``TransportClosedError``. Messages
        already received are delivered first. Subscriptions end here but stay in a
        persistent session, so the broker keeps queueing for the client id — unless
        ``end_session``: the DISCONNECT then sets the Session Expiry Interval to 0 and the
        broker discards the session (MQTT 5 §3.14.2.2.2), e.g. for a worker retired for good.
        """
        link = self._link
        with link.lock:
            if link.closed:
                return
            link.closed = True
        self._publisher.wait_in_flight(self.options.ack_timeout_s)
        self._subscriptions.flush()  # a burst read but not yet handed over is delivered too
        self._deliverer.stop()
        with link.lock:
            link.closing = True
            members = self._subscriptions.members()
        for member in members:
            member.unsubscribe()  # local only while closing: no UNSUBSCRIBE reaches the broker
        link.shutdown(end_session)
        self._publisher.fail_remaining()

    @property
    def closed(self) -> bool:
        """True once ``close()`` has been called."""
        return self._link.closed

    def stats(self) -> TransportStats:
        """A snapshot of the counters. ``no_subscriber`` counts received copies no local
        subscription took (yet); ``retained`` is 0: the broker keeps retained messages."""
        counts = self._deliverer.counts
        with self._link.lock, counts.lock:
            return TransportStats(
                published=self._publisher.published,
                delivered=counts.delivered,
                handler_errors=counts.handler_errors,
                redelivered=counts.redelivered,
                undelivered=counts.undelivered,
                no_subscriber=self._subscriptions.no_subscriber,
                retained=0,
            )

    def __repr__(self) -> str:
        state = "closed" if self.closed else ("connected" if self.connected else "connecting")
        return f"MqttTransport({self.address.display!r}, client_id={self.client_id!r}, {state})"
