"""``/v1/campaigns`` and ``/v1/catalogs`` over HTTP: write, check, approve (two people where
required), follow; a tenant's own catalog with custom signals; tenants kept apart."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from drivetrain.cloud.campaigns import CampaignRunner
from drivetrain.cloud.fleet import provision_vehicle
from drivetrain.cloud.infra import Database
from drivetrain.core.crypto import SigningKey

CLOUD = SigningKey.from_seed(b"campaigns-api-cloud-key-00000000")
DEFINITION: dict[str, Any] = {
    "campaign": {"id": "speeding", "signals": ["Vehicle.Speed"], "period_ms": 1000},
    "targeting": {"query": 'region == "EU"'},
}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def setup(
    database: Database, new_tenant: Callable[[str], Any], new_client: Callable[..., Any],
    get_token: Callable[..., str],
) -> dict[str, Any]:
    acme_admin = new_tenant("acme")
    globex_admin = new_tenant("globex")
    rng = random.Random(5)
    with database.session() as session:
        vins = [provision_vehicle(session, tenant="acme", model="compact-bev", region=r,
                                  cloud_key=CLOUD.verify_key, actor="test", rng=rng)[0].vin
                for r in ("EU", "US")]
    return {
        "vins": vins,
        "admin": bearer(get_token(acme_admin)),
        "alice": bearer(get_token(new_client(acme_admin, "fleet_operator"))),
        "bob": bearer(get_token(new_client(acme_admin, "fleet_operator"))),
        "reader": bearer(get_token(new_client(acme_admin, "read_only"))),
        "globex": bearer(get_token(new_client(globex_admin, "fleet_operator"))),
    }


def test_a_campaign_is_written_approved_by_a_second_person_and_runs(
    client: TestClient, setup: dict[str, Any], database: Database
) -> None:
    policy = client.put("/v1/campaigns/policy", headers=setup["admin"],
                        json={"require_second_approver": True})
    assert policy.status_code == 200 and policy.json()["require_second_approver"] is True
    made = client.post("/v1/campaigns", headers=setup["alice"], json=DEFINITION)
    assert made.status_code == 201, made.text
    assert made.json()["status"] == "draft" and made.json()["current"]["status"] == "draft"
    own = client.post("/v1/campaigns/speeding/approve", headers=setup["alice"])
    assert own.status_code == 403 and "second person" in own.json()["detail"]
    approved = client.post("/v1/campaigns/speeding/approve", headers=setup["bob"])
    assert approved.status_code == 200 and approved.json()["status"] == "approved"
    CampaignRunner(database).run_once()
    shown = client.get("/v1/campaigns/speeding", headers=setup["reader"]).json()
    assert shown["status"] == "running" and shown["vehicles"] == {"pending": 1}
    vehicles = client.get("/v1/campaigns/speeding/vehicles", headers=setup["reader"]).json()
    assert [v["vin"] for v in vehicles] == [setup["vins"][0]]
    suspended = client.post("/v1/campaigns/speeding/suspend", headers=setup["bob"],
                            json={"reason": "budget"})
    assert suspended.json()["status"] == "suspended" and suspended.json()["reason"] == "budget"


def test_an_edit_after_approval_is_a_409_and_a_new_version_is_the_way(
    client: TestClient, setup: dict[str, Any]
) -> None:
    client.post("/v1/campaigns", headers=setup["alice"], json=DEFINITION)
    client.post("/v1/campaigns/speeding/approve", headers=setup["bob"])
    changed = {**DEFINITION, "campaign": {**DEFINITION["campaign"], "period_ms": 500}}
    edit = client.put("/v1/campaigns/speeding", headers=setup["alice"], json=changed)
    assert edit.status_code == 409 and "version 1 is approved" in edit.json()["detail"]
    version = client.post("/v1/campaigns/speeding/versions", headers=setup["alice"],
                          json=changed)
    assert version.status_code == 201 and version.json()["latest_version"] == 2
    assert client.get("/v1/campaigns/speeding/versions/2", headers=setup["reader"]).json()[
        "definition"]["campaign"]["period_ms"] == 500


def test_a_refused_definition_names_the_field_and_stores_nothing(
    client: TestClient, setup: dict[str, Any]
) -> None:
    bad = {**DEFINITION, "campaign": {**DEFINITION["campaign"], "signals": ["Vehicle.Spede"]}}
    refused = client.post("/v1/campaigns", headers=setup["alice"], json=bad)
    assert refused.status_code == 422 and "'signals'" in refused.json()["detail"]
    assert "did you mean 'Vehicle.Speed'" in refused.json()["detail"]
    assert client.get("/v1/campaigns", headers=setup["reader"]).json() == []


def test_a_tenant_catalog_overlay_lets_a_campaign_use_a_custom_signal(
    client: TestClient, setup: dict[str, Any]
) -> None:
    custom = {**DEFINITION, "campaign": {"id": "wipers", "signals": ["Vehicle.Acme.WiperWear"]}}
    assert client.post("/v1/campaigns", headers=setup["alice"], json=custom).status_code == 422
    overlay = client.post("/v1/catalogs", headers=setup["alice"], json={
        "kind": "overlay", "description": "wiper wear",
        "document": {"Vehicle.Acme.WiperWear": {"type": "sensor", "datatype": "uint8",
                                                 "unit": "percent", "min": 0, "max": 100,
                                                 "description": "Wiper blade wear"}}})
    assert overlay.status_code == 201, overlay.text
    assert overlay.json()["version"] == 1
    made = client.post("/v1/campaigns", headers=setup["alice"], json=custom)
    assert made.status_code == 201 and made.json()["current"]["catalog_version"] == 1
    signals = client.get("/v1/catalogs/current", headers=setup["reader"],
                         params={"prefix": "Vehicle.Acme"}).json()
    assert signals["version"] == 1 and [s["path"] for s in signals["signals"]] == [
        "Vehicle.Acme.WiperWear"]
    # the other tenant's catalog is untouched
    other = client.post("/v1/campaigns", headers=setup["globex"], json=custom)
    assert other.status_code == 422


def test_tenants_never_see_each_others_campaigns(
    client: TestClient, setup: dict[str, Any]
) -> None:
    client.post("/v1/campaigns", headers=setup["alice"], json=DEFINITION)
    assert client.get("/v1/campaigns/speeding", headers=setup["globex"]).status_code == 404
    assert client.post("/v1/campaigns/speeding/approve",
                       headers=setup["globex"]).status_code == 404
    assert client.get("/v1/campaigns", headers=setup["globex"]).json() == []
    foreign = {**DEFINITION, "targeting": {"vins": [setup["vins"][0]]}}
    refused = client.post("/v1/campaigns", headers=setup["globex"], json=foreign)
    assert refused.status_code == 404 and "not a vehicle of tenant 'globex'" in refused.text


def test_writing_needs_campaigns_write(client: TestClient, setup: dict[str, Any]) -> None:
    assert client.post("/v1/campaigns", headers=setup["reader"],
                       json=DEFINITION).status_code == 403
    assert client.put("/v1/campaigns/policy", headers=setup["alice"],
                      json={"require_second_approver": False}).status_code == 403


def test_writing_a_webhook_destination_returns_its_signing_secret_once(
    client: TestClient, setup: dict[str, Any], settings: Any
) -> None:
    from drivetrain.cloud.infra.bootstrap import resolve_token_key
    from drivetrain.cloud.ingest.webhooks import webhook_secret

    hooked = {**DEFINITION, "destinations": [{"type": "webhook",
                                              "url": "https://hooks.example.com/dt"}]}
    made = client.post("/v1/campaigns", headers=setup["alice"], json=hooked)
    assert made.status_code == 201, made.text
    expected = webhook_secret(resolve_token_key(settings).secret, "acme", "speeding")
    assert made.json()["webhook_secret"] == expected
    shown = client.get("/v1/campaigns/speeding", headers=setup["reader"])
    assert shown.status_code == 200 and shown.json()["webhook_secret"] is None
    plain = client.post("/v1/campaigns", headers=setup["alice"],
                        json={**DEFINITION, "campaign": {**DEFINITION["campaign"],
                                                         "id": "plain"}})
    assert plain.status_code == 201 and plain.json()["webhook_secret"] is None
