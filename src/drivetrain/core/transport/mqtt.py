"""``MqttTransport``: the ``Transport`` interface over a real MQTT 5 broker (paho-mqtt 2.x).

Delivery semantics (documented in docs/transport.md, "MQTT 5"):

- **Publishing.** ``publish`` returns once the broker acknowledged a QoS 1 message (PUBACK) and
  raises ``TransportError`` after ``ack_timeout_s``, when not connected, or when the broker
  refused it (a PUBACK reason code >= 0x80). ``publish_async`` returns a ``PublishTicket`` at
  once, so a publisher can keep many QoS 1 messages in flight. A message in flight when the
  connection drops is resent (DUP) after the reconnect and its ticket completes then.
- **Receiving.** Handlers run on one delivery thread of this transport, never on paho's network
  thread, one at a time, in the order messages arrived; a slow handler therefore never stalls
  keep-alives or acknowledgements, and a handler may publish and wait for the PUBACK.
- **Acknowledgement.** QoS 1 messages are acknowledged (PUBACK) when the handler returned, or,
  on a ``manual_ack=True`` subscription, when the subscriber calls ``Message.ack()``. A message
  never acknowledged is redelivered by the broker when the session resumes (MQTT 5 §4.4). A
  handler that raises is retried (``attempt`` 2, 3, ...) up to ``max_attempts`` times.
- **Routing.** Each filter is subscribed with an MQTT 5 Subscription Identifier (§3.8.2.1.2)
  derived from the filter, so every copy the broker sends reaches exactly the subscriptions it
  was sent for, also for overlapping filters and shared subscriptions, and also for messages
  of a resumed session that arrive before the filter is subscribed again: those wait, unacked,
  until a subscription with that filter is made.
- **Sessions and reconnects.** ``session_expiry_s > 0`` asks for a persistent session
  (Clean Start 0 + Session Expiry Interval): the broker keeps the subscriptions and queues QoS 1
  messages while the client is away. paho's network thread reconnects with exponential
  back-off; filters are subscribed again when the broker lost the session. ``close()`` does not
  unsubscribe, so a persistent session keeps collecting messages.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from drivetrain.core.errors import ConfigurationError, TransportClosedError, TransportError
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
from drivetrain.core.transport.mqtt_options import (
    BrokerAddress,
    TlsFiles,
    describe_error,
    describe_reason,
    parse_broker_url,
)
from drivetrain.core.transport.topics import (
    split_shared_filter,
    topic_matches,
    validate_topic_filter,
    validate_topic_name,
)

_log = logging.getLogger("drivetrain.transport")

_MAX_SUBSCRIPTION_ID = 268_435_455  # MQTT 5 §3.8.2.1.2: 1 .. 268,435,455
_MAX_UNCLAIMED = 10_000  # resumed-session messages waiting for their filter to be subscribed
_STOP = object()


@dataclass
class _Filter:
    """One broker subscription (a filter) and the local subscriptions that share it."""

    topic_filter: str
    plain_filter: str
    shared: bool
    subscription_id: int
    qos: QoS
    members: list[Subscription] = field(default_factory=list)
    confirmed: bool = False  # the broker granted it on the current session
    next_member: int = 0

    def targets(self) -> list[Subscription]:
        """Who gets one copy: every member, or one member in turn for a shared filter."""
        active = [m for m in self.members if m.active]
        if not self.shared or len(active) <= 1:
            return active
        member = active[self.next_member % len(active)]
        self.next_member = (self.next_member + 1) % len(active)
        return [member]


class _Inbound:
    """A received PUBLISH; its PUBACK is sent once every local delivery has released it."""

    def __init__(self, message: paho.MQTTMessage, epoch: int, ids: tuple[int, ...]) -> None:
        self.topic = message.topic
        self.payload = bytes(message.payload)
        self.qos: QoS = 1 if message.qos >= 1 else 0
        self.retain = bool(message.retain)
        self.duplicate = bool(message.dup)
        self.mid = message.mid
        self.epoch = epoch
        self.subscription_ids = ids
        self.pending = 0
        self.acked = False


class _SubackWaiter:
    def __init__(self, entry: _Filter) -> None:
        self.entry = entry
        self.done = threading.Event()
        self.error: str | None = None


class MqttTransport(Transport):
    """An MQTT 5 client with the ``Transport`` semantics (see the module docstring).

    Args:
        url: ``mqtt://host[:port]`` or ``mqtts://host[:port]`` (TLS); credentials in the URL's
            user part are used unless ``username``/``password`` are given.
        client_id: the MQTT client identifier; a persistent session belongs to it (for a
            vehicle: its VIN; for an ingest worker: a stable worker name).
        username, password: broker credentials (MQTT 5 §3.1.3.5), or None.
        ca_file, cert_file, key_file: PEM files for ``mqtts://`` (see ``TlsFiles``).
        session_expiry_s: seconds the broker keeps the session after a disconnect; > 0 makes
            it persistent (Clean Start 0), 0 starts clean each time.
        keepalive_s: MQTT keep-alive interval, seconds.
        connect_timeout_s: how long the first connection may take (TCP, TLS, CONNACK).
        wait_for_connection: True: the constructor raises when the first connection fails;
            False: it returns at once and keeps trying in the background.
        ack_timeout_s: how long ``publish`` (QoS 1) and ``subscribe`` wait for the broker's
            acknowledgement.
        reconnect_min_delay_s, reconnect_max_delay_s: the exponential back-off between
            reconnect attempts, seconds.
        max_inflight: QoS 1 messages sent but not yet acknowledged, at most (further ones wait
            in paho's queue); lowered to the broker's Receive Maximum.
        receive_maximum: QoS 1 messages the broker may send before we acknowledge (the window a
            manually acknowledging consumer can batch in).
        max_attempts: handler calls for a QoS 1 message whose handler raises (>= 1).
        on_handler_error: called (on the delivery thread) for every handler exception; default:
            logged on the ``drivetrain.transport`` logger.

    Raises:
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
        _check_options(
            client_id, session_expiry_s, keepalive_s, connect_timeout_s, ack_timeout_s,
            reconnect_min_delay_s, reconnect_max_delay_s, max_inflight, receive_maximum,
            max_attempts,
        )  # fmt: skip
        self.client_id = client_id
        self.session_expiry_s = session_expiry_s
        self._ack_timeout_s = ack_timeout_s
        self._max_inflight = max_inflight
        self._max_attempts = max_attempts
        self._on_handler_error = on_handler_error or _log_failure

        self._lock = threading.Lock()
        self._connected = threading.Event()
        self._first_attempt = threading.Event()
        self._epoch = 0  # changes on every connect and disconnect: acks of older mids are void
        self._last_error: str | None = None
        self._first_refusal: str | None = None
        self._closed = False
        self._closing = False

        self._filters: dict[str, _Filter] = {}
        self._by_id: dict[int, _Filter] = {}
        self._retired_ids: set[int] = set()
        self._unclaimed: list[_Inbound] = []
        self._tickets: dict[int, PublishTicket] = {}
        self._early_acks: dict[int, ReasonCode] = {}
        self._subacks: dict[int, _SubackWaiter] = {}
        self._early_subacks: dict[int, list[ReasonCode]] = {}
        self._deliveries: queue.SimpleQueue[object] = queue.SimpleQueue()

        self._published = 0
        self._delivered = 0
        self._handler_errors = 0
        self._redelivered = 0
        self._undelivered = 0
        self._no_subscriber = 0

        self._client = self._make_client(
            username, password, TlsFiles(_path(ca_file), _path(cert_file), _path(key_file)),
            connect_timeout_s, reconnect_min_delay_s, reconnect_max_delay_s, receive_maximum,
        )  # fmt: skip
        self._connect_properties = Properties(PacketTypes.CONNECT)
        if session_expiry_s:
            self._connect_properties.SessionExpiryInterval = session_expiry_s
        self._connect_properties.ReceiveMaximum = receive_maximum
        self._delivery = threading.Thread(
            target=self._run_delivery, name=f"drivetrain-mqtt-deliver-{client_id}", daemon=True
        )
        self._delivery.start()
        try:
            self._start(keepalive_s, connect_timeout_s, wait_for_connection)
        except BaseException:
            self._shutdown_threads()
            raise

    # --- connection ------------------------------------------------------------------------

    def _make_client(
        self,
        username: str | None,
        password: str | None,
        tls: TlsFiles,
        connect_timeout_s: float,
        min_delay_s: float,
        max_delay_s: float,
        receive_maximum: int,
    ) -> paho.Client:
        client = paho.Client(
            paho.CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=paho.MQTTv5,
            manual_ack=True,  # we acknowledge after the handler (or the subscriber) is done
        )
        client.suppress_exceptions = True  # a bug in a callback must not kill the network thread
        client.on_log = self._on_log
        client.connect_timeout = connect_timeout_s
        client.max_inflight_messages_set(self._max_inflight)
        client.max_queued_messages_set(0)
        # paho types the delays as int; fractions work and keep tests short
        client.reconnect_delay_set(min_delay_s, max_delay_s)  # type: ignore[arg-type]
        user = username if username is not None else self.address.username
        secret = password if password is not None else self.address.password
        if user is not None:
            client.username_pw_set(user, secret)
        elif secret is not None:
            raise ConfigurationError(
                f"broker {self.address.display}: a password was given without a username"
            )
        if self.address.tls:
            client.tls_set_context(tls.context())
        elif tls != TlsFiles():
            raise ConfigurationError(
                f"broker {self.address.display}: TLS files were given for a plain mqtt:// URL; "
                "use mqtts://"
            )
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        client.on_subscribe = self._on_subscribe
        return client

    def _start(self, keepalive_s: int, connect_timeout_s: float, wait: bool) -> None:
        clean_start = self.session_expiry_s == 0
        where = self.address.display
        if not wait:
            try:
                self._client.connect_async(
                    self.address.host, self.address.port, keepalive_s,
                    clean_start=clean_start, properties=self._connect_properties,
                )  # fmt: skip
            except (ValueError, OSError) as e:
                raise TransportError(f"cannot connect to the broker at {where}: {e}") from e
            self._client.loop_start()
            return
        try:
            rc = self._client.connect(
                self.address.host, self.address.port, keepalive_s,
                clean_start=clean_start, properties=self._connect_properties,
            )  # fmt: skip
        except (OSError, ValueError) as e:  # refused, unreachable, DNS, TLS (ssl.SSLError)
            raise TransportError(f"cannot connect to the broker at {where}: {_os_text(e)}") from e
        if rc != paho.MQTT_ERR_SUCCESS:
            raise TransportError(
                f"cannot connect to the broker at {where}: {describe_error(rc)}"
            )
        self._client.loop_start()
        if not self._first_attempt.wait(connect_timeout_s) or not self._connected.is_set():
            with self._lock:
                reason = self._first_refusal or self._last_error
            reason = reason or f"no CONNACK within {connect_timeout_s} s"
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
                    self._first_refusal = refusal  # kept: a later disconnect overwrites _last_error
                    self._first_attempt.set()
            _log.warning("%s: %s", self.address.display, refusal)
            return
        # Never exceed the broker's Receive Maximum (MQTT 5 §3.2.2.3.3). paho refuses the
        # setter on an open connection only because of the 0 (unlimited) <-> N switch, which
        # cannot happen here: both values are >= 1.
        receive_max = getattr(properties, "ReceiveMaximum", 65535)
        client._max_inflight_messages = min(self._max_inflight, int(receive_max))
        with self._lock:
            self._epoch += 1
            self._last_error = None
            if not flags.session_present:
                for entry in self._filters.values():
                    entry.confirmed = False
            to_subscribe = [e for e in self._filters.values() if not e.confirmed]
            self._connected.set()
        _log.info(
            "connected to %s as %r (session %s)",
            self.address.display,
            self.client_id,
            "resumed" if flags.session_present else "new",
        )
        for entry in to_subscribe:
            self._send_subscribe(entry)  # SUBACK handled by _on_subscribe; no waiting here
        self._first_attempt.set()

    def _on_log(self, client: paho.Client, userdata: Any, level: int, text: str) -> None:
        # paho reports caught callback exceptions and socket errors here; its "not connected"
        # complaint after our own DISCONNECT is expected and not worth an error
        if level not in (paho.MQTT_LOG_ERR, paho.MQTT_LOG_WARNING):
            return
        if self._closing and text.startswith("Client is not connected"):
            return
        _log.log(
            logging.ERROR if level == paho.MQTT_LOG_ERR else logging.WARNING,
            "paho (%s): %s", self.client_id, text,
        )  # fmt: skip

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
            # QoS 0 packets not yet written are dropped by paho on reconnect: fail their tickets
            lost = [mid for mid, t in self._tickets.items() if t.qos == 0]
            tickets = [self._tickets.pop(mid) for mid in lost]
        for ticket in tickets:
            ticket.complete(TransportError(
                f"connection to {self.address.display} lost before the QoS 0 message to "
                f"{ticket.topic!r} was sent"
            ))  # fmt: skip
        if was_connected and not self._closing:
            _log.warning(
                "disconnected from %s (%s); reconnecting", self.address.display, reason
            )

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
            ticket.wait(self._ack_timeout_s)

    def publish_async(
        self, topic: str, payload: bytes, *, qos: QoS = 1, retain: bool = False
    ) -> PublishTicket:
        """Hand a message to the network thread; the ticket completes on PUBACK (QoS 1) or
        when written (QoS 0).

        Raises:
            InvalidTopicError: ``topic`` is not a valid topic name.
            TransportClosedError: the transport is closed.
            TransportError: not connected (nothing was sent), or paho refused the message.
        """
        validate_topic_name(topic)
        body = _as_bytes(payload)
        _check_qos(qos)
        with self._lock:
            self._raise_if_closed(f"publish to {topic!r}")
            if not self._connected.is_set():
                raise TransportError(
                    f"cannot publish to {topic!r}: not connected to the broker at "
                    f"{self.address.display} ({self._last_error or 'connecting'})"
                )
        try:
            info = self._client.publish(topic, body, qos=qos, retain=retain)
        except ValueError as e:  # payload over 256 MiB, invalid topic for the protocol
            raise TransportError(f"cannot publish to {topic!r}: {e}") from e
        ticket = PublishTicket(topic, qos)
        accepted = (paho.MQTT_ERR_SUCCESS, paho.MQTT_ERR_NO_CONN) if qos == 1 else (
            paho.MQTT_ERR_SUCCESS,
        )  # a QoS 1 message paho holds while reconnecting is resent after the CONNACK
        if info.rc not in accepted:
            raise TransportError(f"cannot publish to {topic!r}: {describe_error(info.rc)}")
        with self._lock:
            self._published += 1
            early = self._early_acks.pop(info.mid, None)
            if early is None:
                self._tickets[info.mid] = ticket
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
            ticket = self._tickets.pop(mid, None)
            if ticket is None:  # PUBACK raced ahead of publish_async registering the ticket
                self._early_acks[mid] = reason
                return
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
        """Messages handed to the broker connection and not yet acknowledged."""
        with self._lock:
            return len(self._tickets)

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

        Raises:
            InvalidTopicError: ``topic_filter`` is not a valid filter.
            TransportClosedError: the transport is closed.
            TransportError: the broker refused the filter (e.g. ``Not authorized (0x87)``) or
                did not answer within ``ack_timeout_s``; nothing stays subscribed then.
        """
        validate_topic_filter(topic_filter)
        _check_qos(qos)
        if not callable(handler):
            raise TypeError(f"handler must be callable, got {type(handler).__name__}")
        group, plain = split_shared_filter(topic_filter)
        subscription = Subscription(
            topic_filter, handler, qos, group, plain,
            on_unsubscribe=self._remove, manual_ack=manual_ack,
        )  # fmt: skip
        with self._lock:
            self._raise_if_closed(f"subscribe to {topic_filter!r}")
            entry = self._filters.get(topic_filter)
            if entry is None:
                entry = self._new_filter(topic_filter, plain, group is not None, qos)
            elif qos > entry.qos:
                entry.qos, entry.confirmed = qos, False  # upgrade the broker's subscription
            entry.members.append(subscription)
            send = not entry.confirmed and self._connected.is_set()
            # queued now, under the lock, so they stay ahead of later arrivals for the filter
            for inbound in self._claim(entry):
                self._dispatch_locked(inbound, [subscription])
        if send:
            waiter = self._send_subscribe(entry)
            error = waiter.error if waiter.done.wait(self._ack_timeout_s) else (
                f"no SUBACK within {self._ack_timeout_s} s"
            )
            if error is not None:
                self._remove(subscription, local_only=True)
                subscription._active = False
                raise TransportError(
                    f"cannot subscribe to {topic_filter!r} at {self.address.display}: {error}"
                )
        return subscription

    def _new_filter(self, topic_filter: str, plain: str, shared: bool, qos: QoS) -> _Filter:
        # A stable id per filter lets a resumed session's messages (sent under the id the
        # previous connection chose) find their subscription again (caller holds the lock).
        sid = zlib.crc32(topic_filter.encode()) % _MAX_SUBSCRIPTION_ID + 1
        while sid in self._by_id:
            sid = sid % _MAX_SUBSCRIPTION_ID + 1
        self._retired_ids.discard(sid)
        entry = _Filter(topic_filter, plain, shared, sid, qos)
        self._filters[topic_filter] = entry
        self._by_id[sid] = entry
        return entry

    def _claim(self, entry: _Filter) -> list[_Inbound]:
        """Unclaimed messages sent for this filter's id (caller holds the lock)."""
        claimed = [m for m in self._unclaimed if entry.subscription_id in m.subscription_ids or (
            not m.subscription_ids and topic_matches(entry.plain_filter, m.topic)
        )]  # fmt: skip
        if claimed:
            self._unclaimed = [m for m in self._unclaimed if m not in claimed]
        return claimed

    def _send_subscribe(self, entry: _Filter) -> _SubackWaiter:
        waiter = _SubackWaiter(entry)
        properties = Properties(PacketTypes.SUBSCRIBE)
        properties.SubscriptionIdentifier = entry.subscription_id
        # Retained messages only for a subscription the session does not already hold (§3.8.3.1)
        options = SubscribeOptions(qos=entry.qos, retainHandling=1)
        try:
            rc, mid = self._client.subscribe(
                entry.topic_filter, options=options, properties=properties
            )
        except ValueError as e:
            waiter.error = str(e)
            waiter.done.set()
            return waiter
        if rc != paho.MQTT_ERR_SUCCESS or mid is None:
            waiter.error = describe_error(rc)  # not connected: made again on the next CONNACK
            waiter.done.set()
            return waiter
        with self._lock:
            early = self._early_subacks.pop(mid, None)
            if early is None:
                self._subacks[mid] = waiter
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
            waiter = self._subacks.pop(mid, None)
            if waiter is None:
                self._early_subacks[mid] = reasons
                return
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
            entry = self._filters.get(subscription.topic_filter)
            if entry is None or subscription not in entry.members:
                return
            entry.members.remove(subscription)
            if entry.members:
                return
            del self._filters[entry.topic_filter]
            del self._by_id[entry.subscription_id]
            self._retired_ids.add(entry.subscription_id)
            send = not local_only and not self._closing and self._connected.is_set()
        if send:
            try:
                self._client.unsubscribe(entry.topic_filter)
            except ValueError as e:  # pragma: no cover - the filter was validated on subscribe
                _log.error("cannot unsubscribe %r: %s", entry.topic_filter, e)

    # --- receiving -------------------------------------------------------------------------

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        ids = getattr(message.properties, "SubscriptionIdentifier", None) or []
        try:
            message.topic  # noqa: B018 - decodes the topic: MQTT 5 §1.5.4 requires UTF-8
        except UnicodeDecodeError:
            _log.error("dropped a message whose topic is not UTF-8: %r", message._topic[:200])
            if message.qos >= 1:
                client.ack(message.mid, 1)
            return
        with self._lock:
            if self._closing:
                return  # not acknowledged: the broker redelivers it to the next session
            inbound = _Inbound(message, self._epoch, tuple(ids))
            targets: list[Subscription] = []
            entries = [self._by_id.get(sid) for sid in inbound.subscription_ids]
            retired = any(sid in self._retired_ids for sid in inbound.subscription_ids)
            if not inbound.subscription_ids:  # a broker without identifiers: match the topic
                entries = [
                    e for e in self._filters.values() if topic_matches(e.plain_filter, inbound.topic)
                ]
            for entry in entries:
                if entry is None:
                    continue
                if entry.shared and inbound.retain:
                    retired = True  # no retained messages on shared subscriptions (§4.8.2)
                    continue
                targets.extend(entry.targets())
            if targets:
                self._dispatch_locked(inbound, targets)
                return
            self._no_subscriber += 1
            if not retired:
                if len(self._unclaimed) < _MAX_UNCLAIMED:
                    self._unclaimed.append(inbound)  # its filter is subscribed again later
                else:  # not acknowledged either: the broker resends it to the next session
                    _log.warning("no subscription for %r; left unacknowledged", inbound.topic)
                return
        self._release(inbound)  # for a filter unsubscribed meanwhile: not wanted, acknowledged

    def _dispatch_locked(self, inbound: _Inbound, targets: list[Subscription]) -> None:
        """Queue ``inbound`` for each target (caller holds the lock: keeps arrival order)."""
        inbound.pending += len(targets)
        for subscription in targets:
            self._deliveries.put((subscription, inbound))

    def _release(self, inbound: _Inbound) -> None:
        """One delivery is done with ``inbound``; the last one sends the PUBACK."""
        with self._lock:
            inbound.pending = max(0, inbound.pending - 1)
            if inbound.pending or inbound.acked or inbound.qos == 0:
                return
            inbound.acked = True
            if inbound.epoch != self._epoch or not self._connected.is_set():
                return  # that connection is gone: the broker redelivers (§4.4)
            # ack() only queues a packet (no paho lock): safe under our lock, which keeps the
            # epoch from changing between the check and the queueing
            self._client.ack(inbound.mid, 1)

    def _run_delivery(self) -> None:
        while True:
            item = self._deliveries.get()
            if item is _STOP:
                return
            subscription, inbound = item  # type: ignore[misc]
            self._deliver(subscription, inbound)

    def _deliver(self, subscription: Subscription, inbound: _Inbound) -> None:
        qos: QoS = 1 if inbound.qos == 1 and subscription.qos == 1 else 0
        manual = subscription.manual_ack and inbound.qos == 1
        released = threading.Event()

        def ack() -> None:
            if not released.is_set():
                released.set()
                self._release(inbound)

        message = Message(
            topic=inbound.topic,
            payload=inbound.payload,
            qos=qos,
            retain=inbound.retain,
            attempt=2 if inbound.duplicate else 1,
            _ack=ack if manual else None,
        )
        attempts = self._max_attempts if qos == 1 else 1
        for attempt in range(attempts):
            if not subscription.active:
                break
            delivered = replace(message, attempt=message.attempt + attempt)
            try:
                subscription.handler(delivered)
            except Exception as error:  # noqa: BLE001 - isolate: one failing handler must not stop the others
                gave_up = attempt + 1 >= attempts
                with self._lock:
                    self._handler_errors += 1
                    if gave_up:
                        self._undelivered += 1
                    else:
                        self._redelivered += 1
                self._report(HandlerFailure(subscription.topic_filter, delivered, error, gave_up))
                continue
            with self._lock:
                self._delivered += 1
            break
        if not manual or not subscription.active:
            ack()  # auto: handled (or given up, and reported); unsubscribed: not wanted

    def _report(self, failure: HandlerFailure) -> None:
        try:
            self._on_handler_error(failure)
        except Exception:  # noqa: BLE001 - a broken error callback must not stop delivery
            _log.exception("on_handler_error callback raised while reporting %r", failure)

    # --- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        """Deliver what was received, disconnect cleanly, stop the threads; idempotent.

        In-flight publishes get up to ``ack_timeout_s`` for their PUBACK (while connected);
        tickets still pending then fail with ``TransportClosedError``. Subscriptions end
        locally but stay in a persistent session, so the broker keeps queueing for it.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            tickets = list(self._tickets.values())
        deadline = time.monotonic() + self._ack_timeout_s
        for ticket in tickets:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._connected.is_set():
                break
            try:
                ticket.wait(remaining)
            except TransportError:
                continue  # refused or timed out: reported to its publisher, not to close()
        self._deliveries.put(_STOP)
        if threading.current_thread() is not self._delivery:
            self._delivery.join()
        with self._lock:
            self._closing = True
            members = [m for e in self._filters.values() for m in e.members]
        for member in members:
            member.unsubscribe()
        self._shutdown_threads()
        with self._lock:
            tickets = list(self._tickets.values())
            self._tickets.clear()
        for ticket in tickets:
            ticket.complete(TransportClosedError(
                f"the transport closed before the broker acknowledged the message to "
                f"{ticket.topic!r}"
            ))  # fmt: skip

    def _shutdown_threads(self) -> None:
        self._closing = True
        self._client.disconnect()  # queued after any pending PUBACKs, so those go out first
        self._client.loop_stop()  # joins paho's network thread (unless called on it)
        self._deliveries.put(_STOP)
        self._connected.clear()

    @property
    def closed(self) -> bool:
        """True once ``close()`` has been called."""
        return self._closed

    def stats(self) -> TransportStats:
        """A snapshot of the counters; ``no_subscriber`` counts received messages no local
        subscription wanted (yet); ``retained`` is 0 (the broker keeps retained messages)."""
        with self._lock:
            return TransportStats(
                published=self._published,
                delivered=self._delivered,
                handler_errors=self._handler_errors,
                redelivered=self._redelivered,
                undelivered=self._undelivered,
                no_subscriber=self._no_subscriber,
                retained=0,
            )

    def _raise_if_closed(self, action: str) -> None:
        if self._closed:
            raise TransportClosedError(f"cannot {action}: the transport is closed")

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("connected" if self.connected else "connecting")
        return f"MqttTransport({self.address.display!r}, client_id={self.client_id!r}, {state})"


def _check_options(
    client_id: str,
    session_expiry_s: int,
    keepalive_s: int,
    connect_timeout_s: float,
    ack_timeout_s: float,
    min_delay_s: float,
    max_delay_s: float,
    max_inflight: int,
    receive_maximum: int,
    max_attempts: int,
) -> None:
    if not isinstance(client_id, str) or not client_id or len(client_id.encode()) > 65535:
        raise ValueError(f"client_id must be a non-empty str of <= 65535 bytes, got {client_id!r}")
    if "\x00" in client_id:
        raise ValueError(f"client_id must not contain NUL characters, got {client_id!r}")
    if not 0 <= session_expiry_s <= 0xFFFFFFFF:
        raise ValueError(f"session_expiry_s must be 0..4294967295, got {session_expiry_s}")
    if not 0 <= keepalive_s <= 65535:
        raise ValueError(f"keepalive_s must be 0..65535, got {keepalive_s}")
    for name, value in (("connect_timeout_s", connect_timeout_s), ("ack_timeout_s", ack_timeout_s)):
        if not value > 0:
            raise ValueError(f"{name} must be > 0, got {value}")
    if not 0 < min_delay_s <= max_delay_s:
        raise ValueError(
            f"reconnect delays must satisfy 0 < min <= max, got {min_delay_s} and {max_delay_s}"
        )
    if not 1 <= max_inflight <= 65535:
        raise ValueError(f"max_inflight must be 1..65535, got {max_inflight}")
    if not 1 <= receive_maximum <= 65535:
        raise ValueError(f"receive_maximum must be 1..65535, got {receive_maximum}")
    if max_attempts < 1:
        raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")


def _log_failure(failure: HandlerFailure) -> None:
    _log.error(
        "handler for %r raised on topic %r (attempt %d, %s): %r",
        failure.topic_filter,
        failure.message.topic,
        failure.message.attempt,
        "gave up" if failure.gave_up else "will retry",
        failure.error,
        exc_info=failure.error,
    )


def _os_text(error: BaseException) -> str:
    text = getattr(error, "strerror", None) or str(error) or type(error).__name__
    return f"{type(error).__name__}: {text}"


def _path(value: str | Path | None) -> Path | None:
    return None if value is None else Path(value)


def _as_bytes(payload: bytes) -> bytes:
    if isinstance(payload, bytes):
        return payload
    if isinstance(payload, (bytearray, memoryview)):
        return bytes(payload)
    raise TypeError(f"payload must be bytes, got {type(payload).__name__}")


def _check_qos(qos: int) -> None:
    if qos not in (0, 1):
        raise ValueError(f"qos must be 0 (at most once) or 1 (at least once), got {qos!r}")
