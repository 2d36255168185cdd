"""Entitlements reach the agent as a signed downlink message; the agent switches the paid
features through the actuator, acknowledges with what it took and refused, keeps them across
a restart, and turns a lapsed feature off on its own clock with no link to the cloud."""

from __future__ import annotations

import uuid
from pathlib import Path

from edge_testkit import CLOUD_KEY, T0, CloudReceiver, CloudSigner, make_identity

from drivetrain.core.crypto import SigningKey
from drivetrain.core.entitlement import EntitlementClaims, issue_token
from drivetrain.core.transport import InProcessTransport
from drivetrain.core.vss import builtin_catalog
from drivetrain.core.wire import MessageKind
from drivetrain.edge import EdgeAgent, InMemoryActuator, SqliteBuffer

S = 1_000_000_000
CATALOG = builtin_catalog()


def _token(vin: str, *, seq: int, expires_s: int, grace_s: int = 30,
           key: SigningKey = CLOUD_KEY, feature: str = "performance_boost") -> str:
    return issue_token(EntitlementClaims(
        vin=vin, feature=feature, token_id=uuid.uuid4().hex, issued_s=T0 // S,
        not_before_s=T0 // S, expires_s=expires_s, grace_s=grace_s, seq=seq, status="grant",
        tenant="acme", subscription_id="sub-1"), key)


class _Car:
    def __init__(self, tmp_path: Path) -> None:
        self.bus = InProcessTransport()
        self.identity = make_identity()
        self.vin = self.identity.vin
        self.receiver = CloudReceiver({self.vin: self.identity.signing_key.verify_key})
        self.bus.subscribe("dt/v1/+/#", self.receiver.handle)
        self.actuator = InMemoryActuator(CATALOG)
        self.path = tmp_path / "buffer.db"
        self.agent = self.start()
        self.cloud = CloudSigner()
        self.now = T0

    def start(self) -> EdgeAgent:
        agent = EdgeAgent(self.identity, self.bus, SqliteBuffer(self.path), catalog=CATALOG,
                          actuator=self.actuator)
        agent.start()
        return agent

    def send(self, tokens: list[str], version: int) -> None:
        topic, payload = self.cloud.seal(MessageKind.ENTITLEMENTS, self.vin,
                                         {"version": version, "tokens": tokens},
                                         sent_ns=self.now)
        self.bus.publish(topic, payload)
        self.bus.drain()

    def step(self, seconds: float = 0.5) -> None:
        self.now += int(seconds * S)
        self.agent.tick(self.now)
        self.bus.drain()


def test_a_purchase_turns_the_feature_on_and_a_lapse_turns_it_off_offline(
    tmp_path: Path,
) -> None:
    car = _Car(tmp_path)
    car.send([_token(car.vin, seq=1, expires_s=T0 // S + 60, grace_s=30)], version=1)
    car.step()
    assert car.actuator.features == {"performance_boost"}
    ack = car.receiver.acks()[-1]
    assert (ack.ref_kind, ack.status, ack.version) == ("entitlements", "applied", 1)
    assert "performance_boost: grant seq 1" in ack.detail
    car.bus.close()  # the link is gone: what follows is decided by the car alone
    car.now += 85 * S
    car.agent.tick(car.now)
    assert car.actuator.features == {"performance_boost"}  # in its grace period
    car.now += 10 * S
    car.agent.tick(car.now)
    assert car.actuator.features == frozenset()


def test_a_forged_token_in_a_genuine_message_is_refused_and_acknowledged_as_such(
    tmp_path: Path,
) -> None:
    car = _Car(tmp_path)
    forged = _token(car.vin, seq=1, expires_s=T0 // S + 600,
                    key=SigningKey.from_seed(b"attacker-key-0000000000000000000"))
    other = _token("DTV14A5UXTRGXBBBA", seq=1, expires_s=T0 // S + 600, feature="heated_seats")
    car.send([forged, other], version=1)
    car.step()
    assert car.actuator.features == frozenset()
    ack = car.receiver.acks()[-1]
    assert ack.status == "rejected"
    assert "unknown_key" in ack.detail and "other_vehicle" in ack.detail
    car.step(1)
    counts = [e.data["counts"] for e in car.receiver.events()
              if e.type == "edge.downlink.refused"]
    assert counts == [{"entitlement.unknown_key": 1, "entitlement.other_vehicle": 1}]


def test_entitlements_survive_a_restart(tmp_path: Path) -> None:
    car = _Car(tmp_path)
    car.send([_token(car.vin, seq=1, expires_s=T0 // S + 3600)], version=1)
    car.step()
    car.agent.stop()
    car.actuator.features = frozenset()
    car.agent = car.start()
    car.step()
    assert car.actuator.features == {"performance_boost"}
    car.step(2)
    changes = [e.data for e in car.receiver.events() if e.type == "entitlements.changed"]
    assert changes[0]["on"] == ["performance_boost"]
