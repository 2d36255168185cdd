"""``/v1/ingest`` over HTTP: per-tenant visibility of dead letters and counters, operator view
of unknown senders, replay authorization, and a replay that stores a late vehicle's data."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient
from ingest_helpers import SOC, Fleet, telemetry, wall_clock_ns

from drivetrain.api import create_app
from drivetrain.cloud.fleet import register_vehicle
from drivetrain.cloud.infra import (
    Database,
    Role,
    Scope,
    create_client,
    credentials,
    issue_access_token,
    resolve_token_key,
)
from drivetrain.cloud.ingest import IngestPipeline, MemoryLake, MemoryReportedState
from drivetrain.cloud.lake import Lake
from drivetrain.core.crypto import SigningKey
from drivetrain.core.settings import Settings

STRANGER = "DTVSTRANGER000001"


@pytest.fixture(autouse=True)
def fast_secret_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(credentials, "SCRYPT_N", 2**10)


@pytest.fixture
def client(settings: Settings, database: Database, fleet: Fleet) -> Iterator[TestClient]:
    with TestClient(create_app(settings, database)) as http:
        yield http


@pytest.fixture
def token(
    client: TestClient, settings: Settings, database: Database
) -> Callable[..., dict[str, str]]:
    """``token(tenant, role, scopes=None)`` -> an Authorization header for a new client."""

    def make(tenant: str, role: Role, scopes: frozenset[Scope] | None = None) -> dict[str, str]:
        if tenant == "default" and role is Role.ADMIN:
            bootstrap = client.app.state.drivetrain.bootstrap  # type: ignore[attr-defined]
            client_id, secret = bootstrap.client_id, bootstrap.client_secret
        else:
            with database.session() as session:
                new = create_client(session, tenant=tenant, role=role, scopes=scopes, actor="test")
            client_id, secret = new.client.client_id, new.client_secret
        with database.session() as session:
            issued = issue_access_token(
                session,
                client_id=client_id,
                client_secret=secret,
                requested_scopes=None,
                key=resolve_token_key(settings),
                ttl_s=600,
            )
        return {"Authorization": f"Bearer {issued.access_token}"}

    return make


@pytest.fixture
def refused(database: Database, fleet: Fleet) -> SigningKey:
    """One dead letter per tenant and one of an unknown sender; returns the stranger's key."""
    now = wall_clock_ns()
    stranger_key = SigningKey.generate()
    IngestPipeline(database, MemoryLake(), MemoryReportedState()).process(
        [
            telemetry(fleet.vin("eu1"), fleet.key("eu1"), [(SOC, now, 300.0)]),
            telemetry(fleet.vin("gx1"), fleet.key("gx1"), [("Vehicle.Nope", now, 1.0)]),
            telemetry(STRANGER, stranger_key, [(SOC, now, 10.0)]),
        ]
    )
    return stranger_key


def _reasons(response: object) -> list[str]:
    body = response.json()  # type: ignore[attr-defined]
    return [d["reason"] for d in body["dead_letters"]]


def test_a_tenant_lists_only_its_own_dead_letters(
    client: TestClient, token: Callable[..., dict[str, str]], refused: SigningKey
) -> None:
    acme = token("acme", Role.READ_ONLY)
    response = client.get("/v1/ingest/dead-letters", headers=acme)
    assert response.status_code == 200, response.text
    assert _reasons(response) == ["out_of_range"]
    assert client.get("/v1/ingest/dead-letters?tenant=globex", headers=acme).status_code == 403
    globex = client.get("/v1/ingest/dead-letters", headers=token("globex", Role.READ_ONLY))
    assert _reasons(globex) == ["unknown_path"]


def test_operator_admins_also_see_unknown_senders(
    client: TestClient, token: Callable[..., dict[str, str]], refused: SigningKey
) -> None:
    operator = token("default", Role.ADMIN)
    everything = client.get("/v1/ingest/dead-letters", headers=operator)
    assert sorted(_reasons(everything)) == ["out_of_range", "unknown_path", "unknown_vehicle"]
    stranger = next(d for d in everything.json()["dead_letters"] if d["vin"] == STRANGER)
    assert stranger["tenant"] is None
    narrowed = client.get("/v1/ingest/dead-letters?tenant=acme", headers=operator)
    assert _reasons(narrowed) == ["out_of_range"]
    # an admin of another tenant is no operator
    acme_admin = token("acme", Role.ADMIN)
    assert _reasons(client.get("/v1/ingest/dead-letters", headers=acme_admin)) == ["out_of_range"]


def test_one_dead_letter_shows_its_samples_and_hides_other_tenants(
    client: TestClient, token: Callable[..., dict[str, str]], refused: SigningKey
) -> None:
    acme = token("acme", Role.READ_ONLY)
    (own,) = client.get("/v1/ingest/dead-letters", headers=acme).json()["dead_letters"]
    detail = client.get(f"/v1/ingest/dead-letters/{own['dead_letter_id']}", headers=acme)
    assert detail.status_code == 200
    assert detail.json()["items"][0]["path"] == SOC and detail.json()["items"][0]["value"] == 300.0
    operator = token("default", Role.ADMIN)
    others = [
        d["dead_letter_id"]
        for d in client.get("/v1/ingest/dead-letters", headers=operator).json()["dead_letters"]
        if d["tenant"] != "acme"
    ]
    for dead_letter_id in others:
        response = client.get(f"/v1/ingest/dead-letters/{dead_letter_id}", headers=acme)
        assert response.status_code == 404


def test_replay_needs_write_scope_and_only_reaches_own_dead_letters(
    client: TestClient, token: Callable[..., dict[str, str]], refused: SigningKey
) -> None:
    reader = token("acme", Role.READ_ONLY)
    response = client.post("/v1/ingest/dead-letters/replay", json={}, headers=reader)
    assert response.status_code == 403
    writer = token("acme", Role.SERVICE)
    operator = token("default", Role.ADMIN)
    foreign = [
        d["dead_letter_id"]
        for d in client.get("/v1/ingest/dead-letters", headers=operator).json()["dead_letters"]
        if d["tenant"] != "acme"
    ]
    response = client.post(
        "/v1/ingest/dead-letters/replay", json={"ids": foreign[:1]}, headers=writer
    )
    assert response.status_code == 404
    response = client.post(
        "/v1/ingest/dead-letters/replay", json={"reason": "out_of_range"}, headers=writer
    )
    assert response.status_code == 200, response.text
    assert [r["outcome"] for r in response.json()] == ["still_refused"]
    assert (
        client.post("/v1/ingest/dead-letters/replay", json={"bogus": 1}, headers=writer).status_code
        == 422
    )


def test_operator_replays_a_late_registered_vehicles_data_into_the_lake(
    client: TestClient,
    token: Callable[..., dict[str, str]],
    refused: SigningKey,
    database: Database,
    settings: Settings,
) -> None:
    with database.session() as session:
        register_vehicle(
            session,
            vin=STRANGER,
            tenant="acme",
            model="compact-bev",
            region="US",
            verify_key=refused.verify_key,
            actor="test",
        )
    operator = token("default", Role.ADMIN)
    response = client.post(
        "/v1/ingest/dead-letters/replay", json={"reason": "unknown_vehicle"}, headers=operator
    )
    assert response.status_code == 200, response.text
    assert [(r["outcome"], r["accepted"]) for r in response.json()] == [("replayed", 1)]
    with Lake.open(settings) as lake:
        rows = lake.sql("acme", "SELECT path, value, region FROM telemetry")
    assert rows.to_pylist() == [{"path": SOC, "value": 10.0, "region": "US"}]


def test_stats_are_per_tenant(
    client: TestClient, token: Callable[..., dict[str, str]], refused: SigningKey, fleet: Fleet
) -> None:
    response = client.get("/v1/ingest/stats", headers=token("acme", Role.READ_ONLY))
    assert response.status_code == 200
    body = response.json()
    assert {v["vin"] for v in body["vehicles"]} == {fleet.vin("eu1")}
    assert {o["outcome"] for o in body["totals"]} == {"out_of_range"}
    assert client.get("/v1/ingest/stats").status_code == 401
