"""Wire format v1: envelopes round-trip, tampering and malformed input are refused by name."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from drivetrain.core import wire
from drivetrain.core.crypto import SigningKey, VerifyKey
from drivetrain.core.errors import KeyFormatError, SignatureError, WireFormatError

VIN = "WDD1234567890ABCD"
PATHS = ["Vehicle.Speed", "Vehicle.Powertrain.Transmission.Type"]


@pytest.fixture
def key() -> SigningKey:
    return SigningKey.from_seed(bytes(range(32)))


def _table(n: int = 10):
    index = np.arange(n) % 2
    values = np.where(index == 1, np.nan, np.arange(n, dtype=float))
    texts = ["BEV" if i == 1 else None for i in index]
    return wire.samples_table(PATHS, index, 1_700_000_000_000_000_000 + np.arange(n), values, texts)


def test_telemetry_round_trips_through_a_signed_envelope(key: SigningKey) -> None:
    table = _table()
    data = wire.seal_telemetry(VIN, table, key=key, seq=7)
    envelope = wire.parse(data).verify(key.verify_key)
    assert (envelope.kind, envelope.vehicle_id, envelope.seq) == (wire.MessageKind.TELEMETRY, VIN, 7)
    assert wire.decode_samples(envelope.body).equals(table)


def test_every_flipped_byte_is_detected(key: SigningKey) -> None:
    data = bytearray(wire.seal_json(wire.MessageKind.EVENTS, VIN, {"events": []}, key=key, seq=1))
    for position in range(len(data)):
        tampered = bytearray(data)
        tampered[position] ^= 0x01
        with pytest.raises((SignatureError, WireFormatError)):
            wire.parse(tampered).verify(key.verify_key)


def test_a_message_signed_by_another_key_is_refused(key: SigningKey) -> None:
    other = SigningKey.generate()
    data = wire.seal_json(wire.MessageKind.COMMAND, VIN, {"name": "x"}, key=other, seq=1)
    with pytest.raises(WireFormatError, match="'key'"):
        wire.parse(data).verify(key.verify_key)


@pytest.mark.parametrize(
    ("mangle", "expected"),
    [
        (lambda d: d[:20], "shorter than"),
        (lambda d: b"XYZ" + d[3:], "magic"),
        (lambda d: d[:3] + bytes([9]) + d[4:], "format version"),
        (lambda d: d[:4] + bytes([99]) + d[5:], "kind 99"),
        (lambda d: d[:6] + struct.pack(">I", 10**6) + d[10:], "header length"),
    ],
)
def test_malformed_envelopes_name_the_bad_field(key: SigningKey, mangle, expected: str) -> None:
    data = wire.seal_json(wire.MessageKind.EVENTS, VIN, {"events": []}, key=key, seq=1)
    with pytest.raises(WireFormatError, match=expected):
        wire.parse(mangle(data))


def test_a_body_that_is_not_arrow_is_refused(key: SigningKey) -> None:
    data = wire.seal(wire.MessageKind.TELEMETRY, VIN, b"not arrow", body_encoding="arrow-ipc", key=key, seq=1)
    with pytest.raises(WireFormatError, match="Arrow IPC"):
        wire.decode_samples(wire.parse(data).body)


def test_message_bodies_round_trip() -> None:
    delta = wire.DesiredStateDelta(3, {"Vehicle.Powertrain.TractionBattery.Charging.ChargeLimit": 80})
    assert wire.DesiredStateDelta.from_dict(delta.to_dict()) == delta
    ack = wire.Ack("a" * 32, "desired_state", "applied", version=3)
    assert wire.Ack.from_dict(ack.to_dict()) == ack
    events = [wire.VehicleEvent("ids.flooding", 5, "high", {"can_id": 0})]
    assert wire.events_from_dict(wire.events_to_dict(events)) == events
    with pytest.raises(WireFormatError, match="'status'"):
        wire.Ack.from_dict({**ack.to_dict(), "status": "maybe"})


def test_keys_round_trip_and_bad_keys_are_named(key: SigningKey) -> None:
    assert SigningKey.from_pem(key.to_pem()).key_id == key.key_id
    assert VerifyKey.from_base64(key.verify_key.to_base64()) == key.verify_key
    with pytest.raises(KeyFormatError, match="expected 32"):
        VerifyKey.from_raw(b"short")
    with pytest.raises(KeyFormatError, match="base64"):
        VerifyKey.from_base64("!!!")
    assert "PRIVATE" not in repr(key)
