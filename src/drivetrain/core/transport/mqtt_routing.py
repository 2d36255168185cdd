"""Which local subscriptions get a received MQTT message: the routing table of ``MqttTransport``.

Pure bookkeeping, no I/O (the transport guards it with its lock). One broker subscription per
topic filter, each with an MQTT 5 Subscription Identifier (§3.8.2.1.2) derived from the filter;
the broker tags every PUBLISH with the identifiers of the subscriptions it matched, so a copy
reaches exactly the local subscriptions it was sent for — also with overlapping filters, shared
subscriptions, and a resumed session whose messages arrive before the application subscribed
again (they are held until a subscription with the same identifier appears).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from drivetrain.core.transport.base import QoS, Subscription
from drivetrain.core.transport.topics import topic_matches

#: MQTT 5 §3.8.2.1.2: a Subscription Identifier is 1 .. 268,435,455.
MAX_SUBSCRIPTION_ID = 268_435_455

W = TypeVar("W")
R = TypeVar("R")


@dataclass
class Inbound:
    """A received PUBLISH. Its PUBACK goes out when every local delivery released it.

    Attributes:
        mid: the packet identifier on the connection ``epoch`` it arrived on.
        subscription_ids: the identifiers the broker tagged it with (empty: none given).
        pending: local deliveries not yet done with it.
        acked: the acknowledgement was sent (or given up because the connection is gone).
    """

    topic: str
    payload: bytes
    qos: QoS
    retain: bool
    duplicate: bool
    mid: int
    epoch: int
    subscription_ids: tuple[int, ...] = ()
    pending: int = 0
    acked: bool = False


@dataclass
class BrokerFilter:
    """One broker subscription (a topic filter) and the local subscriptions on it."""

    topic_filter: str
    plain_filter: str
    shared: bool
    subscription_id: int
    qos: QoS
    members: list[Subscription] = field(default_factory=list)
    confirmed: bool = False  # the broker granted it on the current session
    _turn: int = 0

    def targets(self) -> list[Subscription]:
        """Who gets one copy: every active member, or for a shared filter one member in turn
        (each message of a ``$share`` group goes to one subscriber, as across clients)."""
        active = [m for m in self.members if m.active]
        if not self.shared or len(active) <= 1:
            return active
        member = active[self._turn % len(active)]
        self._turn = (self._turn + 1) % len(active)
        return [member]


def subscription_id_for(topic_filter: str) -> int:
    """The preferred Subscription Identifier of a filter: the same in every process, so a
    restarted client recognises the messages its previous run's session holds."""
    return zlib.crc32(topic_filter.encode()) % MAX_SUBSCRIPTION_ID + 1


class RoutingTable:
    """The filters of one client, their members, and messages waiting for their filter.

    Args:
        max_held: most messages held for filters not subscribed (yet); beyond it ``hold``
            refuses (the caller leaves them unacknowledged for the broker to resend).
    """

    def __init__(self, max_held: int = 10_000) -> None:
        self.filters: dict[str, BrokerFilter] = {}
        self._by_id: dict[int, BrokerFilter] = {}
        self._retired: set[int] = set()
        self._held: list[Inbound] = []
        self._max_held = max_held

    def add(self, subscription: Subscription) -> BrokerFilter:
        """Add a local subscription; its filter's ``confirmed`` is False when the broker must
        be asked (a new filter, or a higher QoS than granted so far)."""
        entry = self.filters.get(subscription.topic_filter)
        if entry is None:
            sid = subscription_id_for(subscription.topic_filter)
            while sid in self._by_id:  # a crc collision with another filter of this client
                sid = sid % MAX_SUBSCRIPTION_ID + 1
            self._retired.discard(sid)
            entry = BrokerFilter(
                subscription.topic_filter,
                subscription.plain_filter,
                subscription.share_group is not None,
                sid,
                subscription.qos,
            )
            self.filters[entry.topic_filter] = entry
            self._by_id[sid] = entry
        elif subscription.qos > entry.qos:
            entry.qos, entry.confirmed = subscription.qos, False
        entry.members.append(subscription)
        return entry

    def remove(self, subscription: Subscription) -> BrokerFilter | None:
        """Remove a local subscription; returns its filter when it was the last member (the
        broker subscription is no longer wanted), else None."""
        entry = self.filters.get(subscription.topic_filter)
        if entry is None or subscription not in entry.members:
            return None
        entry.members.remove(subscription)
        if entry.members:
            return None
        del self.filters[entry.topic_filter]
        del self._by_id[entry.subscription_id]
        self._retired.add(entry.subscription_id)  # copies still on their way are not wanted
        return entry

    def route(self, inbound: Inbound) -> tuple[list[Subscription], bool]:
        """The subscriptions to deliver ``inbound`` to, and whether it is unwanted.

        Unwanted: sent for a filter since unsubscribed, or a retained message on a shared
        subscription (MQTT 5 §4.8.2: shared subscriptions get no retained messages). No
        targets and not unwanted: the filter is not subscribed yet — ``hold`` it.
        """
        if inbound.subscription_ids:
            entries = [self._by_id.get(sid) for sid in inbound.subscription_ids]
            unwanted = any(sid in self._retired for sid in inbound.subscription_ids)
        else:  # a broker without identifiers: match the topic
            entries = [
                e for e in self.filters.values() if topic_matches(e.plain_filter, inbound.topic)
            ]
            unwanted = False
        targets: list[Subscription] = []
        for entry in entries:
            if entry is None:
                continue
            if entry.shared and inbound.retain:
                unwanted = True
                continue
            targets.extend(entry.targets())
        return targets, unwanted and not targets

    def hold(self, inbound: Inbound) -> bool:
        """Keep ``inbound`` until its filter is subscribed; False when too many are held."""
        if len(self._held) >= self._max_held:
            return False
        self._held.append(inbound)
        return True

    def claim(self, entry: BrokerFilter) -> list[Inbound]:
        """Take the held messages that were sent for ``entry``, oldest first."""

        def belongs(m: Inbound) -> bool:
            if m.subscription_ids:
                return entry.subscription_id in m.subscription_ids
            return topic_matches(entry.plain_filter, m.topic)

        claimed = [m for m in self._held if belongs(m)]
        if claimed:
            self._held = [m for m in self._held if not belongs(m)]
        return claimed

    @property
    def held(self) -> int:
        """Messages waiting for their filter to be subscribed."""
        return len(self._held)

    def session_lost(self) -> None:
        """The broker has no session for us: every filter must be subscribed again."""
        for entry in self.filters.values():
            entry.confirmed = False

    def unconfirmed(self) -> list[BrokerFilter]:
        """Filters the broker has not granted on the current session."""
        return [e for e in self.filters.values() if not e.confirmed]

    def members(self) -> list[Subscription]:
        """Every local subscription."""
        return [m for e in self.filters.values() for m in e.members]


class AckWaiters(Generic[W, R]):
    """Waiters by packet identifier (PUBACK, SUBACK), for acknowledgements that may arrive
    before the sender registered its waiter: paho sends on its own thread, so the broker's
    answer can beat the return of ``publish``/``subscribe``. Caller holds the lock."""

    def __init__(self) -> None:
        self.waiting: dict[int, W] = {}
        self._early: dict[int, R] = {}

    def register(self, mid: int, waiter: W) -> R | None:
        """Wait for ``mid``; returns its result when it already arrived (then not kept)."""
        if mid in self._early:
            return self._early.pop(mid)
        self.waiting[mid] = waiter
        return None

    def resolve(self, mid: int, result: R) -> W | None:
        """The waiter of ``mid``, removed; None (result kept for ``register``) if none yet."""
        waiter = self.waiting.pop(mid, None)
        if waiter is None:
            self._early[mid] = result
        return waiter

    def take(self, wanted: Callable[[W], bool] = lambda _: True) -> list[W]:
        """Remove and return the waiters ``wanted`` selects (all by default)."""
        mids = [mid for mid, waiter in self.waiting.items() if wanted(waiter)]
        return [self.waiting.pop(mid) for mid in mids]
