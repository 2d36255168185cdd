"""Pure token and scope logic: no database, no network, time passed in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
import pytest

from drivetrain.cloud.infra import (
    ROLE_SCOPES,
    Principal,
    Role,
    Scope,
    TokenKey,
    authorize,
    issue_token,
    parse_role,
    parse_scopes,
    verify_token,
)
from drivetrain.cloud.infra.auth import grant_scopes
from drivetrain.core.errors import AuthenticationError, BadInputError, PermissionDeniedError

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
KEY = TokenKey(secret=b"k" * 32)


def _token(
    *,
    role: Role = Role.FLEET_OPERATOR,
    scopes: frozenset[Scope] | None = None,
    key: TokenKey = KEY,
    now: datetime = NOW,
    ttl_s: int = 600,
) -> str:
    return issue_token(
        client_id="dtc_1",
        tenant="acme",
        role=role,
        scopes=ROLE_SCOPES[role] if scopes is None else scopes,
        key=key,
        now=now,
        ttl_s=ttl_s,
    ).access_token


def _claims(**overrides: object) -> dict[str, object]:
    claims: dict[str, object] = {
        "iss": KEY.issuer,
        "aud": KEY.audience,
        "sub": "dtc_1",
        "tenant": "acme",
        "role": "read_only",
        "scope": "fleet:read",
        "iat": int(NOW.timestamp()),
        "exp": int(NOW.timestamp()) + 600,
        "jti": "j1",
    }
    claims.update(overrides)
    return claims


def test_issued_token_verifies_to_the_same_principal() -> None:
    principal = verify_token(_token(), KEY, NOW + timedelta(seconds=5))
    assert principal.client_id == "dtc_1"
    assert principal.tenant == "acme"
    assert principal.role is Role.FLEET_OPERATOR
    assert principal.scopes == ROLE_SCOPES[Role.FLEET_OPERATOR]
    assert principal.expires_at == NOW + timedelta(seconds=600)


def test_token_is_expired_exactly_at_its_expiry_time() -> None:
    token = _token(ttl_s=60)
    verify_token(token, KEY, NOW + timedelta(seconds=59))
    with pytest.raises(AuthenticationError, match="expired"):
        verify_token(token, KEY, NOW + timedelta(seconds=60))


def test_token_signed_with_another_key_is_rejected() -> None:
    token = _token(key=TokenKey(secret=b"x" * 32))
    with pytest.raises(AuthenticationError, match="Signature verification failed"):
        verify_token(token, KEY, NOW)


def test_unsigned_alg_none_token_is_rejected() -> None:
    token = jwt.encode(_claims(role="admin", scope="admin"), key=None, algorithm="none")
    with pytest.raises(AuthenticationError, match="invalid access token"):
        verify_token(token, KEY, NOW)


def test_token_with_another_hmac_algorithm_is_rejected() -> None:
    token = jwt.encode(_claims(), KEY.secret + b"x" * 32, algorithm="HS512")
    with pytest.raises(AuthenticationError, match="alg value is not allowed"):
        verify_token(token, KEY, NOW)


@pytest.mark.parametrize(
    ("claim", "value", "message"),
    [
        ("iss", "someone-else", "issuer"),
        ("aud", "another-api", "Audience"),
        ("role", "superuser", "unknown role 'superuser'"),
        ("scope", "fleet:read root", "unknown scope 'root'"),
        ("scope", "admin", "exceed role 'read_only'"),
        ("iat", int(NOW.timestamp()) + 3600, "issued in the future"),
    ],
)
def test_token_with_a_bad_claim_is_rejected(claim: str, value: object, message: str) -> None:
    token = jwt.encode(_claims(**{claim: value}), KEY.secret, algorithm="HS256")
    with pytest.raises(AuthenticationError, match=message):
        verify_token(token, KEY, NOW)


def test_token_missing_the_tenant_claim_is_rejected() -> None:
    claims = _claims()
    del claims["tenant"]
    token = jwt.encode(claims, KEY.secret, algorithm="HS256")
    with pytest.raises(AuthenticationError, match="tenant"):
        verify_token(token, KEY, NOW)


@pytest.mark.parametrize("garbage", ["", "abc", "a.b.c", "Bearer x", "e30.e30.e30"])
def test_garbage_token_is_rejected(garbage: str) -> None:
    with pytest.raises(AuthenticationError):
        verify_token(garbage, KEY, NOW)


def test_short_token_key_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 32"):
        TokenKey(secret=b"short")


def test_naive_issue_time_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="naive"):
        _token(now=datetime(2025, 1, 1))


def test_every_role_maps_to_scopes_from_the_closed_set() -> None:
    assert set(ROLE_SCOPES) == set(Role)
    assert ROLE_SCOPES[Role.ADMIN] == frozenset(Scope)
    for role, scopes in ROLE_SCOPES.items():
        assert scopes, role
        assert scopes <= frozenset(Scope)
    assert all(s.value.endswith(":read") for s in ROLE_SCOPES[Role.READ_ONLY])


def test_unknown_scope_and_role_names_are_quoted_in_the_error() -> None:
    with pytest.raises(BadInputError, match="unknown scope 'fleet:delete'"):
        parse_scopes("fleet:read fleet:delete")
    with pytest.raises(BadInputError, match="unknown role 'root'"):
        parse_role("root")
    assert parse_scopes("  ") == frozenset()
    assert parse_scopes(["audit:read"]) == {Scope.AUDIT_READ}


def test_scope_escalation_is_refused_not_trimmed() -> None:
    allowed = ROLE_SCOPES[Role.READ_ONLY]
    assert grant_scopes(frozenset(), allowed, "c") == allowed
    assert grant_scopes(frozenset({Scope.FLEET_READ}), allowed, "c") == {Scope.FLEET_READ}
    with pytest.raises(PermissionDeniedError, match="'admin fleet:write'"):
        grant_scopes(frozenset({Scope.FLEET_READ, Scope.FLEET_WRITE, Scope.ADMIN}), allowed, "c")


def _principal(scopes: frozenset[Scope]) -> Principal:
    return Principal("dtc_1", "acme", Role.FLEET_OPERATOR, scopes, "j", NOW)


def test_missing_scope_is_denied_with_its_name() -> None:
    with pytest.raises(PermissionDeniedError, match="lacks scope.*'fleet:write'"):
        authorize(_principal(frozenset({Scope.FLEET_READ})), [Scope.FLEET_WRITE])


def test_other_tenant_is_denied_even_with_every_scope() -> None:
    with pytest.raises(PermissionDeniedError, match="tenant 'acme' may not act on tenant 'globex'"):
        authorize(_principal(frozenset(Scope)), [Scope.FLEET_READ], tenant="globex")
    authorize(_principal(frozenset(Scope)), [Scope.FLEET_READ], tenant="acme")
