"""The downlink guard: which cloud messages the vehicle may act on. Pure (no I/O, no clock).

A vehicle obeys a message only when all of these hold, checked in this order (nothing in an
envelope is believed before its signature verifies):

1. it parses as a wire-format v1 envelope, of a downlink kind, on the topic of that kind
   (``state/desired``, ``campaigns``, ``commands``, ``decoder``, ``entitlements``) under this
   vehicle's VIN;
2. it is signed by the cloud key installed at provisioning (the header's key id and then the
   Ed25519 signature);
3. the envelope's ``vehicle`` is this VIN (a message signed for another vehicle is not ours);
4. it is not a replay: its message id was not accepted before; its ``sent_ns`` is not older
   than the last accepted message of its kind; it is within the freshness window of its kind
   and not from the future beyond the allowed clock skew;
5. its body is a JSON object, and (commands, desired state) its ``expires_ns`` has not passed.

Everything else is refused with a reason, counted, and changes nothing. A retained message
delivered again after a reconnect (the same id as the last one accepted on that topic) is a
``duplicate``, and an empty message (the cloud clearing a channel's retained message) is
``cleared``: both are counted apart from attacks.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from drivetrain.core.crypto import VerifyKey
from drivetrain.core.errors import InvalidTopicError, SignatureError, WireFormatError
from drivetrain.core.transport import (
    CAMPAIGNS,
    COMMANDS,
    DECODER,
    ENTITLEMENTS,
    STATE_DESIRED,
    parse_vehicle_topic,
)
from drivetrain.core.wire import Envelope, MessageKind, parse
from drivetrain.edge.state import DownlinkMemory

RefusalReason = Literal[
    "cleared",
    "malformed",
    "wrong_topic",
    "unknown_key",
    "bad_signature",
    "other_vehicle",
    "replayed",
    "stale",
    "future",
    "expired",
    "duplicate",
]
#: Reasons that are not an attack: a retained message delivered again, or the cloud clearing
#: a channel's retained message (an empty payload, MQTT 5 §3.3.1.3) once it was settled.
BENIGN_REASONS: Final = frozenset({"duplicate", "cleared"})
DOWNLINK_CHANNELS: Final[Mapping[MessageKind, str]] = {
    MessageKind.DESIRED_STATE: STATE_DESIRED,
    MessageKind.CAMPAIGN: CAMPAIGNS,
    MessageKind.COMMAND: COMMANDS,
    MessageKind.DECODER_MANIFEST: DECODER,
    MessageKind.ENTITLEMENTS: ENTITLEMENTS,
}
_NS = 1_000_000_000
#: Default freshness windows, seconds: a command is meant for now; desired state and campaigns
#: are declarations protected by versions and their own expiry, and a vehicle may have been
#: parked and offline for weeks.
DEFAULT_FRESHNESS_S: Final[Mapping[MessageKind, float]] = {
    MessageKind.COMMAND: 300.0,
    MessageKind.DESIRED_STATE: 30 * 86_400.0,
    MessageKind.CAMPAIGN: 30 * 86_400.0,
    MessageKind.DECODER_MANIFEST: 30 * 86_400.0,
    MessageKind.ENTITLEMENTS: 30 * 86_400.0,
}


@dataclass(frozen=True)
class Accepted:
    """A downlink message the vehicle may act on."""

    envelope: Envelope
    body: Mapping[str, Any]

    @property
    def kind(self) -> MessageKind:
        return self.envelope.kind


@dataclass(frozen=True)
class Refused:
    """A downlink message refused; ``detail`` says exactly why."""

    reason: RefusalReason
    detail: str
    kind: MessageKind | None = None


@dataclass
class ReplayState:
    """What the guard remembers between messages (persisted by the agent as a
    ``DownlinkMemory`` record)."""

    seen_ids: deque[str] = field(default_factory=deque)
    last_sent_ns: dict[int, int] = field(default_factory=dict)
    last_id: dict[int, str] = field(default_factory=dict)

    def to_record(self) -> DownlinkMemory:
        """A snapshot to persist (the agent stores it with the acknowledgement it goes with)."""
        return DownlinkMemory(tuple(self.seen_ids), dict(self.last_sent_ns), dict(self.last_id))

    @classmethod
    def from_record(cls, record: DownlinkMemory) -> ReplayState:
        """The guard's memory restored from a persisted snapshot."""
        return cls(deque(record.seen_ids), dict(record.last_sent_ns), dict(record.last_id))


class DownlinkGuard:
    """Checks downlink messages for one vehicle (see the module docstring).

    Args:
        vin: this vehicle's VIN.
        cloud_key: the cloud's public key (from the vehicle's credentials).
        state: replay state restored from disk, or None for a fresh vehicle.
        freshness_s: per kind, the oldest ``sent_ns`` accepted, seconds before now.
        max_skew_s: how far ``sent_ns`` may be ahead of the vehicle clock, seconds.
        remember: how many accepted message ids are remembered.
    """

    def __init__(
        self,
        vin: str,
        cloud_key: VerifyKey,
        *,
        state: ReplayState | None = None,
        freshness_s: Mapping[MessageKind, float] = DEFAULT_FRESHNESS_S,
        max_skew_s: float = 60.0,
        remember: int = 1024,
    ) -> None:
        self.vin = vin
        self.cloud_key = cloud_key
        self.state = state or ReplayState()
        self._seen = set(self.state.seen_ids)
        self._freshness_ns = {k: int(v * _NS) for k, v in freshness_s.items()}
        self._skew_ns = int(max_skew_s * _NS)
        self._remember = remember
        self.accepted: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()

    def check(self, topic: str, payload: bytes, now_ns: int) -> Accepted | Refused:
        """Decide on one message; an ``Accepted`` one is remembered (not accepted again)."""
        outcome = self._check(topic, payload, now_ns)
        if isinstance(outcome, Refused):
            self.refused[outcome.reason] += 1
        else:
            self._remember_accepted(outcome.envelope)
            self.accepted[outcome.kind.name.lower()] += 1
        return outcome

    def _check(self, topic: str, payload: bytes, now_ns: int) -> Accepted | Refused:
        if not payload:
            return Refused("cleared", f"{topic}: the retained message was cleared")
        try:
            envelope = parse(payload)
        except WireFormatError as e:
            return Refused("malformed", f"not a wire-format envelope: {e}")
        kind = envelope.kind
        channel = DOWNLINK_CHANNELS.get(kind)
        if channel is None:
            return Refused("wrong_topic", f"{kind.name} is not a downlink message kind", kind)
        try:
            where = parse_vehicle_topic(topic)
        except InvalidTopicError as e:
            return Refused("wrong_topic", str(e), kind)
        if where.vin != self.vin or where.channel != channel:
            return Refused(
                "wrong_topic",
                f"{kind.name} arrived on {topic!r}; expected dt/v1/{self.vin}/{channel}",
                kind,
            )
        if envelope.key_id != self.cloud_key.key_id:
            return Refused(
                "unknown_key",
                f"signed by key {envelope.key_id}; this vehicle obeys only the cloud key "
                f"{self.cloud_key.key_id}",
                kind,
            )
        try:
            envelope.verify(self.cloud_key)
        except (SignatureError, WireFormatError) as e:
            return Refused("bad_signature", str(e), kind)
        if envelope.vehicle_id != self.vin:
            return Refused(
                "other_vehicle",
                f"message is for vehicle {envelope.vehicle_id!r}, not {self.vin}",
                kind,
            )
        if envelope.message_id in self._seen:
            if self.state.last_id.get(int(kind)) == envelope.message_id:
                return Refused(
                    "duplicate", f"message {envelope.message_id} was already applied", kind
                )
            return Refused(
                "replayed", f"message id {envelope.message_id} was accepted before", kind
            )
        last = self.state.last_sent_ns.get(int(kind))
        if last is not None and envelope.sent_ns < last:
            return Refused(
                "stale",
                f"sent_ns {envelope.sent_ns} is older than the last accepted {kind.name} ({last})",
                kind,
            )
        window = self._freshness_ns.get(kind)
        if window is not None and envelope.sent_ns < now_ns - window:
            return Refused(
                "stale",
                f"sent {(now_ns - envelope.sent_ns) / _NS:.0f} s ago; {kind.name} messages older "
                f"than {window / _NS:.0f} s are refused",
                kind,
            )
        if envelope.sent_ns > now_ns + self._skew_ns:
            return Refused(
                "future",
                f"sent_ns is {(envelope.sent_ns - now_ns) / _NS:.1f} s ahead of the vehicle clock "
                f"(at most {self._skew_ns / _NS:.0f} s allowed)",
                kind,
            )
        try:
            body = envelope.json_body()
        except WireFormatError as e:
            return Refused("malformed", str(e), kind)
        expires = body.get("expires_ns")
        if (
            kind in (MessageKind.COMMAND, MessageKind.DESIRED_STATE)
            and isinstance(expires, int)
            and (not isinstance(expires, bool) and expires <= now_ns)
        ):
            return Refused(
                "expired", f"{kind.name} expired {(now_ns - expires) / _NS:.1f} s ago", kind
            )
        return Accepted(envelope, body)

    def _remember_accepted(self, envelope: Envelope) -> None:
        state = self.state
        state.seen_ids.append(envelope.message_id)
        self._seen.add(envelope.message_id)
        while len(state.seen_ids) > self._remember:
            self._seen.discard(state.seen_ids.popleft())
        kind = int(envelope.kind)
        state.last_sent_ns[kind] = max(
            envelope.sent_ns, state.last_sent_ns.get(kind, envelope.sent_ns)
        )
        state.last_id[kind] = envelope.message_id
