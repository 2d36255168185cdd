"""Token attacks beyond the signature: a token re-signed with a leaked secret, a client
downgraded after its token was issued, mixed Basic and form credentials, and brute force of
the token endpoint (both database engines)."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import update

from drivetrain.api import create_app
from drivetrain.cloud.infra import Database, TokenKey
from drivetrain.cloud.infra.models import ClientRow
from drivetrain.core.settings import Settings


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _resigned(app: FastAPI, creds: Any, role: str, scope: str) -> str:
    """A token for ``creds``' client, signed with the real secret (as if it had leaked)."""
    key: TokenKey = app.state.drivetrain.token_key
    now = int(time.time())
    claims = {"iss": key.issuer, "aud": key.audience, "sub": creds.client_id,
              "tenant": creds.tenant, "role": role, "scope": scope, "iat": now,
              "exp": now + 300, "jti": "resigned"}
    return jwt.encode(claims, key.secret, algorithm="HS256")


def test_a_read_only_token_resigned_as_admin_with_a_leaked_secret_is_refused(
    app: FastAPI, client: TestClient, new_tenant: Callable[[str], Any],
    new_client: Callable[..., Any],
) -> None:
    admin = new_tenant("acme")
    reader = new_client(admin, "read_only")
    token = _resigned(app, reader, role="admin", scope="admin audit:read fleet:read")
    for call in (client.get("/v1/auth/whoami", headers=_bearer(token)),
                 client.get("/v1/audit", headers=_bearer(token))):
        assert call.status_code == 401, call.text
        assert "claims role 'admin'; the client's role is 'read_only'" in call.json()["detail"]


def test_a_token_claiming_scopes_its_client_does_not_have_is_refused(
    app: FastAPI, client: TestClient, new_tenant: Callable[[str], Any],
    new_client: Callable[..., Any],
) -> None:
    admin = new_tenant("acme")
    narrow = new_client(admin, "admin", scopes=["fleet:read"])
    token = _resigned(app, narrow, role="admin", scope="fleet:read audit:read")
    response = client.get("/v1/audit", headers=_bearer(token))
    assert response.status_code == 401
    assert "claims scope(s) 'audit:read' the client does not have" in response.json()["detail"]


def test_a_client_downgraded_after_its_token_was_issued_loses_the_old_rights(
    client: TestClient, database: Database, new_tenant: Callable[[str], Any],
    new_client: Callable[..., Any], get_token: Callable[..., str],
) -> None:
    admin = new_tenant("acme")
    helper = new_client(admin, "admin")
    token = get_token(helper)
    assert client.get("/v1/audit", headers=_bearer(token)).status_code == 200
    with database.session() as session:
        session.execute(update(ClientRow).where(ClientRow.client_id == helper.client_id)
                        .values(role="read_only", scopes="fleet:read"))
    assert client.get("/v1/audit", headers=_bearer(token)).status_code == 401
    assert client.get("/v1/auth/whoami", headers=_bearer(token)).status_code == 401


def _basic(client_id: str, secret: str) -> dict[str, str]:
    raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def test_basic_credentials_with_a_different_form_client_id_are_refused(
    client: TestClient, new_tenant: Callable[[str], Any], new_client: Callable[..., Any],
) -> None:
    admin = new_tenant("acme")
    reader = new_client(admin, "read_only")
    response = client.post("/v1/auth/token", headers=_basic(admin.client_id, admin.client_secret),
                           data={"grant_type": "client_credentials",
                                 "client_id": reader.client_id})
    assert response.status_code == 401
    assert "differs from the HTTP Basic client" in response.json()["detail"]
    assert "access_token" not in response.json()
    both = client.post("/v1/auth/token", headers=_basic(admin.client_id, admin.client_secret),
                       data={"grant_type": "client_credentials",
                             "client_secret": admin.client_secret})
    assert both.status_code == 401 and "one way" in both.json()["detail"]
    same = client.post("/v1/auth/token", headers=_basic(admin.client_id, admin.client_secret),
                       data={"grant_type": "client_credentials", "client_id": admin.client_id})
    assert same.status_code == 200


@pytest.fixture
def strict_client(settings: Settings, database: Database) -> TestClient:
    limited = settings.model_copy(update={"token_requests_per_minute": 5,
                                          "token_failures_per_minute": 3})
    return TestClient(create_app(limited, database))


def test_guessing_a_clients_secret_is_stopped_after_a_few_failures(
    strict_client: TestClient,
) -> None:
    bootstrap = strict_client.app.state.drivetrain.bootstrap  # type: ignore[attr-defined]
    form = {"grant_type": "client_credentials", "client_id": bootstrap.client_id}
    statuses = [strict_client.post("/v1/auth/token", data={**form, "client_secret": f"guess{i}"})
                .status_code for i in range(4)]
    assert statuses == [401, 401, 401, 429]
    # Even the right secret waits out the minute: the guesser cannot tell it found it.
    right = strict_client.post("/v1/auth/token",
                               data={**form, "client_secret": bootstrap.client_secret})
    assert right.status_code == 429
    assert int(right.headers["retry-after"]) >= 1
    assert "failed token requests for client" in right.json()["detail"]


def test_one_address_flooding_the_token_endpoint_gets_429(strict_client: TestClient) -> None:
    form = {"grant_type": "client_credentials", "client_id": "dtc_x", "client_secret": "y"}
    statuses = [strict_client.post("/v1/auth/token", data={**form, "client_id": f"dtc_{i}"})
                .status_code for i in range(7)]
    assert statuses[:5] == [401] * 5 and statuses[5:] == [429, 429]
