"""``MqttTransport``: the ``Transport`` interface over a real MQTT 5 broker (paho-mqtt 2.x).

Delivery semantics (docs/transport.md, "MQTT 5"):

- **Publishing.** ``publish`` returns once the broker acknowledged a QoS 1 message (PUBACK) and
  raises ``TransportError`` after ``ack_timeout_s``, when not connected, or when the broker
  refused it (a PUBACK reason code >= 0x80). ``publish_async`` returns a ``PublishTicket`` at
  once, so a publisher can keep many QoS 1 messages in flight. A message in flight when the
  connection drops is resent (DUP) after the reconnect and its ticket completes then.
- **Receiving** (``mqtt_delivery``). Handlers run on one delivery thread of this transport,
  never on paho's network thread, one at a time, in arrival order. A handler that raises is
  called again (``attempt`` 2, 3, ...) up to ``max_attempts`` times.
- **Acknowledgement.** A QoS 1 message is acknowledged (PUBACK) when its handler returned, or,
  on a ``manual_ack=True`` subscription, when the subscriber calls ``Message.ack()``. One never
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
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from drivetrain.core.errors import TransportClosedError, TransportError
from drivetrain.core.transport.base import (
    HandlerFailure,
    MessageHandler,
    PublishTicket,
    QoS,
    Subscription,
    Transport,
    TransportStats,
    as_payload_bytes,
    check_qos,
)
from drivetrain.core.transport.mqtt_delivery import Deliverer, log_handler_failure
from drivetrain.core.transport.mqtt_options import (
    BrokerAddress,
    ClientOptions,
    TlsFiles,
    connect_properties,
    describe_error,
    describe_reason,
    new_client,
    parse_broker_url,
)
from drivetrain.core.transport.mqtt_routing import (
    AckWaiters,
    BrokerFilter,
    Inbound,
    RoutingTable,
)
from drivetrain.core.transport.topics import (
    split_shared_filter,
    validate_topic_filter,
    validate_topic_name,
)

_log = logging.getLogger("drivetrain.transport")


class _SubackWaiter:
    def __init__(self, entry: BrokerFilter) -> None:
        self.entry = entry
        self.done = threading.Event()
        self.error: str | None = None


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

        self._lock = threading.Lock()
        self._connected = threading.Event()
        self._first_attempt = threading.Event()
        self._epoch = 0  # changes on every connect and disconnect: older mids are void
        self._last_error: str | None = None
        self._first_refusal: str | None = None
        self._closed = False  # refuses publish/subscribe
        self._closing = False  # the network side is shutting down

        self._routes = RoutingTable()
        self._tickets: AckWaiters[PublishTicket, ReasonCode] = AckWaiters()
        self._subacks: AckWaiters[_SubackWaiter, list[ReasonCode]] = AckWaiters()
        self._published = 0
        self._no_subscriber = 0

        self._client = self._make_client(username, password, tls)
        self._deliverer = Deliverer(
            f"drivetrain-mqtt-deliver-{client_id}",
            self._release,
            self.options.max_attempts,
            on_handler_error or log_handler_failure,
        )
        try:
            self._start(wait_for_connection)
        except BaseException:
            self._shutdown_network()
            self._deliverer.stop()
            raise

    # --- connection ------------------------------------------------------------------------

    def _make_client(
        self, username: str | None, password: str | None, tls: TlsFiles
    ) -> paho.Client:
        client = new_client(self.address, self.options, username, password, tls)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        client.on_subscribe = self._on_subscribe
        client.on_log = self._on_log
        return client

    def _start(self, wait: bool) -> None:
        options, where = self.options, self.address.display
        if self.address.tls:  # a broker refuses a client certificate by closing the connection
            where += " (over TLS; if the connection was lost, check the client certificate)"
        arguments = (self.address.host, self.address.port, options.keepalive_s)
        clean_start = options.session_expiry_s == 0
        properties = connect_properties(options)
        try:
            if wait:  # connect here, so a refused or unreachable broker raises here
                rc = self._client.connect(
                    *arguments, clean_start=clean_start, properties=properties
                )
                if rc != paho.MQTT_ERR_SUCCESS:
                    raise TransportError(
                        f"cannot connect to the broker at {where}: {describe_error(rc)}"
                    )
            else:  # paho's network thread connects, and keeps trying
                self._client.connect_async(
                    *arguments, clean_start=clean_start, properties=properties
                )
        except (OSError, ValueError) as e:  # refused, unreachable, DNS, TLS (ssl.SSLError)
            raise TransportError(f"cannot connect to the broker at {where}: {_os_text(e)}") from e
        self._client.loop_start()
        if not wait:
            return
        if not self._first_attempt.wait(options.connect_timeout_s) or not self.connected:
            with self._lock:
                reason = self._first_refusal or self._last_error
            reason = reason or f"no CONNACK within {options.connect_timeout_s} s"
            raise TransportError(f"cannot connect to the broker at {where}: {reason}")

    def _on_connect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: paho.ConnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason.is_failure:
            refusal = f"the broker refused the connection: {describe_reason(reason)}"
            with self._lock:
                self._last_error = refusal
                if not self._first_attempt.is_set():
                    self._first_refusal = refusal  # a later disconnect overwrites _last_error
                    self._first_attempt.set()
            _log.warning("%s: %s", self.address.display, refusal)
            return
        # Never exceed the broker's Receive Maximum (MQTT 5 §3.2.2.3.3). paho's setter refuses
        # an open connection only because of a switch between 0 (unlimited) and N, which
        # cannot happen here: both values are >= 1.
        receive_max = int(getattr(properties, "ReceiveMaximum", 65535))
        client._max_inflight_messages = min(self.options.max_inflight, receive_max)
        with self._lock:
            self._epoch += 1
            self._last_error = None
            if not flags.session_present:
                self._routes.session_lost()
            to_subscribe = self._routes.unconfirmed()
            self._connected.set()
        _log.info(
            "connected to %s as %r (session %s)", self.address.display, self.client_id,
            "resumed" if flags.session_present else "new",
        )  # fmt: skip
        for entry in to_subscribe:
            self._send_subscribe(entry)  # the SUBACK arrives later on this thread: no waiting
        self._first_attempt.set()

    def _on_connect_fail(self, client: paho.Client, userdata: Any) -> None:
        with self._lock:
            self._last_error = f"cannot reach the broker at {self.address.display}"

    def _on_disconnect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: paho.DisconnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        with self._lock:
            was_connected = self._connected.is_set()
            self._connected.clear()
            self._epoch += 1
            if reason.is_failure:
                self._last_error = f"connection lost: {describe_reason(reason)}"
            # paho drops unwritten QoS 0 packets on reconnect: their tickets fail now
            tickets = self._tickets.take(lambda ticket: ticket.qos == 0)
        for ticket in tickets:
            ticket.complete(TransportError(
                f"connection to {self.address.display} lost before the QoS 0 message to "
                f"{ticket.topic!r} was sent"
            ))  # fmt: skip
        if was_connected and not self._closing:
            _log.warning("disconnected from %s (%s); reconnecting", self.address.display, reason)

    def _on_log(self, client: paho.Client, userdata: Any, level: int, text: str) -> None:
        # paho reports caught callback exceptions and socket errors here; its "not connected"
        # complaint after our own DISCONNECT is expected
        if level not in (paho.MQTT_LOG_ERR, paho.MQTT_LOG_WARNING):
            return
        if self._closing and text.startswith("Client is not connected"):
            return
        severity = logging.ERROR if level == paho.MQTT_LOG_ERR else logging.WARNING
        _log.log(severity, "paho (%s): %s", self.client_id, text)

    @property
    def connected(self) -> bool:
        """True while a connection to the broker is up (CONNACK received, not yet lost)."""
        return self._connected.is_set()

    def wait_connected(self, timeout_s: float | None = None) -> bool:
        """Wait until connected (e.g. after a broker restart); False after ``timeout_s``."""
        return self._connected.wait(timeout_s)

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
        validate_topic_name(topic)
        body = as_payload_bytes(payload)
        check_qos(qos)
        with self._lock:
            self._raise_if_closed(f"publish to {topic!r}")
            if not self._connected.is_set():
                raise TransportError(
                    f"cannot publish to {topic!r}: not connected to the broker at "
                    f"{self.address.display} ({self._last_error or 'connecting'})"
                )
        try:
            info = self._client.publish(topic, body, qos=qos, retain=retain)
        except ValueError as e:  # payload over 256 MiB (MQTT's limit)
            raise TransportError(f"cannot publish to {topic!r}: {e}") from e
        # a QoS 1 message paho holds while reconnecting (NO_CONN) is sent after the CONNACK
        if info.rc != paho.MQTT_ERR_SUCCESS and not (qos == 1 and info.rc == paho.MQTT_ERR_NO_CONN):
            raise TransportError(f"cannot publish to {topic!r}: {describe_error(info.rc)}")
        ticket = PublishTicket(topic, qos)
        with self._lock:
            self._published += 1
            early = self._tickets.register(info.mid, ticket)
        if early is not None:
            ticket.complete(self._puback_error(topic, early))
        return ticket

    def _on_publish(
        self,
        client: paho.Client,
        userdata: Any,
        mid: int,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        with self._lock:
            ticket = self._tickets.resolve(mid, reason)
        if ticket is not None:
            ticket.complete(self._puback_error(ticket.topic, reason))

    def _puback_error(self, topic: str, reason: ReasonCode) -> TransportError | None:
        if not reason.is_failure:
            return None  # includes 0x10 "No matching subscribers": accepted, nobody listening
        return TransportError(
            f"the broker at {self.address.display} refused the message to {topic!r}: "
            f"{describe_reason(reason)}"
        )

    @property
    def pending_publishes(self) -> int:
        """Messages handed to the connection and not yet acknowledged."""
        with self._lock:
            return len(self._tickets.waiting)

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
        validate_topic_filter(topic_filter)
        check_qos(qos)
        if not callable(handler):
            raise TypeError(f"handler must be callable, got {type(handler).__name__}")
        group, plain = split_shared_filter(topic_filter)
        subscription = Subscription(
            topic_filter, handler, qos, group, plain,
            on_unsubscribe=self._remove, manual_ack=manual_ack,
        )  # fmt: skip
        with self._lock:
            self._raise_if_closed(f"subscribe to {topic_filter!r}")
            entry = self._routes.add(subscription)
            send = not entry.confirmed and self._connected.is_set()
            # queued under the lock, so they stay ahead of later arrivals for the filter
            for inbound in self._routes.claim(entry):
                self._queue_locked(inbound, [subscription])
        if send:
            waiter = self._send_subscribe(entry)
            error = waiter.error if waiter.done.wait(self.options.ack_timeout_s) else (
                f"no SUBACK within {self.options.ack_timeout_s} s"
            )  # fmt: skip
            if error is not None:
                self._remove(subscription, local_only=True)
                subscription.unsubscribe()
                raise TransportError(
                    f"cannot subscribe to {topic_filter!r} at {self.address.display}: {error}"
                )
        return subscription

    def _send_subscribe(self, entry: BrokerFilter) -> _SubackWaiter:
        """Send SUBSCRIBE; the waiter is done at the SUBACK, or at once when not connected
        (without an error: the next CONNACK subscribes again)."""
        waiter = _SubackWaiter(entry)
        properties = Properties(PacketTypes.SUBSCRIBE)  # type: ignore[no-untyped-call]
        properties.SubscriptionIdentifier = entry.subscription_id
        # retained messages only for a subscription the session does not hold yet (§3.8.3.1)
        options = SubscribeOptions(qos=entry.qos, retainHandling=1)
        try:
            rc, mid = self._client.subscribe(
                entry.topic_filter, options=options, properties=properties
            )
        except ValueError as e:  # pragma: no cover - the filter was validated before
            rc, mid, waiter.error = paho.MQTT_ERR_INVAL, None, str(e)
        if rc != paho.MQTT_ERR_SUCCESS or mid is None:
            if rc != paho.MQTT_ERR_NO_CONN and waiter.error is None:
                waiter.error = describe_error(rc)
            waiter.done.set()
            return waiter
        with self._lock:
            early = self._subacks.register(mid, waiter)
        if early is not None:
            self._resolve_suback(waiter, early)
        return waiter

    def _on_subscribe(
        self,
        client: paho.Client,
        userdata: Any,
        mid: int,
        reasons: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        with self._lock:
            waiter = self._subacks.resolve(mid, reasons)
        if waiter is not None:
            self._resolve_suback(waiter, reasons)

    def _resolve_suback(self, waiter: _SubackWaiter, reasons: list[ReasonCode]) -> None:
        failed = [r for r in reasons if r.is_failure]
        if failed:
            waiter.error = f"the broker refused it: {describe_reason(failed[0])}"
            _log.error("subscription %r refused: %s", waiter.entry.topic_filter, waiter.error)
        else:
            with self._lock:
                waiter.entry.confirmed = True
        waiter.done.set()

    def _remove(self, subscription: Subscription, *, local_only: bool = False) -> None:
        with self._lock:
            entry = self._routes.remove(subscription)
            send = entry is not None and not local_only and not self._closing
            send = send and self._connected.is_set()
        if send and entry is not None:
            self._client.unsubscribe(entry.topic_filter)

    # --- receiving -------------------------------------------------------------------------

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        try:
            topic = message.topic  # MQTT 5 §1.5.4: a topic is UTF-8
        except UnicodeDecodeError:
            _log.error("dropped a message whose topic is not UTF-8: %r", message._topic[:200])
            if message.qos:
                client.ack(message.mid, message.qos)
            return
        ids = getattr(message.properties, "SubscriptionIdentifier", None) or []
        with self._lock:
            if self._closing:
                return  # not acknowledged: the broker redelivers it to the next session
            inbound = Inbound(
                topic, bytes(message.payload), 1 if message.qos else 0, bool(message.retain),
                bool(message.dup), message.mid, self._epoch, tuple(ids),
            )  # fmt: skip
            targets, unwanted = self._routes.route(inbound)
            if targets:
                self._queue_locked(inbound, targets)
                return
            self._no_subscriber += 1
            if not unwanted:
                if not self._routes.hold(inbound):  # unacknowledged: resent next session
                    _log.warning("no subscription for %r; left unacknowledged", topic)
                return
        self._release(inbound)  # for a filter unsubscribed meanwhile: acknowledged, dropped

    def _queue_locked(self, inbound: Inbound, targets: list[Subscription]) -> None:
        inbound.pending += len(targets)
        for subscription in targets:
            self._deliverer.put(subscription, inbound)

    def _release(self, inbound: Inbound) -> None:
        """One delivery is done with ``inbound``; the last one sends the PUBACK."""
        with self._lock:
            inbound.pending = max(0, inbound.pending - 1)
            if inbound.pending or inbound.acked or inbound.qos == 0:
                return
            inbound.acked = True
            if inbound.epoch != self._epoch or not self._connected.is_set():
                return  # that connection is gone: the broker redelivers (§4.4)
            # ack() only queues a packet (it takes no paho lock), so calling it under our lock
            # is safe and keeps the epoch from changing between the check and the queueing
            self._client.ack(inbound.mid, 1)

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
        with self._lock:
            if self._closed:
                return
            self._closed = True
            tickets = list(self._tickets.waiting.values())
        deadline = time.monotonic() + self.options.ack_timeout_s
        for ticket in tickets:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._connected.is_set():
                break
            try:
                ticket.wait(remaining)
            except TransportError:
                continue  # refused or timed out: its publisher learns that from the ticket
        self._deliverer.stop()
        with self._lock:
            self._closing = True
            members = self._routes.members()
        for member in members:
            member.unsubscribe()  # local only while closing: no UNSUBSCRIBE reaches the broker
        self._shutdown_network(end_session)
        with self._lock:
            tickets = self._tickets.take()
        for ticket in tickets:
            ticket.complete(TransportClosedError(
                f"the transport closed before the broker acknowledged the message to "
                f"{ticket.topic!r}"
            ))  # fmt: skip

    def _shutdown_network(self, end_session: bool = False) -> None:
        self._closing = True
        properties = None
        if end_session and self.options.session_expiry_s:  # 0 already ends it (§3.14.2.2.2)
            properties = Properties(PacketTypes.DISCONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = 0
        # queued after pending PUBACKs, so those go out first
        self._client.disconnect(properties=properties)
        self._client.loop_stop()  # joins paho's network thread (unless called on it)
        self._connected.clear()

    @property
    def closed(self) -> bool:
        """True once ``close()`` has been called."""
        return self._closed

    def stats(self) -> TransportStats:
        """A snapshot of the counters. ``no_subscriber`` counts received copies no local
        subscription took (yet); ``retained`` is 0: the broker keeps retained messages."""
        counts = self._deliverer.counts
        with self._lock, counts.lock:
            return TransportStats(
                published=self._published,
                delivered=counts.delivered,
                handler_errors=counts.handler_errors,
                redelivered=counts.redelivered,
                undelivered=counts.undelivered,
                no_subscriber=self._no_subscriber,
                retained=0,
            )

    def _raise_if_closed(self, action: str) -> None:
        if self._closed:
            raise TransportClosedError(f"cannot {action}: the transport is closed")

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("connected" if self.connected else "connecting")
        return f"MqttTransport({self.address.display!r}, client_id={self.client_id!r}, {state})"


def _os_text(error: BaseException) -> str:
    text = getattr(error, "strerror", None) or str(error) or type(error).__name__
    return f"{type(error).__name__}: {text}"
