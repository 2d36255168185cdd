"""Entitlements through the twin: a token in the desired state (``Entitlement.<f>.Token``) is
taken only after the car verifies it itself — a revocation turns the feature off, a forged
revocation or grant inside a genuine delta is refused and changes nothing — and the car
reports its features (token, seq, expiry, state) for its twin's reported state."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from edge_testkit import CLOUD_KEY, T0, CloudReceiver, CloudSigner, make_identity

from drivetrain.core.crypto import SigningKey
from drivetrain.core.entitlement import EntitlementClaims, issue_token
from drivetrain.core.entitlement_twin import CHANGED_EVENT, reports_from_event, token_path
from drivetrain.core.transport import InProcessTransport
from drivetrain.core.vss import builtin_catalog
from drivetrain.core.wire import MessageKind
from drivetrain.edge import EdgeAgent, InMemoryActuator, SqliteBuffer

S = 1_000_000_000
CATALOG = builtin_catalog()
ATTACKER = SigningKey.from_seed(b"attacker-key-0000000000000000000")
BOOST = "performance_boost"


def _token(vin: str, *, seq: int, status: str = "grant", key: SigningKey = CLOUD_KEY,
           feature: str = BOOST, expires_s: int = T0 // S + 3600) -> str:
    return issue_token(EntitlementClaims(
        vin=vin, feature=feature, token_id=uuid.uuid4().hex, issued_s=T0 // S,
        not_before_s=T0 // S, expires_s=expires_s, grace_s=30, seq=seq,
        status=status,  # type: ignore[arg-type]
        tenant="acme", subscription_id="sub-1" if status == "grant" else None), key)


class _Car:
    def __init__(self, tmp_path: Path) -> None:
        self.bus = InProcessTransport()
        self.identity = make_identity()
        self.vin = self.identity.vin
        self.receiver = CloudReceiver({self.vin: self.identity.signing_key.verify_key})
        self.bus.subscribe("dt/v1/+/#", self.receiver.handle)
        self.actuator = InMemoryActuator(CATALOG)
        self.agent = EdgeAgent(self.identity, self.bus, SqliteBuffer(tmp_path / "buffer.db"),
                               catalog=CATALOG, actuator=self.actuator)
        self.agent.start()
        self.cloud = CloudSigner()
        self.now = T0
        self.version = 0

    def desire(self, values: dict[str, Any]) -> None:
        """The cloud's reconciler publishes a genuine (cloud-signed) delta."""
        self.version += 1
        topic, payload = self.cloud.seal(MessageKind.DESIRED_STATE, self.vin,
                                         {"version": self.version, "values": values},
                                         sent_ns=self.now)
        self.bus.publish(topic, payload)
        self.bus.drain()
        self.step()

    def step(self, seconds: float = 0.5) -> None:
        self.now += int(seconds * S)
        self.agent.tick(self.now)
        self.bus.drain()  # the car's acks and events reach the receiver before we look

    def last_ack(self) -> Any:
        return self.receiver.acks()[-1]


def _granted(tmp_path: Path) -> _Car:
    car = _Car(tmp_path)
    car.desire({token_path(BOOST): _token(car.vin, seq=1)})
    assert car.actuator.features == {BOOST}
    return car


def test_a_grant_through_the_twin_turns_the_feature_on_and_is_reported(tmp_path: Path) -> None:
    car = _granted(tmp_path)
    ack = car.last_ack()
    assert (ack.ref_kind, ack.status, ack.version) == ("desired_state", "applied", 1)
    assert "performance_boost: grant seq 1" in ack.detail
    car.step(2)  # the events are flushed
    (event,) = [e for e in car.receiver.events() if e.type == CHANGED_EVENT]
    (report,) = reports_from_event(event.data)
    assert (report.feature, report.seq, report.state) == (BOOST, 1, "enabled")
    assert report.token == _held_token(car)


def _held_token(car: _Car) -> str:
    (token,) = car.agent.entitlements.to_record().tokens
    return token


def test_a_revocation_through_the_twin_turns_the_feature_off(tmp_path: Path) -> None:
    car = _granted(tmp_path)
    car.desire({token_path(BOOST): _token(car.vin, seq=2, status="revoke")})
    assert car.actuator.features == frozenset()
    assert car.last_ack().status == "applied"
    car.step(2)
    reports = [reports_from_event(e.data) for e in car.receiver.events()
               if e.type == CHANGED_EVENT]
    assert [(r[0].seq, r[0].state) for r in reports] == [(1, "enabled"), (2, "disabled")]


def test_a_forged_revocation_through_the_twin_is_refused(tmp_path: Path) -> None:
    car = _granted(tmp_path)
    car.desire({token_path(BOOST): _token(car.vin, seq=9, status="revoke", key=ATTACKER)})
    assert car.actuator.features == {BOOST}  # still on: the revocation is not the cloud's
    ack = car.last_ack()
    assert ack.status == "rejected" and "unknown_key" in ack.detail
    assert car.agent.entitlements.status(car.now)[0].seq == 1


def test_a_forged_grant_through_the_twin_is_refused(tmp_path: Path) -> None:
    car = _Car(tmp_path)
    car.desire({token_path(BOOST): _token(car.vin, seq=1, key=ATTACKER)})
    assert car.actuator.features == frozenset()
    ack = car.last_ack()
    assert ack.status == "rejected" and "unknown_key" in ack.detail
    car.step(1)
    counts = [e.data["counts"] for e in car.receiver.events()
              if e.type == "edge.downlink.refused"]
    assert counts == [{"entitlement.unknown_key": 1}]


def test_a_grant_with_an_altered_signature_through_the_twin_is_refused(tmp_path: Path) -> None:
    car = _Car(tmp_path)
    header, claims, signature = _token(car.vin, seq=1).split(".")
    forged = ".".join((header, claims, ("A" if signature[0] != "A" else "B") + signature[1:]))
    car.desire({token_path(BOOST): forged})
    assert car.actuator.features == frozenset()
    assert "bad_signature" in car.last_ack().detail


def test_a_plain_value_pretending_to_revoke_through_the_twin_is_refused(
    tmp_path: Path,
) -> None:
    car = _granted(tmp_path)
    car.desire({f"Entitlement.{BOOST}.State": "disabled"})
    assert car.actuator.features == {BOOST}
    assert car.last_ack().status == "rejected"
    assert "only as signed tokens" in car.last_ack().detail


def test_a_token_under_another_features_path_is_refused_as_misplaced(tmp_path: Path) -> None:
    car = _Car(tmp_path)
    car.desire({token_path("heated_seats"): _token(car.vin, seq=1)})
    assert car.actuator.features == frozenset()
    assert "misplaced" in car.last_ack().detail


def test_a_grant_for_another_car_through_the_twin_is_refused(tmp_path: Path) -> None:
    car = _Car(tmp_path)
    car.desire({token_path(BOOST): _token("DTV14A5UXTRGXBBBA", seq=1)})
    assert car.actuator.features == frozenset()
    assert "other_vehicle" in car.last_ack().detail


def test_a_refused_token_rejects_the_whole_delta(tmp_path: Path) -> None:
    car = _Car(tmp_path)
    path = "Vehicle.Cabin.HVAC.Station.Row1.Driver.Temperature"
    car.desire({path: 21, token_path(BOOST): _token(car.vin, seq=1, key=ATTACKER)})
    assert car.last_ack().status == "rejected"
    assert path not in car.actuator.values
    assert car.agent.downlink.desired_version == -1  # nothing applied


def test_the_twins_copy_of_a_token_already_taken_is_no_refusal(tmp_path: Path) -> None:
    car = _Car(tmp_path)
    token = _token(car.vin, seq=1)
    topic, payload = car.cloud.seal(MessageKind.ENTITLEMENTS, car.vin,
                                    {"version": 1, "tokens": [token]}, sent_ns=car.now)
    car.bus.publish(topic, payload)
    car.bus.drain()
    car.step()
    car.desire({token_path(BOOST): token})  # the same token, through the twin
    ack = car.last_ack()
    assert ack.status == "applied" and "duplicate" in ack.detail
    assert car.actuator.features == {BOOST}
