"""One client flooding the API cannot starve the others: each client id may make
``api_requests_per_minute`` requests to the routes that need a token; past it that client gets
429 with Retry-After while every other client is still served."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from drivetrain.api import create_app
from drivetrain.core.settings import Settings
from tests.api.conftest import Creds, bearer

LIMIT = 5


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    """The API (SQLite: the limit is in the process, the same on either engine) with a small
    per-client request budget."""
    return create_app(settings.model_copy(update={"api_requests_per_minute": LIMIT}))


def test_a_client_flooding_requests_gets_429_while_another_client_is_served(
    client: TestClient, operator: Creds, new_client: Callable[..., Creds],
    get_token: Callable[..., str],
) -> None:
    reader = new_client(operator, "read_only")  # the operator's first request
    flooder, other = bearer(get_token(operator)), bearer(get_token(reader))
    flood = [client.get("/v1/auth/whoami", headers=flooder) for _ in range(LIMIT + 3)]
    assert [r.status_code for r in flood] == [200] * (LIMIT - 1) + [429] * 4
    refused = flood[-1]
    assert refused.headers["content-type"] == "application/problem+json"
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert "too many API requests" in refused.json()["detail"]
    assert operator.client_id in refused.json()["detail"]
    # Another client of the same tenant is served at once, for its whole budget.
    served = [client.get("/v1/auth/whoami", headers=other) for _ in range(LIMIT)]
    assert [r.status_code for r in served] == [200] * LIMIT
    assert client.get("/v1/auth/whoami", headers=other).status_code == 429
    # The routes that need no token stay open.
    assert client.get("/healthz").status_code == 200


def test_invented_tokens_cost_no_client_its_budget(
    client: TestClient, operator: Creds, get_token: Callable[..., str],
) -> None:
    forged = {"Authorization": "Bearer " + "x" * 40}
    assert {client.get("/v1/auth/whoami", headers=forged).status_code
            for _ in range(LIMIT * 2)} == {401}
    token = bearer(get_token(operator))
    assert [client.get("/v1/auth/whoami", headers=token).status_code
            for _ in range(LIMIT)] == [200] * LIMIT


def test_the_default_budget_is_generous() -> None:
    assert Settings.model_construct().api_requests_per_minute >= 600
