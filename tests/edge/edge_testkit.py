"""Test kit of the edge tests: the cloud's side of the vehicle link, reduced to what the tests
check, and helpers that sign downlink messages as the cloud does.

``CloudReceiver`` does what ingestion does with an uplink message before storing it: parse,
verify with the vehicle's registered key, and drop a message whose id it has stored (the
telemetry batch id), so at-least-once delivery never duplicates data.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from drivetrain.core.crypto import SigningKey, VerifyKey
from drivetrain.core.transport import (
    CAMPAIGNS,
    COMMANDS,
    ENTITLEMENTS,
    STATE_DESIRED,
    Message,
    parse_vehicle_topic,
    vehicle_topic,
)
from drivetrain.core.wire import (
    Ack,
    MessageKind,
    SessionOpen,
    VehicleEvent,
    decode_samples,
    events_from_dict,
    parse,
    platform_session_key,
    seal_json,
)
from drivetrain.edge import Samples, VehicleIdentity

CLOUD_KEY = SigningKey.from_seed(b"drivetrain-test-cloud-key-000001")
T0 = 1_800_000_000_000_000_000


def make_identity(vin: str = "DTVJETH88T571PG8B", seed: bytes | None = None) -> VehicleIdentity:
    key = SigningKey.from_seed(seed or vin.encode().ljust(32, b"\0")[:32])
    return VehicleIdentity(vin=vin, signing_key=key, cloud_key=CLOUD_KEY.verify_key)


@dataclass
class Received:
    vin: str
    kind: MessageKind
    message_id: str
    seq: int
    body: Any


@dataclass
class CloudReceiver:
    """Verifies and de-duplicates uplink messages (subscribe ``handle`` to ``dt/v1/+/#``).

    Vehicle sessions are opened with ``platform`` (the cloud key) as ingestion opens them
    (``sessions``: the VIN and MAC key by session id), and MAC'd telemetry is verified with its
    session's key.

    A re-delivered batch id is dropped (``duplicates`` counts them), as ingestion does; one
    whose bytes differ from the first delivery's is recorded in ``conflicts`` (dropping it
    would lose data), so a test can tell harmless re-delivery from a batch id reused.
    """

    vehicle_keys: dict[str, VerifyKey]
    platform: SigningKey = CLOUD_KEY
    deliveries: int = 0
    duplicates: int = 0
    refused: list[str] = field(default_factory=list)
    messages: list[Received] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    sessions: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    _seen: dict[str, bytes] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(self, message: Message) -> None:
        channel = parse_vehicle_topic(message.topic).channel
        if channel not in ("telemetry", "events", "ack"):
            return
        envelope = parse(message.payload)
        key = self.vehicle_keys.get(envelope.vehicle_id)
        with self._lock:
            self.deliveries += 1
            if key is None:
                self.refused.append(f"unknown vehicle {envelope.vehicle_id}")
                return
            if envelope.session_id is None:
                envelope.verify(key)
            else:
                vin, mac_key = self.sessions[envelope.session_id]
                assert vin == envelope.vehicle_id, "a session used for another vehicle"
                envelope.verify_mac(mac_key)
            if envelope.kind is MessageKind.SESSION_OPEN:
                opened = SessionOpen.from_dict(envelope.json_body())
                self.sessions[opened.session_id] = (
                    envelope.vehicle_id,
                    platform_session_key(self.platform, opened, envelope.vehicle_id),
                )
                return
            payload = bytes(message.payload)
            first = self._seen.get(envelope.message_id)
            if first is not None:
                self.duplicates += 1
                if first != payload:
                    self.conflicts.append(envelope.message_id)
                return
            self._seen[envelope.message_id] = payload
            if envelope.kind is MessageKind.TELEMETRY:
                body: Any = Samples.from_table(decode_samples(envelope.body))
            elif envelope.kind is MessageKind.EVENTS:
                body = events_from_dict(envelope.json_body())
            else:
                body = Ack.from_dict(envelope.json_body())
            self.messages.append(
                Received(
                    envelope.vehicle_id, envelope.kind, envelope.message_id, envelope.seq, body
                )
            )

    def of(self, kind: MessageKind, vin: str | None = None) -> list[Received]:
        with self._lock:
            return [m for m in self.messages if m.kind is kind and (vin is None or m.vin == vin)]

    def samples(self, vin: str | None = None) -> list[tuple[str, int, float]]:
        """Every (path, ts_ns, value) received, in arrival order."""
        out: list[tuple[str, int, float]] = []
        for m in self.of(MessageKind.TELEMETRY, vin):
            s = m.body
            out.extend(
                zip(s.path_of_rows().tolist(), s.ts_ns.tolist(), s.value.tolist(), strict=True)
            )
        return out

    def acks(self, vin: str | None = None) -> list[Ack]:
        return [m.body for m in self.of(MessageKind.ACK, vin)]

    def events(self, vin: str | None = None) -> list[VehicleEvent]:
        return [e for m in self.of(MessageKind.EVENTS, vin) for e in m.body]

    def event_types(self) -> Counter[str]:
        return Counter(e.type for e in self.events())


def wait_for(condition: Any, timeout_s: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.01)


_CHANNELS = {
    MessageKind.DESIRED_STATE: STATE_DESIRED,
    MessageKind.CAMPAIGN: CAMPAIGNS,
    MessageKind.COMMAND: COMMANDS,
    MessageKind.ENTITLEMENTS: ENTITLEMENTS,
}


class CloudSigner:
    """Signs downlink messages as the cloud does (sequence numbers per kind)."""

    def __init__(self, key: SigningKey = CLOUD_KEY) -> None:
        self.key = key
        self._seq: Counter[MessageKind] = Counter()

    def seal(
        self,
        kind: MessageKind,
        vin: str,
        body: Mapping[str, Any],
        *,
        sent_ns: int,
        message_id: str | None = None,
    ) -> tuple[str, bytes]:
        """(topic, payload) of a signed downlink message for ``vin``."""
        self._seq[kind] += 1
        payload = seal_json(
            kind,
            vin,
            body,
            key=self.key,
            seq=self._seq[kind],
            sent_ns=sent_ns,
            message_id=message_id,
        )
        return vehicle_topic(vin, _CHANNELS[kind]), payload
