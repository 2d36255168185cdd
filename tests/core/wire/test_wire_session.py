"""Vehicle sessions on the wire: the session_open body, key agreement with the cloud key in its
X25519 form, and MAC'd envelopes — round trips, and every malformed or altered input refused
as a format or signature error (Hypothesis)."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivetrain.core import wire
from drivetrain.core.crypto import SigningKey
from drivetrain.core.errors import SignatureError, WireFormatError
from drivetrain.core.wire.envelope import FLAG_SESSION_MAC, MAC_BYTES

VIN = "WDD1234567890ABCD"
VEHICLE = SigningKey.from_seed(b"v" * 32)
CLOUD = SigningKey.from_seed(b"c" * 32)
_FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _session() -> wire.VehicleSession:
    return wire.VehicleSession(VIN, VEHICLE, CLOUD.verify_key, seq=3)


def _macd(session: wire.VehicleSession, seq: int = 4) -> bytes:
    table = wire.samples_table(["Vehicle.Speed"], [0], [10**18], [1.0])
    return wire.seal_telemetry(VIN, table, key=session, seq=seq)


def test_the_cloud_keys_x25519_form_agrees_with_its_private_half() -> None:
    for seed in (b"c" * 32, b"\x00" * 32, bytes(range(32))):
        cloud = SigningKey.from_seed(seed)
        ephemeral = X25519PrivateKey.generate()
        assert ephemeral.exchange(cloud.verify_key.x25519_public) == cloud.x25519_private().exchange(
            ephemeral.public_key()
        )


def test_both_sides_derive_the_same_key_and_the_envelope_verifies() -> None:
    session = _session()
    opening = wire.parse(session.open_envelope).verify(VEHICLE.verify_key)
    assert opening.kind == wire.MessageKind.SESSION_OPEN and opening.seq == 3
    opened = wire.SessionOpen.from_dict(opening.json_body())
    assert opened.session_id == session.session_id and opened.platform_key_id == CLOUD.key_id
    key = wire.platform_session_key(CLOUD, opened, VIN)
    envelope = wire.parse(_macd(session)).verify_mac(key)
    assert envelope.session_id == session.session_id and envelope.seq == 4
    assert len(envelope.signature) == MAC_BYTES
    # the key is bound to the VIN: the same session_open read as another VIN's is another key
    assert wire.platform_session_key(CLOUD, opened, "WDD0000000000000X") != key
    with pytest.raises(SignatureError, match="not a signature"):
        envelope.verify(VEHICLE.verify_key)
    with pytest.raises(SignatureError, match="no session MAC"):
        opening.verify_mac(key)


def test_a_session_open_for_another_platform_key_or_a_degenerate_point_is_refused() -> None:
    opened = wire.SessionOpen.from_dict(json.loads(wire.parse(_session().open_envelope).body))
    other = SigningKey.from_seed(b"o" * 32)
    with pytest.raises(WireFormatError, match="platform key"):
        wire.platform_session_key(other, opened, VIN)
    zero = wire.SessionOpen(opened.session_id, bytes(32), opened.platform_key_id)
    with pytest.raises(WireFormatError, match="ephemeral"):
        wire.platform_session_key(CLOUD, zero, VIN)


def test_a_session_macs_telemetry_only_and_at_most_its_share() -> None:
    session = _session()
    with pytest.raises(ValueError, match="signed"):
        session.seal(wire.MessageKind.ACK, b"{}", body_encoding="json", seq=1)
    session.used = wire.SESSION_MAX_MESSAGES
    assert session.exhausted
    with pytest.raises(ValueError, match="open the next"):
        _macd(session)


def test_every_flipped_byte_of_a_macd_envelope_is_detected() -> None:
    session = _session()
    key = session._mac_key
    data = _macd(session)
    for position in range(len(data)):
        tampered = bytearray(data)
        tampered[position] ^= 0x01
        with pytest.raises((SignatureError, WireFormatError)):
            wire.parse(tampered).verify_mac(key)


def _header(data: bytes) -> tuple[dict[str, object], bytes]:
    length = struct.unpack_from(">I", data, 6)[0]
    return json.loads(data[10 : 10 + length]), data[10 + length :]


def _rebuilt(header: dict[str, object], rest: bytes, flags: int) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack(">3sBBBI", b"DTW", 1, 1, flags, len(raw)) + raw + rest


@pytest.mark.parametrize(
    ("change", "flags", "expected"),
    [
        (lambda h: h.pop("session"), FLAG_SESSION_MAC, "'session' is missing"),
        (lambda h: h.update(session="ABC"), FLAG_SESSION_MAC, "'session' is 'ABC'"),
        (lambda h: h.update(session=7), FLAG_SESSION_MAC, "expected a JSON str"),
        (lambda h: None, 0, "'session' is set but flags are 0"),
        (lambda h: None, 0x03, "flags are 0x03"),
    ],
)
def test_malformed_session_headers_are_refused_by_name(
    change: Callable[[dict[str, object]], object], flags: int, expected: str
) -> None:
    header, rest = _header(_macd(_session()))
    change(header)
    with pytest.raises(WireFormatError, match=expected):
        wire.parse(_rebuilt(header, rest, flags))


@_FUZZ
@given(st.binary(max_size=200), st.integers(0, 255))
def test_arbitrary_bytes_after_a_session_prefix_are_format_errors(tail: bytes, flags: int) -> None:
    data = struct.pack(">3sBBBI", b"DTW", 1, 1, flags, len(tail) // 2) + tail
    try:
        envelope = wire.parse(data)
    except WireFormatError:
        return
    with pytest.raises((SignatureError, WireFormatError)):
        envelope.verify_mac(b"k" * 32)


@_FUZZ
@given(st.dictionaries(st.sampled_from(["session", "ephemeral", "platform_key", "x"]),
                       st.one_of(st.none(), st.integers(), st.text(max_size=60),
                                 st.binary(max_size=40).map(lambda b: b.hex()))))  # fmt: skip
def test_any_session_open_body_reads_or_is_a_format_error(body: dict[str, object]) -> None:
    try:
        opened = wire.SessionOpen.from_dict(body)
    except WireFormatError:
        return
    assert len(opened.ephemeral) == 32 and len(opened.session_id) == 32


@_FUZZ
@given(st.data())
def test_any_altered_header_field_of_a_macd_envelope_fails_its_mac(data: st.DataObject) -> None:
    session = _session()
    original, rest = _header(_macd(session))
    header = dict(original)
    name = data.draw(st.sampled_from(sorted(header)))
    header[name] = data.draw(st.one_of(st.integers(0, 2**40), st.text(max_size=40)))
    try:
        envelope = wire.parse(_rebuilt(header, rest, FLAG_SESSION_MAC))
    except WireFormatError:
        return
    if header == original:  # the draw changed nothing
        return
    with pytest.raises(SignatureError):
        envelope.verify_mac(session._mac_key)


def test_a_session_expires_a_day_after_it_opened() -> None:
    opened_at = 1_700_000_000 * 10**9
    session = wire.VehicleSession(VIN, VEHICLE, CLOUD.verify_key, seq=0, sent_ns=opened_at)
    assert session.opened_ns == opened_at
    assert not session.expired(opened_at + wire.SESSION_MAX_AGE_NS - 1)
    assert session.expired(opened_at + wire.SESSION_MAX_AGE_NS)

