"""The edge agent over the in-process transport: collection to signed, de-duplicable batches;
campaigns, desired state and commands from the cloud; every forged downlink refused."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from edge_testkit import CLOUD_KEY, T0, CloudReceiver, CloudSigner, make_identity

from drivetrain.core.crypto import SigningKey
from drivetrain.core.errors import TransportError
from drivetrain.core.transport import InProcessTransport
from drivetrain.core.vss import builtin_catalog
from drivetrain.core.wire import MessageKind, parse, seal, seal_json
from drivetrain.edge import (
    AgentConfig,
    EdgeAgent,
    InMemoryActuator,
    MemoryBuffer,
    Samples,
    SqliteBuffer,
    VehicleIdentity,
)

CATALOG = builtin_catalog()
SPEED = "Vehicle.Speed"
TEMP = "Vehicle.Powertrain.TractionBattery.Temperature.Average"
CHARGE_LIMIT = "Vehicle.Powertrain.TractionBattery.Charging.ChargeLimit"
MS = 1_000_000
S = 1_000_000_000
OTHER_VIN = "DTV5G4JN2T8ZL3KC1"


class Rig:
    """One agent on an in-process bus with the cloud's receiver listening."""

    def __init__(
        self, tmp_path: Path, *, max_bytes: int = 1 << 26, config: AgentConfig | None = None
    ) -> None:
        self.tmp_path = tmp_path
        self.bus = InProcessTransport()
        self.identity = make_identity()
        self.vin = self.identity.vin
        self.receiver = CloudReceiver({self.vin: self.identity.signing_key.verify_key})
        self.bus.subscribe("dt/v1/+/#", self.receiver.handle)
        self.actuator = InMemoryActuator(
            CATALOG,
            {CHARGE_LIMIT: 90},
            commands={"flash_lights": lambda args: f"flashed {args.get('times', 1)}x"},
        )
        self.max_bytes = max_bytes
        self.config = config
        self.agent = self.new_agent()
        self.cloud = CloudSigner()
        self.now = T0

    def new_agent(self) -> EdgeAgent:
        agent = EdgeAgent(
            self.identity,
            self.bus,
            SqliteBuffer(self.tmp_path / "buffer.db", max_bytes=self.max_bytes),
            catalog=CATALOG,
            actuator=self.actuator,
            config=self.config,
        )
        agent.start()
        return agent

    def downlink(self, kind: MessageKind, body: dict[str, Any], **kw: Any) -> tuple[str, bytes]:
        return self.cloud.seal(kind, self.vin, body, sent_ns=kw.pop("sent_ns", self.now), **kw)

    def deliver(self, topic: str, payload: bytes) -> None:
        self.bus.publish(topic, payload)
        self.bus.drain()

    def step(self, seconds: float = 0.1, values: dict[str, float] | None = None) -> None:
        self.now += int(seconds * S)
        samples = Samples.from_values(values, self.now) if values else None
        self.agent.tick(self.now, samples=samples)
        self.bus.drain()

    def drive(self, seconds: float, values: dict[str, float], every_s: float = 0.1) -> None:
        for _ in range(round(seconds / every_s)):
            self.step(every_s, values)


def regional_rig(tmp_path: Path, region: str) -> Rig:
    """A rig whose vehicle was provisioned in ``region`` (its policy applies on the car)."""
    rig = Rig(tmp_path / "unprovisioned")
    rig.tmp_path = tmp_path
    rig.identity = replace(rig.identity, region=region)
    rig.agent = rig.new_agent()
    return rig


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    rig = Rig(tmp_path)
    yield rig
    rig.bus.close()


def test_default_campaign_streams_signed_batches_at_one_hertz(rig: Rig) -> None:
    rig.drive(5, {SPEED: 50.0, TEMP: 30.0})
    rig.agent.flush(rig.now)
    rig.step(0)
    samples = rig.receiver.samples()
    per_path = {p: sorted(ts for q, ts, _ in samples if q == p) for p in (SPEED, TEMP)}
    # The first sample of each second (ticks at T0 + 0.1 s, 0.2 s, ...).
    assert per_path[SPEED] == per_path[TEMP] == [T0 + 100 * MS] + [T0 + k * S for k in range(1, 6)]
    batches = rig.receiver.of(MessageKind.TELEMETRY)
    assert [b.seq for b in batches] == list(range(len(batches)))
    assert rig.receiver.duplicates == 0 and not rig.receiver.refused
    assert rig.agent.buffer.stats().messages == 0  # everything confirmed and removed
    stats = rig.agent.stats()
    assert stats.samples_in == 100 and stats.samples_collected == 12


def test_campaign_from_the_cloud_is_installed_acknowledged_and_survives_a_restart(rig: Rig) -> None:
    body = {"id": "fast", "version": 2, "signals": [SPEED], "period_ms": 200, "priority": 6}
    rig.deliver(*rig.downlink(MessageKind.CAMPAIGN, body))
    rig.drive(1, {SPEED: 80.0, TEMP: 30.0})
    rig.agent.flush(rig.now)
    rig.step(0)
    ack = rig.receiver.acks()[-1]
    assert (ack.ref_kind, ack.status, ack.version, ack.detail) == (
        "campaign",
        "applied",
        2,
        "fast: installed",
    )
    paths = {p for p, _, _ in rig.receiver.samples()}
    assert paths == {SPEED}
    assert [ts - T0 for _, ts, _ in rig.receiver.samples()] == [100 * MS] + [
        k * 200 * MS for k in range(1, 6)
    ]
    # A restarted agent reads its campaigns back and still refuses the old version.
    rig.agent.stop()
    rig.agent = rig.new_agent()
    assert rig.agent.stats().campaigns == ("fast",)
    rig.deliver(*rig.downlink(MessageKind.CAMPAIGN, dict(body, version=1, period_ms=100)))
    rig.step()
    ack = rig.receiver.acks()[-1]
    assert ack.status == "rejected" and "version 1 is not newer than version 2" in ack.detail
    assert rig.agent.engine.campaigns[0].period_ms == 200


def test_malformed_campaign_is_rejected_naming_the_bad_token(rig: Rig) -> None:
    body = {
        "id": "bad",
        "version": 1,
        "signals": [SPEED],
        "triggers": [{"name": "t", "expression": f"{SPEED} >> 120", "pre_s": 1, "post_s": 1}],
    }
    rig.deliver(*rig.downlink(MessageKind.CAMPAIGN, body))
    rig.step()
    ack = rig.receiver.acks()[-1]
    assert ack.status == "rejected" and "unexpected token '>>' at column 15" in ack.detail
    assert rig.agent.engine.campaigns == ()


def test_desired_state_is_applied_reported_at_once_and_acknowledged(rig: Rig) -> None:
    rig.drive(0.5, {SPEED: 10.0})
    topic, payload = rig.downlink(
        MessageKind.DESIRED_STATE, {"version": 4, "values": {CHARGE_LIMIT: 80}}
    )
    rig.deliver(topic, payload)
    rig.step(0.01)  # far less than the 1 s sampling period
    assert rig.actuator.values[CHARGE_LIMIT] == 80
    reported = [(p, ts, v) for p, ts, v in rig.receiver.samples() if p == CHARGE_LIMIT]
    assert reported == [(CHARGE_LIMIT, rig.now, 80.0)]
    ack = rig.receiver.acks()[-1]
    assert (ack.ref, ack.ref_kind, ack.status, ack.version) == (
        parse(payload).message_id,
        "desired_state",
        "applied",
        4,
    )
    # The retained message delivered again after a reconnect changes nothing and is not an attack.
    rig.actuator.values[CHARGE_LIMIT] = 70
    rig.deliver(topic, payload)
    rig.step()
    assert rig.actuator.values[CHARGE_LIMIT] == 70 and len(rig.receiver.acks()) == 1
    assert rig.agent.stats().downlink_refused == {"duplicate": 1}
    # An older version signed later is ignored; the version survives a restart.
    rig.deliver(
        *rig.downlink(MessageKind.DESIRED_STATE, {"version": 3, "values": {CHARGE_LIMIT: 50}})
    )
    rig.step()
    rig.agent = rig.new_agent()
    rig.deliver(
        *rig.downlink(MessageKind.DESIRED_STATE, {"version": 4, "values": {CHARGE_LIMIT: 55}})
    )
    rig.step()
    assert rig.actuator.values[CHARGE_LIMIT] == 70 and rig.agent.desired_version == 4


def test_desired_state_the_vehicle_cannot_apply_is_rejected_whole(rig: Rig) -> None:
    rig.deliver(
        *rig.downlink(
            MessageKind.DESIRED_STATE, {"version": 1, "values": {CHARGE_LIMIT: 60, SPEED: 10}}
        )
    )
    rig.step()
    ack = rig.receiver.acks()[-1]
    assert ack.status == "rejected" and "Vehicle.Speed is a sensor" in ack.detail
    assert rig.actuator.values[CHARGE_LIMIT] == 90
    rig.deliver(
        *rig.downlink(MessageKind.DESIRED_STATE, {"version": 2, "values": {CHARGE_LIMIT: 150}})
    )
    rig.step()
    assert rig.receiver.acks()[-1].status == "rejected" and rig.actuator.values[CHARGE_LIMIT] == 90


def test_commands_run_once_and_unknown_ones_are_rejected(rig: Rig) -> None:
    expires = rig.now + 60 * S
    rig.deliver(
        *rig.downlink(
            MessageKind.COMMAND,
            {"name": "flash_lights", "args": {"times": 3}, "expires_ns": expires},
        )
    )
    rig.deliver(
        *rig.downlink(
            MessageKind.COMMAND, {"name": "self_destruct", "args": {}, "expires_ns": expires}
        )
    )
    rig.step()
    acks = rig.receiver.acks()
    assert (acks[0].status, acks[0].detail) == ("applied", "flashed 3x")
    assert acks[1].status == "rejected" and "unknown command 'self_destruct'" in acks[1].detail
    assert rig.actuator.executed == [("flash_lights", {"times": 3})]


# --- attacks on the downlink ---------------------------------------------------------------------

ATTACKER = SigningKey.from_seed(b"attacker-key-0000000000000000000")


def _forge(rig: Rig, attack: str) -> tuple[str, bytes]:
    """A desired-state message that sets the charge limit to 10 — forged as ``attack`` says."""
    body = {"version": 9, "values": {CHARGE_LIMIT: 10}}
    topic, genuine = rig.downlink(MessageKind.DESIRED_STATE, body)
    if attack == "unsigned":
        return topic, genuine[:-64] + bytes(64)
    if attack == "garbage":
        return topic, os.urandom(300)
    if attack == "wrong_key":
        return topic, seal_json(
            MessageKind.DESIRED_STATE, rig.vin, body, key=ATTACKER, seq=1, sent_ns=rig.now
        )
    if attack == "vehicle_key":  # signed by a vehicle (e.g. a stolen vehicle key), not the cloud
        return topic, seal_json(
            MessageKind.DESIRED_STATE,
            rig.vin,
            body,
            key=rig.identity.signing_key,
            seq=1,
            sent_ns=rig.now,
        )
    if attack == "tampered":
        assert genuine.count(b":10}") == 1
        return topic, genuine.replace(b":10}", b":11}")
    if attack == "other_vin":  # genuinely signed, but for another vehicle, re-published to ours
        return topic, rig.cloud.seal(MessageKind.DESIRED_STATE, OTHER_VIN, body, sent_ns=rig.now)[1]
    if attack == "wrong_channel":
        return topic.replace("state/desired", "commands"), genuine
    if attack == "stale":
        return rig.downlink(MessageKind.DESIRED_STATE, body, sent_ns=rig.now - 40 * 86_400 * S)
    if attack == "future":
        return rig.downlink(MessageKind.DESIRED_STATE, body, sent_ns=rig.now + 3600 * S)
    if attack == "expired":
        return rig.downlink(MessageKind.DESIRED_STATE, dict(body, expires_ns=rig.now - S))
    if attack == "uplink_kind":
        return topic, seal(
            MessageKind.TELEMETRY,
            rig.vin,
            b"x",
            body_encoding="arrow-ipc",
            key=CLOUD_KEY,
            seq=1,
            sent_ns=rig.now,
        )
    raise AssertionError(attack)


@pytest.mark.parametrize(
    ("attack", "reason"),
    [
        ("unsigned", "bad_signature"),
        ("garbage", "malformed"),
        ("wrong_key", "unknown_key"),
        ("vehicle_key", "unknown_key"),
        ("tampered", "bad_signature"),
        ("other_vin", "other_vehicle"),
        ("wrong_channel", "wrong_topic"),
        ("stale", "stale"),
        ("future", "future"),
        ("expired", "expired"),
        ("uplink_kind", "wrong_topic"),
    ],
)
def test_forged_downlink_is_refused_counted_and_changes_nothing(
    rig: Rig, attack: str, reason: str
) -> None:
    rig.deliver(*_forge(rig, attack))
    rig.step()
    rig.agent.flush(rig.now)
    rig.step(0)
    assert rig.actuator.values[CHARGE_LIMIT] == 90
    assert rig.agent.desired_version == -1
    assert rig.agent.stats().downlink_refused == {reason: 1}
    assert rig.receiver.acks() == []  # nothing acknowledged: a forger learns nothing
    refused = [e for e in rig.receiver.events() if e.type == "edge.downlink.refused"]
    assert [e.data["counts"] for e in refused] == [{reason: 1}]


def test_replayed_messages_are_refused(rig: Rig) -> None:
    first = rig.downlink(
        MessageKind.COMMAND, {"name": "flash_lights", "args": {}, "expires_ns": rig.now + 60 * S}
    )
    newer = rig.downlink(
        MessageKind.COMMAND, {"name": "flash_lights", "args": {"times": 2}}, sent_ns=rig.now + S
    )
    rig.deliver(*first)
    rig.deliver(*newer)
    rig.step()
    rig.deliver(*first)  # the same id again, not the latest: an attack
    older = rig.downlink(
        MessageKind.COMMAND, {"name": "flash_lights", "args": {}}, sent_ns=rig.now - 10 * S
    )
    rig.deliver(*older)  # a fresh id, but dated before the last accepted command
    rig.step()
    assert len(rig.actuator.executed) == 2
    assert rig.agent.stats().downlink_refused == {"replayed": 1, "stale": 1}
    # The memory of accepted ids survives a restart.
    rig.agent = rig.new_agent()
    rig.deliver(*first)
    rig.step()
    assert len(rig.actuator.executed) == 2 and rig.agent.stats().downlink_refused == {"replayed": 1}


def test_full_buffer_evicts_low_priority_telemetry_and_says_so(tmp_path: Path) -> None:
    # room for the telemetry session's session_open (~360 bytes, kept: it outranks all)
    rig = Rig(tmp_path, max_bytes=12_400)
    down = _Down()
    rig.agent.uplink.transport = down  # the link is down: everything stays in the buffer
    try:
        rig.drive(30, {SPEED: 50.0, TEMP: 30.0, CHARGE_LIMIT: 80.0})
        rig.agent.flush(rig.now)
    finally:
        down.close()
        rig.bus.close()
    stats = rig.agent.stats()
    assert stats.evicted_messages > 0
    assert stats.buffered_bytes <= 12_400
    assert stats.uplink.refused_by_transport > 0 and "not connected" in str(stats.uplink.last_error)
    held = rig.agent.buffer.pending(limit=1000)
    assert MessageKind.EVENTS in [m.kind for m in held]  # the eviction report outranks telemetry
    assert min(m.priority for m in held) == 1
    assert MessageKind.SESSION_OPEN in [m.kind for m in held]


class _Down(InProcessTransport):
    """A link that refuses every publish, as MqttTransport does while disconnected."""

    def publish_async(self, *args: Any, **kwargs: Any) -> Any:
        raise TransportError("cannot publish: not connected to the broker")


def test_the_agent_opens_a_new_session_once_the_current_one_is_a_day_old() -> None:
    from drivetrain.core.crypto import SigningKey
    from drivetrain.core.wire import SESSION_MAX_AGE_NS
    from drivetrain.edge.agent.outbox import Outbox

    cloud = SigningKey.from_seed(b"c" * 32).verify_key
    identity = VehicleIdentity("WDD1234567890ABCD", SigningKey.from_seed(b"v" * 32), cloud)
    outbox = Outbox(identity, MemoryBuffer())
    start = 1_700_000_000 * 10**9
    path = "Vehicle.Powertrain.TractionBattery.StateOfCharge.Displayed"
    for at in (start, start + 3600 * 10**9, start + SESSION_MAX_AGE_NS):
        outbox.seal_telemetry(Samples.from_values({path: 50.0}, at), priority=5, now_ns=at)
    # the first two batches share a session; the third, a day after it opened, opens another
    assert outbox.sessions_opened == 2
