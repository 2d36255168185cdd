"""Attacks on the API's trust boundary; each one is refused (both database engines)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from drivetrain.cloud.infra import Role, TokenKey, issue_token
from drivetrain.cloud.infra.auth import ROLE_SCOPES


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _assert_unauthenticated(response: Any, presented: bool = True) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith("Bearer")
    assert ('error="invalid_token"' in challenge) is presented


def _forge(app: FastAPI, creds: Any, **claims: Any) -> dict[str, Any]:
    key: TokenKey = app.state.drivetrain.token_key
    now = int(time.time())
    base = {
        "iss": key.issuer, "aud": key.audience, "sub": creds.client_id, "tenant": creds.tenant,
        "role": "admin", "scope": "admin audit:read", "iat": now, "exp": now + 300, "jti": "x",
    }
    base.update(claims)
    return base


def test_no_token_is_401_with_a_bearer_challenge(client: TestClient) -> None:
    _assert_unauthenticated(client.get("/v1/auth/whoami"), presented=False)
    _assert_unauthenticated(client.get("/v1/audit"), presented=False)


@pytest.mark.parametrize("header", ["Bearer", "Bearer not-a-jwt", "Bearer a.b.c", "Basic Zm9vOmJhcg=="])
def test_garbage_credentials_are_401(client: TestClient, header: str) -> None:
    response = client.get("/v1/auth/whoami", headers={"Authorization": header})
    _assert_unauthenticated(response, presented=header.startswith("Bearer "))


def test_expired_token_is_401(app: FastAPI, client: TestClient, operator: Any) -> None:
    issued = issue_token(
        client_id=operator.client_id, tenant="default", role=Role.ADMIN,
        scopes=ROLE_SCOPES[Role.ADMIN], key=app.state.drivetrain.token_key,
        now=datetime.now(UTC) - timedelta(hours=2), ttl_s=3600,
    )
    response = client.get("/v1/auth/whoami", headers=_bearer(issued.access_token))
    _assert_unauthenticated(response)
    assert "expired" in response.json()["detail"]


def test_token_signed_with_another_key_is_401(app: FastAPI, client: TestClient, operator: Any) -> None:
    token = jwt.encode(_forge(app, operator), "another-key-" + "x" * 32, algorithm="HS256")
    _assert_unauthenticated(client.get("/v1/auth/whoami", headers=_bearer(token)))


def test_unsigned_alg_none_token_is_401(app: FastAPI, client: TestClient, operator: Any) -> None:
    token = jwt.encode(_forge(app, operator), key=None, algorithm="none")
    _assert_unauthenticated(client.get("/v1/audit", headers=_bearer(token)))


def test_token_with_edited_claims_is_401(
    client: TestClient, operator: Any, get_token: Callable[..., str]
) -> None:
    header, payload, signature = get_token(operator, "audit:read").split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["tenant"] = "globex"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    _assert_unauthenticated(
        client.get("/v1/auth/whoami", headers=_bearer(f"{header}.{forged}.{signature}"))
    )


def test_token_of_a_disabled_client_stops_working(
    client: TestClient, new_tenant: Callable[[str], Any], new_client: Callable[..., Any],
    get_token: Callable[..., str],
) -> None:
    admin = new_tenant("acme")
    reader = new_client(admin, "read_only")
    token = get_token(reader)
    assert client.get("/v1/auth/whoami", headers=_bearer(token)).status_code == 200
    disabled = client.post(
        f"/v1/tenants/acme/clients/{reader.client_id}/disable", headers=_bearer(get_token(admin))
    )
    assert disabled.status_code == 200, disabled.text
    _assert_unauthenticated(client.get("/v1/auth/whoami", headers=_bearer(token)))


def test_token_for_tenant_a_on_tenant_b_resources_is_403(
    client: TestClient, new_tenant: Callable[[str], Any], get_token: Callable[..., str]
) -> None:
    acme, globex = new_tenant("acme"), new_tenant("globex")
    token = get_token(acme)
    for method, path, body in [
        ("GET", "/v1/tenants/globex", None),
        ("GET", "/v1/tenants/globex/clients", None),
        ("POST", "/v1/tenants/globex/clients", {"role": "admin"}),
    ]:
        response = client.request(method, path, json=body, headers=_bearer(token))
        assert response.status_code == 403, (path, response.text)
        assert "may not act on tenant 'globex'" in response.json()["detail"]
    own = client.get("/v1/tenants/acme/clients", headers=_bearer(token))
    assert own.status_code == 200 and {c["tenant"] for c in own.json()} == {"acme"}
    # globex's resources exist: the 403s above are authorization, not a missing tenant
    theirs = client.get("/v1/tenants/globex/clients", headers=_bearer(get_token(globex)))
    assert theirs.status_code == 200 and {c["tenant"] for c in theirs.json()} == {"globex"}


def test_token_missing_the_scope_is_403(
    client: TestClient, new_tenant: Callable[[str], Any], new_client: Callable[..., Any],
    get_token: Callable[..., str], operator: Any,
) -> None:
    admin = new_tenant("acme")
    operator_token = get_token(operator, "fleet:read")  # an admin, but narrowed
    response = client.get("/v1/audit", headers=_bearer(operator_token))
    assert response.status_code == 403
    assert "lacks scope(s) 'audit:read'" in response.json()["detail"]
    app_client = new_client(admin, "third_party_app")
    response = client.post(
        "/v1/tenants/acme/clients", json={"role": "admin"}, headers=_bearer(get_token(app_client))
    )
    assert response.status_code == 403


def test_non_operator_admin_cannot_create_tenants(
    client: TestClient, new_tenant: Callable[[str], Any], get_token: Callable[..., str]
) -> None:
    admin = new_tenant("acme")
    response = client.post("/v1/tenants", json={"tenant_id": "evil"}, headers=_bearer(get_token(admin)))
    assert response.status_code == 403
    assert "operator tenant" in response.json()["detail"]


def test_wrong_client_secret_and_unknown_client_are_401_alike(client: TestClient, operator: Any) -> None:
    bodies = [
        {"client_id": operator.client_id, "client_secret": operator.client_secret + "x"},
        {"client_id": "dtc_nobody", "client_secret": operator.client_secret},
    ]
    details = []
    for body in bodies:
        response = client.post("/v1/auth/token", data={"grant_type": "client_credentials", **body})
        assert response.status_code == 401
        details.append(response.json()["detail"].split(" for client ")[0])
    assert details[0] == details[1] == "invalid client credentials"


def test_scope_escalation_at_the_token_endpoint_is_refused(
    client: TestClient, new_tenant: Callable[[str], Any], new_client: Callable[..., Any],
) -> None:
    reader = new_client(new_tenant("acme"), "read_only")
    response = client.post(
        "/v1/auth/token",
        data={
            "grant_type": "client_credentials", "client_id": reader.client_id,
            "client_secret": reader.client_secret, "scope": "fleet:read admin",
        },
    )
    assert response.status_code == 403
    assert "may not request scope(s) 'admin'" in response.json()["detail"]
    assert "access_token" not in response.json()


def test_role_beyond_the_token_signers_role_in_a_forged_token_is_401(
    app: FastAPI, client: TestClient, new_tenant: Callable[[str], Any],
    new_client: Callable[..., Any],
) -> None:
    reader = new_client(new_tenant("acme"), "read_only")
    # Correctly signed but claiming more than read_only may have: refused by verification.
    claims = _forge(app, reader, role="read_only", scope="fleet:read admin")
    token = jwt.encode(claims, app.state.drivetrain.token_key.secret, algorithm="HS256")
    _assert_unauthenticated(client.get("/v1/auth/whoami", headers=_bearer(token)))


def test_unsupported_grant_type_is_refused(client: TestClient, operator: Any) -> None:
    response = client.post(
        "/v1/auth/token",
        data={"grant_type": "password", "client_id": operator.client_id, "client_secret": "x"},
    )
    assert response.status_code == 422
    assert "unsupported grant_type 'password'" in response.json()["detail"]
