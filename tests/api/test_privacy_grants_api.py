"""The purpose-consent ledger over HTTP: give, list, withdraw; refused input changes nothing;
another tenant's vehicle or grant is 404; the purpose list."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from drivetrain.cloud.fleet import provision_vehicle
from drivetrain.cloud.infra import Database, list_audit
from drivetrain.core.crypto import SigningKey

CLOUD = SigningKey.from_seed(b"privacy-grants-cloud-key-0000000")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def setup(
    database: Database, new_tenant: Callable[[str], Any], get_token: Callable[..., str],
) -> dict[str, Any]:
    acme, globex = new_tenant("acme"), new_tenant("globex")
    vins = {}
    with database.session() as session:
        for tenant, seed in (("acme", 1), ("globex", 2)):
            vehicle, _ = provision_vehicle(session, tenant=tenant, model="compact-bev",
                                           region="EU", cloud_key=CLOUD.verify_key,
                                           actor="test", rng=random.Random(seed))
            vins[tenant] = vehicle.vin
    return {"vin": vins["acme"], "globex_vin": vins["globex"],
            "admin": bearer(get_token(acme)), "globex": bearer(get_token(globex))}


GRANT = {"purpose": "repair", "categories": ["diagnostics"], "person": "owner",
         "source": "owner-app", "recipient": "repairer-1", "valid_days": 7}


def test_a_grant_is_given_listed_and_withdrawn(client: TestClient, setup: dict,
                                               database: Database) -> None:
    url = f"/v1/privacy/vehicles/{setup['vin']}/grants"
    made = client.post(url, json=GRANT, headers=setup["admin"])
    assert made.status_code == 201, made.text
    grant = made.json()
    assert grant["status"] == "active" and grant["recipient"] == "repairer-1"
    assert grant["expires_at"] is not None
    listed = client.get(url, headers=setup["admin"]).json()
    assert [g["grant_id"] for g in listed] == [grant["grant_id"]]
    gone = client.post(f"/v1/privacy/grants/{grant['grant_id']}/withdraw",
                       headers=setup["admin"])
    assert gone.status_code == 200 and gone.json()["status"] == "withdrawn"
    with database.session() as session:
        actions = [e.action for e in list_audit(session, "acme", limit=1000)]
    assert actions.count("privacy.consent.give") == 1
    assert actions.count("privacy.consent.withdraw") == 1


@pytest.mark.parametrize(("change", "detail"), [
    ({"purpose": "maintenance"}, "rests on contract"),
    ({"purpose": "marketing"}, "'marketing' is not known"),
    ({"categories": ["location"]}, "may not use location"),
    ({"person": "neighbour"}, "person 'neighbour'"),
    ({"recipient": "bad id!"}, "recipient 'bad id!'"),
    ({"purpose": "owner_access"}, "granted by the vehicle's owner"),
])
def test_a_bad_grant_is_422_and_records_nothing(
    client: TestClient, setup: dict, database: Database, change: dict, detail: str
) -> None:
    url = f"/v1/privacy/vehicles/{setup['vin']}/grants"
    response = client.post(url, json={**GRANT, **change}, headers=setup["admin"])
    assert response.status_code == 422 and detail in response.text
    assert client.get(url, headers=setup["admin"]).json() == []


def test_another_tenants_vehicle_and_grant_are_404(client: TestClient, setup: dict) -> None:
    response = client.post(f"/v1/privacy/vehicles/{setup['globex_vin']}/grants", json=GRANT,
                           headers=setup["admin"])
    assert response.status_code == 404
    theirs = client.post(f"/v1/privacy/vehicles/{setup['globex_vin']}/grants", json=GRANT,
                         headers=setup["globex"]).json()
    stolen = client.post(f"/v1/privacy/grants/{theirs['grant_id']}/withdraw",
                         headers=setup["admin"])
    assert stolen.status_code == 404
    assert client.get(f"/v1/privacy/vehicles/{setup['globex_vin']}/grants",
                      headers=setup["globex"]).json()[0]["status"] == "active"


def test_the_purposes_name_their_basis(client: TestClient, setup: dict) -> None:
    purposes = {p["name"]: p for p in client.get("/v1/privacy/purposes",
                                                 headers=setup["admin"]).json()}
    assert purposes["maintenance"]["basis"] == "contract"
    assert purposes["repair"] == {"name": "repair", "basis": "consent",
                                  "categories": ["diagnostics", "technical"],
                                  "meaning": purposes["repair"]["meaning"],
                                  "by_consent": ["diagnostics", "technical"]}
    # fleet operations: contract for the machine, consent for where the cars are and how driven
    assert purposes["fleet_operations"]["by_consent"] == ["driving_behaviour", "location"]
    assert purposes["maintenance"]["by_consent"] == []
