"""The entitlement gate decides offline which paid features a vehicle may use: each attack on
a token (forged, expired, another car's, an older one replayed) is refused and changes
nothing; a lapsed grant turns the feature off after its grace period on the vehicle's clock."""

from __future__ import annotations

import base64
import json
import uuid

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from drivetrain.core.crypto import SigningKey
from drivetrain.core.entitlement import (
    EntitlementClaims,
    EntitlementFormatError,
    issue_token,
    read_token,
)
from drivetrain.edge import EntitlementGate, HeldEntitlements, TokenRefused
from drivetrain.edge.state import AgentState, encode_record

CLOUD = SigningKey.from_seed(b"drivetrain-test-cloud-key-000001")
VIN = "DTVJETH88T571PG8B"
OTHER_VIN = "DTV14A5UXTRGXBBBA"
T0_S = 1_800_000_000
NS = 1_000_000_000


def claims(
    *, vin: str = VIN, feature: str = "performance_boost", seq: int = 1,
    status: str = "grant", issued: int = T0_S, expires: int = T0_S + 3600, grace: int = 600,
) -> EntitlementClaims:
    return EntitlementClaims(
        vin=vin, feature=feature, token_id=uuid.uuid4().hex, issued_s=issued,
        not_before_s=issued, expires_s=expires, grace_s=grace, seq=seq,
        status=status,  # type: ignore[arg-type]
        tenant="acme", subscription_id=None if status == "revoke" else "sub-1",
    )


def token(**kw: object) -> str:
    return issue_token(claims(**kw), CLOUD)  # type: ignore[arg-type]


def gate() -> EntitlementGate:
    return EntitlementGate(VIN, CLOUD.verify_key)


def test_a_token_round_trips_through_signing() -> None:
    original = claims()
    assert read_token(issue_token(original, CLOUD), CLOUD.verify_key) == original


def test_a_valid_grant_turns_the_feature_on_until_its_grace_period_ends() -> None:
    g = gate()
    taken = g.offer(token(expires=T0_S + 100, grace=50), T0_S * NS)
    assert isinstance(taken, EntitlementClaims)
    assert g.enabled(T0_S * NS) == {"performance_boost"}
    assert [s.state for s in g.status((T0_S + 120) * NS)] == ["grace"]
    assert g.is_enabled("performance_boost", (T0_S + 149) * NS)
    assert not g.is_enabled("performance_boost", (T0_S + 150) * NS)
    assert [s.state for s in g.status((T0_S + 150) * NS)] == ["lapsed"]


def test_a_forged_token_is_refused() -> None:
    forger = SigningKey.generate()
    g = gate()
    outcome = g.offer(issue_token(claims(), forger), T0_S * NS)
    assert isinstance(outcome, TokenRefused) and outcome.reason == "unknown_key"
    # A forger who copies the cloud's key id still cannot sign for it.
    _, payload, _ = issue_token(claims(), forger).split(".")
    cloud_header = issue_token(claims(), CLOUD).split(".")[0]
    outcome = g.offer(f"{cloud_header}.{payload}.{issue_token(claims(), forger).split('.')[2]}",
                      T0_S * NS)
    assert isinstance(outcome, TokenRefused) and outcome.reason == "bad_signature"
    assert g.enabled(T0_S * NS) == frozenset()


def test_a_token_with_altered_claims_is_refused() -> None:
    head, payload, sig = token(expires=T0_S + 10).split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    body["exp"] = T0_S + 10**7  # extend a one-hour grant by months
    forged = base64.urlsafe_b64encode(json.dumps(body).encode()).decode().rstrip("=")
    outcome = gate().offer(f"{head}.{forged}.{sig}", T0_S * NS)
    assert isinstance(outcome, TokenRefused) and outcome.reason == "bad_signature"


def test_an_expired_token_is_refused_offline() -> None:
    g = gate()
    outcome = g.offer(token(issued=T0_S - 7200, expires=T0_S - 700, grace=600), T0_S * NS)
    assert isinstance(outcome, TokenRefused) and outcome.reason == "expired"
    assert g.enabled(T0_S * NS) == frozenset()


def test_another_vehicles_token_is_refused() -> None:
    g = gate()
    outcome = g.offer(token(vin=OTHER_VIN), T0_S * NS)
    assert isinstance(outcome, TokenRefused) and outcome.reason == "other_vehicle"
    assert g.enabled(T0_S * NS) == frozenset()


def test_an_older_token_replayed_after_revocation_is_refused() -> None:
    g = gate()
    old = token(seq=1, expires=T0_S + 86_400)
    assert isinstance(g.offer(old, T0_S * NS), EntitlementClaims)
    assert isinstance(g.offer(token(seq=2, status="revoke"), T0_S * NS), EntitlementClaims)
    assert g.enabled(T0_S * NS) == frozenset()
    outcome = g.offer(old, (T0_S + 10) * NS)
    assert isinstance(outcome, TokenRefused) and outcome.reason == "rolled_back"
    assert g.enabled((T0_S + 10) * NS) == frozenset()


def test_the_rollback_floor_survives_a_restart() -> None:
    g = gate()
    old = token(seq=3)
    g.offer(old, T0_S * NS)
    g.offer(token(seq=4, status="revoke"), T0_S * NS)
    name, text = encode_record(g.to_record())
    restored = AgentState.from_stored([(name, text)]).entitlements
    again = EntitlementGate(VIN, CLOUD.verify_key, restored)
    outcome = again.offer(old, T0_S * NS)
    assert isinstance(outcome, TokenRefused) and outcome.reason == "rolled_back"


def test_the_same_token_twice_is_a_benign_duplicate() -> None:
    g = gate()
    t = token()
    g.offer(t, T0_S * NS)
    outcome = g.offer(t, T0_S * NS)
    assert isinstance(outcome, TokenRefused) and outcome.reason == "duplicate"
    assert g.enabled(T0_S * NS) == {"performance_boost"}


def test_a_stored_token_altered_on_disk_is_dropped_on_restore() -> None:
    t = token()
    head, payload, sig = t.split(".")
    tampered = HeldEntitlements((f"{head}.{payload}.{sig[:-4]}AAAA",), {"performance_boost": 1})
    restored = EntitlementGate(VIN, CLOUD.verify_key, tampered)
    assert restored.enabled(T0_S * NS) == frozenset()


def test_a_token_of_another_type_is_refused_as_malformed() -> None:
    import jwt

    other = jwt.encode(claims().to_claims(), CLOUD._key, algorithm="EdDSA",
                       headers={"kid": CLOUD.key_id})
    outcome = gate().offer(other, T0_S * NS)
    assert isinstance(outcome, TokenRefused) and outcome.reason == "malformed"
    with pytest.raises(EntitlementFormatError, match="typ"):
        read_token(other, CLOUD.verify_key)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=600), st.binary(max_size=600).map(
    lambda b: base64.urlsafe_b64encode(b).decode())))
@example("e" * 5000)
@example("eyJ" + "W" * 3000 + ".e30.AA")
@example("a.b.c")
@example("..")
def test_any_bytes_are_refused_with_a_reason_never_an_exception(text: str) -> None:
    outcome = gate().offer(text, T0_S * NS)
    assert isinstance(outcome, TokenRefused)
    assert outcome.reason in ("malformed", "unknown_key", "bad_signature")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


@settings(max_examples=100, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=5), inner, max_size=4), max_leaves=30))
@example([[[[[]]]]])
@example({"sub": VIN, "exp": 10**400})
def test_signed_claims_of_any_shape_are_refused_or_read_never_an_exception(body: object) -> None:
    """A correctly signed token whose claims are anything at all (what a bug in the issuer
    could produce) never crashes the vehicle."""
    header = _b64(json.dumps({"alg": "EdDSA", "typ": "dt-entitlement+jwt",
                              "kid": CLOUD.key_id}).encode())
    payload = _b64(json.dumps(body).encode())
    signature = _b64(CLOUD.sign(f"{header}.{payload}".encode()))
    outcome = gate().offer(f"{header}.{payload}.{signature}", T0_S * NS)
    assert isinstance(outcome, TokenRefused) and outcome.reason == "malformed"


def test_a_signed_deeply_nested_payload_is_refused_as_malformed() -> None:
    header = _b64(json.dumps({"alg": "EdDSA", "typ": "dt-entitlement+jwt",
                              "kid": CLOUD.key_id}).encode())
    payload = _b64(("[" * 1400 + "]" * 1400).encode())
    signature = _b64(CLOUD.sign(f"{header}.{payload}".encode()))
    outcome = gate().offer(f"{header}.{payload}.{signature}", T0_S * NS)
    assert isinstance(outcome, TokenRefused) and outcome.reason == "malformed"
