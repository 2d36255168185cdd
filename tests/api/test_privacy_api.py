"""``/v1/privacy`` over HTTP: consent round trip, scopes, tenant confinement without an
existence leak, refused input that changes nothing, the audit trail, the category list."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from drivetrain.cloud.fleet import generate_vin, provision_vehicle
from drivetrain.cloud.infra import Database, list_audit
from drivetrain.core.crypto import SigningKey
from drivetrain.core.vss import builtin_catalog

CLOUD = SigningKey.from_seed(b"privacy-api-cloud-key-0000000000")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _vehicle(database: Database, tenant: str, seed: int) -> str:
    with database.session() as session:
        vehicle, _ = provision_vehicle(
            session, tenant=tenant, model="compact-bev", region="EU",
            cloud_key=CLOUD.verify_key, actor="test", rng=random.Random(seed),
        )  # fmt: skip
    return vehicle.vin


@pytest.fixture
def setup(
    database: Database, new_tenant: Callable[[str], Any], new_client: Callable[..., Any],
    get_token: Callable[..., str],
) -> dict[str, Any]:
    """acme (one car; an admin, a read-only client and a fleet operator) and globex (one car)."""
    acme_admin = new_tenant("acme")
    globex_admin = new_tenant("globex")
    return {
        "vin": _vehicle(database, "acme", 1),
        "globex_vin": _vehicle(database, "globex", 2),
        "admin": bearer(get_token(acme_admin)),
        "admin_id": acme_admin.client_id,
        "reader": bearer(get_token(new_client(acme_admin, "read_only"))),
        "operator": bearer(get_token(new_client(acme_admin, "fleet_operator"))),
        "globex_admin": bearer(get_token(globex_admin)),
    }


def _url(vin: str) -> str:
    return f"/v1/privacy/vehicles/{vin}/consent"


def _consent_audit(database: Database, tenant: str) -> list[Any]:
    with database.session() as session:
        return list_audit(session, tenant, action="privacy.consent.set")


def test_vehicle_without_a_record_shows_the_default_consent(client: TestClient, setup: dict) -> None:
    response = client.get(_url(setup["vin"]), headers=setup["reader"])
    assert response.status_code == 200, response.text
    assert response.json() == {
        "vin": setup["vin"], "categories": ["diagnostics", "technical"], "source": "default",
        "updated_at": None,
    }


def test_consent_set_through_the_api_is_read_back_and_replaces_the_previous_one(
    client: TestClient, setup: dict
) -> None:
    vin, admin = setup["vin"], setup["admin"]
    body = {"categories": ["technical", "location", "location"], "source": "driver-app"}
    put = client.put(_url(vin), json=body, headers=admin)
    assert put.status_code == 200, put.text
    assert put.json()["categories"] == ["location", "technical"]
    assert put.json()["source"] == "driver-app" and put.json()["updated_at"] is not None
    sent = put.json()
    job_id, version = sent.pop("job_id"), sent.pop("vehicle_version")
    assert client.get(_url(vin), headers=setup["reader"]).json() == sent
    job = client.get(f"/v1/jobs/{job_id}", headers=admin).json()  # on its way to the car
    assert job["body"]["name"] == "privacy.collection"
    assert job["body"]["args"] == {"categories": ["location", "technical"], "version": version}
    narrowed = client.put(_url(vin), json={"categories": [], "source": "operator"}, headers=admin)
    assert narrowed.status_code == 200, narrowed.text
    got = client.get(_url(vin), headers=setup["reader"]).json()
    assert (got["categories"], got["source"]) == ([], "operator")


def test_every_consent_change_is_audited_with_actor_categories_source_and_request_id(
    client: TestClient, setup: dict, database: Database
) -> None:
    headers = {**setup["admin"], "X-Request-ID": "consent-change-1"}
    body = {"categories": ["cabin", "technical"], "source": "contract"}
    assert client.put(_url(setup["vin"]), json=body, headers=headers).status_code == 200
    [entry] = _consent_audit(database, "acme")
    assert entry.target == f"vehicle:{setup['vin']}" and entry.request_id == "consent-change-1"
    assert dict(entry.details) == {"categories": ["cabin", "technical"], "source": "contract"}
    assert entry.actor == setup["admin_id"]
    audit = client.get("/v1/audit", params={"action": "privacy.consent.set"}, headers=setup["admin"])
    assert [e["target"] for e in audit.json()["entries"]] == [f"vehicle:{setup['vin']}"]


def test_unknown_category_is_refused_naming_it_and_nothing_changes(
    client: TestClient, setup: dict, database: Database
) -> None:
    vin, admin = setup["vin"], setup["admin"]
    client.put(_url(vin), json={"categories": ["location"], "source": "driver-app"}, headers=admin)
    before = client.get(_url(vin), headers=admin).json()
    bad = client.put(
        _url(vin), json={"categories": ["technical", "biometrics"], "source": "driver-app"},
        headers=admin,
    )  # fmt: skip
    assert bad.status_code == 422
    assert "'biometrics'" in bad.json()["detail"] and "driving_behaviour" in bad.json()["detail"]
    assert client.get(_url(vin), headers=admin).json() == before
    assert len(_consent_audit(database, "acme")) == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"categories": ["technical"], "source": "default"}, "body.source"),
        ({"categories": ["technical"], "source": "bad source!"}, "body.source"),
        ({"categories": ["technical"], "source": ""}, "body.source"),
        ({"categories": "technical", "source": "operator"}, "body.categories"),
        ({"categories": ["technical"] * 17, "source": "operator"}, "body.categories"),
        ({"categories": ["technical"], "source": "operator", "tenant": "globex"}, "body.tenant"),
        ({"source": "operator"}, "body.categories"),
    ],
)
def test_malformed_consent_bodies_are_refused_naming_the_field(
    client: TestClient, setup: dict, database: Database, body: dict, field: str
) -> None:
    response = client.put(_url(setup["vin"]), json=body, headers=setup["admin"])
    assert response.status_code == 422, response.text
    assert field in [e["field"] for e in response.json()["errors"]]
    assert client.get(_url(setup["vin"]), headers=setup["admin"]).json()["source"] == "default"
    assert _consent_audit(database, "acme") == []


def test_consent_routes_need_a_token(client: TestClient, setup: dict) -> None:
    body = {"categories": ["technical"], "source": "operator"}
    assert client.get(_url(setup["vin"])).status_code == 401
    assert client.put(_url(setup["vin"]), json=body).status_code == 401
    assert client.get("/v1/privacy/categories").status_code == 401
    forged = client.get(_url(setup["vin"]), headers=bearer("not-a-token"))
    assert forged.status_code == 401


def test_reading_needs_privacy_read_and_setting_needs_privacy_write(
    client: TestClient, setup: dict, database: Database
) -> None:
    vin, body = setup["vin"], {"categories": ["location", "technical"], "source": "operator"}
    assert client.get(_url(vin), headers=setup["operator"]).status_code == 403
    assert client.put(_url(vin), json=body, headers=setup["operator"]).status_code == 403
    refused = client.put(_url(vin), json=body, headers=setup["reader"])
    assert refused.status_code == 403 and "privacy:write" in refused.json()["detail"]
    assert client.get(_url(vin), headers=setup["reader"]).json()["source"] == "default"
    assert _consent_audit(database, "acme") == []


def test_another_tenants_vehicle_answers_404_like_an_unregistered_vin_and_is_not_changed(
    client: TestClient, setup: dict, database: Database
) -> None:
    foreign, globex = setup["vin"], setup["globex_admin"]
    unregistered = generate_vin(random.Random(99))
    body = {"categories": ["location", "technical"], "source": "driver-app"}
    for vin in (foreign, unregistered):
        read = client.get(_url(vin), headers=globex)
        write = client.put(_url(vin), json=body, headers=globex)
        assert (read.status_code, write.status_code) == (404, 404)
        assert read.json()["detail"] == write.json()["detail"] == f"vehicle {vin} is not registered"
    assert client.get(_url(foreign), headers=setup["admin"]).json()["source"] == "default"
    assert _consent_audit(database, "acme") == [] and _consent_audit(database, "globex") == []
    own = client.put(_url(setup["globex_vin"]), json=body, headers=globex)
    assert own.status_code == 200, own.text


def test_malformed_vin_is_refused_as_bad_input(client: TestClient, setup: dict) -> None:
    response = client.get(_url("NOT-A-VIN"), headers=setup["admin"])
    assert response.status_code == 422 and "NOT-A-VIN" in response.json()["detail"]
    too_long = client.get(_url("X" * 40), headers=setup["admin"])
    assert too_long.status_code == 422


def test_categories_lists_the_five_with_meanings_and_examples_of_that_category(
    client: TestClient, setup: dict
) -> None:
    response = client.get("/v1/privacy/categories", headers=setup["operator"])
    assert response.status_code == 200, response.text
    categories = response.json()
    assert [c["name"] for c in categories] == [
        "location", "driving_behaviour", "cabin", "diagnostics", "technical",
    ]  # fmt: skip
    catalog = builtin_catalog()
    for category in categories:
        assert category["meaning"] and category["examples"]
        assert all(catalog.get(p).privacy_category == category["name"] for p in category["examples"])
        assert category["signal_count"] == len(catalog.in_category(category["name"]))
    assert {c["name"] for c in categories if c["default_consent"]} == {"technical", "diagnostics"}
    assert "Vehicle.CurrentLocation.Latitude" in categories[0]["examples"]
