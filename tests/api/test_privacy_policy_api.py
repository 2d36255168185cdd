"""``POST /v1/tenants/{tenant}/privacy/policy/push`` over HTTP: an admin sends the policy in
force to the tenant's cars (one audited ``privacy.policy`` job per region), another tenant's
admin and a non-admin are refused 403 and nothing is sent, a bad region is refused naming it."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from drivetrain.cloud.fleet import provision_vehicle
from drivetrain.cloud.infra import Database, list_audit
from drivetrain.core.crypto import SigningKey

CLOUD = SigningKey.from_seed(b"privacy-policy-api-cloud-key-000")
OPERATOR_POLICY = {
    "format": "drivetrain.privacy-policy",
    "version": 1,
    "regions": {
        "EU": {"default_off": ["cabin"],
               "precision": [{"signals": ["Vehicle.CurrentLocation.*"], "decimals": 1}]},
        "US": {"default_off": ["location"]},
    },
}  # fmt: skip


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _vehicle(database: Database, tenant: str, region: str, seed: int) -> str:
    with database.session() as session:
        vehicle, _ = provision_vehicle(
            session, tenant=tenant, model="compact-bev", region=region,
            cloud_key=CLOUD.verify_key, actor="test", rng=random.Random(seed),
        )  # fmt: skip
    return vehicle.vin


@pytest.fixture
def setup(
    database: Database,
    new_tenant: Callable[[str], Any],
    new_client: Callable[..., Any],
    get_token: Callable[..., str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, Any]:
    """acme (two EU cars, one US car; an admin and a fleet operator), globex (an admin), and
    an operator policy file naming EU and US in force."""
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps(OPERATOR_POLICY))
    monkeypatch.setenv("DRIVETRAIN_PRIVACY_POLICY", str(policy))
    acme_admin = new_tenant("acme")
    globex_admin = new_tenant("globex")
    for seed, region in enumerate(("EU", "EU", "US")):
        _vehicle(database, "acme", region, seed)
    return {
        "policy": str(policy),
        "admin": bearer(get_token(acme_admin)),
        "admin_id": acme_admin.client_id,
        "operator": bearer(get_token(new_client(acme_admin, "fleet_operator"))),
        "globex_admin": bearer(get_token(globex_admin)),
    }


URL = "/v1/tenants/acme/privacy/policy/push"


def _pushes_audited(database: Database, tenant: str) -> list[Any]:
    with database.session() as session:
        return list_audit(session, tenant, action="privacy.policy.push")


def test_an_admin_push_sends_one_job_per_region_to_its_cars_and_is_audited(
    client: TestClient, setup: dict, database: Database
) -> None:
    headers = {**setup["admin"], "X-Request-ID": "policy-push-1"}
    response = client.post(URL, json={"regions": ["EU"]}, headers=headers)
    assert response.status_code == 200, response.text
    out = response.json()
    assert (out["source"], out["tenant"]) == (setup["policy"], "acme")
    [push] = out["pushes"]
    assert (push["region"], push["vehicles"]) == ("EU", 2)
    assert push["rules"]["default_off"] == ["cabin"]
    job = client.get(f"/v1/jobs/{push['job_id']}", headers=setup["admin"]).json()
    assert job["body"]["name"] == "privacy.policy"
    assert job["body"]["args"] == {
        "region": "EU",
        "version": push["version"],
        "rules": push["rules"],
    }
    [entry] = _pushes_audited(database, "acme")
    assert entry.actor == setup["admin_id"] and entry.request_id == "policy-push-1"
    assert entry.details["regions"] == {"EU": 2}
    assert entry.target == f"privacy-policy:{push['version']}"


def test_without_a_body_every_region_the_policy_names_is_sent(
    client: TestClient, setup: dict
) -> None:
    response = client.post(URL, headers=setup["admin"])
    assert response.status_code == 200, response.text
    assert {p["region"]: p["vehicles"] for p in response.json()["pushes"]} == {"EU": 2, "US": 1}


@pytest.mark.parametrize("who", ["globex_admin", "operator"])
def test_another_tenants_admin_and_a_non_admin_are_refused_and_nothing_is_sent(
    client: TestClient, setup: dict, database: Database, who: str
) -> None:
    response = client.post(URL, json={"regions": ["EU"]}, headers=setup[who])
    assert response.status_code == 403, response.text
    expected = "may not act on tenant 'acme'" if who == "globex_admin" else "'admin'"
    assert expected in response.json()["detail"]
    assert _pushes_audited(database, "acme") == []
    assert client.get("/v1/jobs", headers=setup["admin"]).json()["jobs"] == []


def test_a_push_needs_a_token(client: TestClient, setup: dict) -> None:
    assert client.post(URL, json={"regions": ["EU"]}).status_code == 401


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"regions": ["XX"]}, "region 'XX' not known; expected one of EU, US, CN, JP"),
        ({"regions": ["EU", "CN"]}, "region 'CN': the policy"),
    ],
)
def test_a_bad_region_is_refused_naming_it_and_nothing_is_sent(
    client: TestClient, setup: dict, database: Database, body: dict, error: str
) -> None:
    response = client.post(URL, json=body, headers=setup["admin"])
    assert response.status_code == 422, response.text
    assert error in response.json()["detail"]
    assert _pushes_audited(database, "acme") == []
    assert client.get("/v1/jobs", headers=setup["admin"]).json()["jobs"] == []


def test_a_malformed_body_is_refused_naming_the_field(client: TestClient, setup: dict) -> None:
    response = client.post(URL, json={"regions": "EU"}, headers=setup["admin"])
    assert response.status_code == 422
    assert "body.regions" in [e["field"] for e in response.json()["errors"]]
    extra = client.post(URL, json={"regions": ["EU"], "tenant": "globex"}, headers=setup["admin"])
    assert extra.status_code == 422
