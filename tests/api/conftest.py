"""Fixtures for the API: the app over the root conftest's ``database`` (SQLite and PostgreSQL),
an HTTP client, and helpers that obtain tokens and create tenants and clients through the API.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from drivetrain.api import create_app
from drivetrain.cloud.infra import Database, credentials, ensure_embedded_bootstrap
from drivetrain.core.settings import Settings


@pytest.fixture(autouse=True)
def fast_secret_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cheaper scrypt for secrets hashed during API tests (the format keeps the cost, so
    verification is unchanged); the production cost is covered by tests/cloud."""
    monkeypatch.setattr(credentials, "SCRYPT_N", 2**10)


@dataclass(frozen=True)
class Creds:
    """A client's id and secret, as tests hand them to the token endpoint."""

    client_id: str
    client_secret: str
    tenant: str


@pytest.fixture
def app(settings: Settings, database: Database) -> FastAPI:
    """The API on a fresh database (each engine) with the embedded bootstrap admin."""
    return create_app(settings, database)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    """An HTTP client bound to ``app`` (lifespan run)."""
    with TestClient(app) as http:
        yield http


@pytest.fixture
def operator(app: FastAPI) -> Creds:
    """The bootstrap admin of the operator tenant ``default``."""
    bootstrap = app.state.drivetrain.bootstrap
    return Creds(bootstrap.client_id, bootstrap.client_secret, bootstrap.tenant)


@pytest.fixture
def get_token(client: TestClient) -> Callable[..., str]:
    """``get_token(creds, scope=None)`` -> access token from POST /v1/auth/token."""

    def get(creds: Creds, scope: str | None = None) -> str:
        form = {
            "grant_type": "client_credentials",
            "client_id": creds.client_id,
            "client_secret": creds.client_secret,
        }
        if scope is not None:
            form["scope"] = scope
        response = client.post("/v1/auth/token", data=form)
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])

    return get


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def new_tenant(
    client: TestClient, operator: Creds, get_token: Callable[..., str]
) -> Callable[[str], Creds]:
    """``new_tenant("acme")`` -> the new tenant's first admin, created through the API."""

    def create(tenant_id: str) -> Creds:
        response = client.post(
            "/v1/tenants", json={"tenant_id": tenant_id}, headers=bearer(get_token(operator))
        )
        assert response.status_code == 201, response.text
        admin = response.json()["admin_client"]
        return Creds(admin["client_id"], admin["client_secret"], tenant_id)

    return create


@pytest.fixture
def new_client(
    client: TestClient, get_token: Callable[..., str]
) -> Callable[..., Creds]:
    """``new_client(admin_creds, role, scopes=None)`` -> a client in the admin's tenant."""

    def create(admin: Creds, role: str, scopes: list[str] | None = None) -> Creds:
        body: dict[str, object] = {"role": role}
        if scopes is not None:
            body["scopes"] = scopes
        response = client.post(
            f"/v1/tenants/{admin.tenant}/clients", json=body, headers=bearer(get_token(admin))
        )
        assert response.status_code == 201, response.text
        made = response.json()
        return Creds(made["client_id"], made["client_secret"], admin.tenant)

    return create


@pytest.fixture
def sqlite_database(settings: Settings) -> Iterator[Database]:
    """The configured state database (for tests of the CLI, which opens it): SQLite in
    data_dir, PostgreSQL in the fleet profile; migrated, with the embedded bootstrap admin,
    disposed afterwards."""
    from drivetrain.cloud.infra import open_database

    database = open_database(settings)
    database.upgrade()
    ensure_embedded_bootstrap(settings, database)
    yield database
    database.dispose()
