"""``Subscriptions``: the receiving side of ``MqttTransport``.

Subscribing sends SUBSCRIBE with a Subscription Identifier and waits for the SUBACK; while
disconnected a subscription is recorded and made on the next connection, and every filter is
subscribed again when the broker lost the session. Each received PUBLISH is routed by its
Subscription Identifiers (``mqtt_routing``) to the local subscriptions it was sent for and
queued for the delivery thread (``mqtt_delivery``); its PUBACK goes out when every delivery
released it — never on a later connection than the one it arrived on (MQTT 5 §4.4: the broker
redelivers it instead).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from drivetrain.core.errors import TransportError
from drivetrain.core.transport.base import MessageHandler, QoS, Subscription, check_qos
from drivetrain.core.transport.mqtt_client import ack_many
from drivetrain.core.transport.mqtt_delivery import Deliverer
from drivetrain.core.transport.mqtt_link import BrokerLink
from drivetrain.core.transport.mqtt_options import describe_error, describe_reason
from drivetrain.core.transport.mqtt_routing import AckWaiters, BrokerFilter, Inbound, RoutingTable
from drivetrain.core.transport.topics import split_shared_filter, validate_topic_filter

_log = logging.getLogger("drivetrain.transport")


class _SubackWaiter:
    def __init__(self, entry: BrokerFilter) -> None:
        self.entry = entry
        self.done = threading.Event()
        self.error: str | None = None


class Subscriptions:
    """Subscribes over ``link`` and routes what arrives (see the module docstring).

    ``attach`` must give it its delivery thread before the first message can arrive.

    Attributes:
        no_subscriber: received copies no local subscription took (yet).
    """

    def __init__(self, link: BrokerLink) -> None:
        self._link = link
        self._routes = RoutingTable()
        self._subacks: AckWaiters[_SubackWaiter, list[ReasonCode]] = AckWaiters()
        self._deliverer: Deliverer | None = None
        self.no_subscriber = 0

    def attach(self, deliverer: Deliverer) -> None:
        self._deliverer = deliverer

    # --- subscribing -----------------------------------------------------------------------

    def subscribe(
        self, topic_filter: str, handler: MessageHandler, *, qos: QoS, manual_ack: bool
    ) -> Subscription:
        """See ``MqttTransport.subscribe``."""
        link = self._link
        validate_topic_filter(topic_filter)
        check_qos(qos)
        if not callable(handler):
            raise TypeError(f"handler must be callable, got {type(handler).__name__}")
        group, plain = split_shared_filter(topic_filter)
        subscription = Subscription(
            topic_filter, handler, qos, group, plain,
            on_unsubscribe=self.remove, manual_ack=manual_ack,
        )  # fmt: skip
        with link.lock:
            link.raise_if_closed(f"subscribe to {topic_filter!r}")
            entry = self._routes.add(subscription)
            send = not entry.confirmed and link.connected.is_set()
            # queued under the lock, so they stay ahead of later arrivals for the filter
            for inbound in self._routes.claim(entry):
                self._queue_locked(inbound, [subscription])
            self._flush_locked()
        if send:
            timeout_s = link.options.ack_timeout_s
            waiter = self.send_subscribe(entry)
            error = waiter.error if waiter.done.wait(timeout_s) else (
                f"no SUBACK within {timeout_s} s"
            )  # fmt: skip
            if error is not None:
                self.remove(subscription, local_only=True)
                subscription.unsubscribe()
                raise TransportError(
                    f"cannot subscribe to {topic_filter!r} at {link.address.display}: {error}"
                )
        return subscription

    def connected(self, session_present: bool) -> list[BrokerFilter]:
        """A connection is up (call under the link's lock): the filters to subscribe again
        (all of them when the broker lost the session)."""
        if not session_present:
            self._routes.session_lost()
        return self._routes.unconfirmed()

    def send_subscribe(self, entry: BrokerFilter) -> _SubackWaiter:
        """Send SUBSCRIBE; the waiter is done at the SUBACK, or at once when not connected
        (without an error: the next CONNACK subscribes again)."""
        waiter = _SubackWaiter(entry)
        properties = Properties(PacketTypes.SUBSCRIBE)  # type: ignore[no-untyped-call]
        properties.SubscriptionIdentifier = entry.subscription_id
        # retained messages only for a subscription the session does not hold yet (§3.8.3.1)
        options = SubscribeOptions(qos=entry.qos, retainHandling=1)
        try:
            rc, mid = self._link.client.subscribe(
                entry.topic_filter, options=options, properties=properties
            )
        except ValueError as e:  # pragma: no cover - the filter was validated before
            rc, mid, waiter.error = paho.MQTT_ERR_INVAL, None, str(e)
        if rc != paho.MQTT_ERR_SUCCESS or mid is None:
            if rc != paho.MQTT_ERR_NO_CONN and waiter.error is None:
                waiter.error = describe_error(rc)
            waiter.done.set()
            return waiter
        with self._link.lock:
            early = self._subacks.register(mid, waiter)
        if early is not None:
            self._resolve_suback(waiter, early)
        return waiter

    def on_subscribe(
        self,
        client: paho.Client,
        userdata: Any,
        mid: int,
        reasons: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        """paho's callback: a SUBACK arrived."""
        with self._link.lock:
            waiter = self._subacks.resolve(mid, reasons)
        if waiter is not None:
            self._resolve_suback(waiter, reasons)

    def _resolve_suback(self, waiter: _SubackWaiter, reasons: list[ReasonCode]) -> None:
        failed = [r for r in reasons if r.is_failure]
        if failed:
            waiter.error = f"the broker refused it: {describe_reason(failed[0])}"
            _log.error("subscription %r refused: %s", waiter.entry.topic_filter, waiter.error)
        else:
            with self._link.lock:
                waiter.entry.confirmed = True
        waiter.done.set()

    def remove(self, subscription: Subscription, *, local_only: bool = False) -> None:
        """End a local subscription; the last one on a filter unsubscribes at the broker
        (unless ``local_only`` or the transport is closing)."""
        link = self._link
        with link.lock:
            entry = self._routes.remove(subscription)
            send = entry is not None and not local_only and not link.closing
            send = send and link.connected.is_set()
        if send and entry is not None:
            link.client.unsubscribe(entry.topic_filter)

    def members(self) -> list[Subscription]:
        """Every local subscription (call under the link's lock)."""
        return self._routes.members()

    # --- receiving -------------------------------------------------------------------------

    def on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        """paho's callback (a client without our own PUBLISH decoding): see ``received``."""
        ids = getattr(message.properties, "SubscriptionIdentifier", None) or []
        self.received(
            message._topic, bytes(message.payload), message.qos, bool(message.retain),
            bool(message.dup), message.mid, tuple(ids),
        )  # fmt: skip

    def received(
        self, topic_bytes: bytes, payload: bytes, qos: int, retain: bool, duplicate: bool,
        mid: int, subscription_ids: tuple[int, ...],
    ) -> None:  # fmt: skip
        """A PUBLISH arrived (on paho's network thread): route it to the delivery thread."""
        link = self._link
        try:
            topic = topic_bytes.decode()  # MQTT 5 §1.5.4: a topic is UTF-8
        except UnicodeDecodeError:
            _log.error("dropped a message whose topic is not UTF-8: %r", topic_bytes[:200])
            if qos:
                link.client.ack(mid, qos)
            return
        with link.lock:
            if link.closing:
                return  # not acknowledged: the broker redelivers it to the next session
            inbound = Inbound(
                topic, payload, 1 if qos else 0, retain, duplicate, mid, link.epoch,
                subscription_ids,
            )  # fmt: skip
            targets, unwanted = self._routes.route(inbound)
            if targets:
                self._queue_locked(inbound, targets)
                return
            self.no_subscriber += 1
            if not unwanted:
                if not self._routes.hold(inbound):  # unacknowledged: resent next session
                    _log.warning("no subscription for %r; left unacknowledged", topic)
                return
        self.release(inbound)  # for a filter unsubscribed meanwhile: acknowledged, dropped

    def flush(self) -> None:
        """Hand what arrived in the last burst of packets to the delivery thread (called by
        the network thread after each burst)."""
        with self._link.lock:
            self._flush_locked()

    def _flush_locked(self) -> None:
        if self._deliverer is not None:
            self._deliverer.flush()

    def _queue_locked(self, inbound: Inbound, targets: list[Subscription]) -> None:
        assert self._deliverer is not None, "attach() the delivery thread first"
        inbound.pending += len(targets)
        for subscription in targets:
            self._deliverer.put(subscription, inbound)

    def release(self, inbound: Inbound) -> None:
        """One delivery is done with ``inbound``; the last one sends the PUBACK."""
        self.release_many((inbound,))

    def release_many(self, inbounds: Iterable[Inbound]) -> None:
        """``release`` each of ``inbounds``; their PUBACKs go out in one write."""
        link = self._link
        with link.lock:
            mids = []
            for inbound in inbounds:
                inbound.pending = max(0, inbound.pending - 1)
                if inbound.pending or inbound.acked or inbound.qos == 0:
                    continue
                inbound.acked = True
                if inbound.epoch != link.epoch or not link.connected.is_set():
                    continue  # that connection is gone: the broker redelivers (§4.4)
                mids.append(inbound.mid)
            # this only queues packets (no paho lock is taken), so calling it under the lock
            # is safe and keeps the epoch from changing between the check and the queueing
            if mids:
                ack_many(link.client, mids)
