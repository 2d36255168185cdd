"""``/v1/privacy/requests`` over HTTP: an access archive downloaded as a zip, an erasure that
empties the twin, the deadline shown; another tenant's vehicle or request is 404, and a
client without the privacy scopes is refused."""

from __future__ import annotations

import io
import json
import random
import zipfile
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from drivetrain.cloud.fleet import provision_vehicle
from drivetrain.cloud.infra import Database
from drivetrain.core.crypto import SigningKey

CLOUD = SigningKey.from_seed(b"privacy-requests-cloud-key-00000")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def setup(
    database: Database, new_tenant: Callable[[str], Any], new_client: Callable[..., Any],
    get_token: Callable[..., str],
) -> dict[str, Any]:
    acme, globex = new_tenant("acme"), new_tenant("globex")
    vins = {}
    with database.session() as session:
        for tenant, seed in (("acme", 1), ("globex", 2)):
            vehicle, _ = provision_vehicle(session, tenant=tenant, model="compact-bev",
                                           region="EU", cloud_key=CLOUD.verify_key,
                                           actor="test", rng=random.Random(seed))
            vins[tenant] = vehicle.vin
    return {"vin": vins["acme"], "globex_vin": vins["globex"], "admin": bearer(get_token(acme)),
            "globex": bearer(get_token(globex)),
            "app": bearer(get_token(new_client(acme, "third_party_app")))}


def test_an_access_archive_is_downloaded_as_a_zip_with_its_manifest(
    client: TestClient, setup: dict
) -> None:
    made = client.post("/v1/privacy/requests", json={"kind": "access", "vins": [setup["vin"]]},
                       headers=setup["admin"])
    assert made.status_code == 201, made.text
    request = made.json()
    assert request["status"] == "done" and request["overdue"] is False
    assert "archive" not in request["outcome"] and request["outcome"]["rows"] >= 1
    archive = client.get(f"/v1/privacy/requests/{request['request_id']}/archive",
                         headers=setup["admin"])
    assert archive.status_code == 200 and archive.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(archive.content)) as bundle:
        manifest = json.loads(bundle.read("manifest.json"))
        vehicles = json.loads(bundle.read("data/fleet_vehicles.json"))
    assert manifest["subject"] == "vehicles" and manifest["vins"] == [setup["vin"]]
    assert [v["vin"] for v in vehicles] == [setup["vin"]]
    listed = client.get("/v1/privacy/requests", headers=setup["admin"]).json()
    assert [r["request_id"] for r in listed] == [request["request_id"]]


def test_an_erasure_request_removes_the_vehicle(client: TestClient, setup: dict) -> None:
    made = client.post("/v1/privacy/requests", json={"kind": "erasure", "vins": [setup["vin"]]},
                       headers=setup["admin"])
    assert made.status_code == 201, made.text
    assert made.json()["outcome"]["state_rows"]["fleet_vehicles"] == 1
    assert setup["vin"] not in made.text  # the register keeps the pseudonym only
    assert client.get(f"/v1/privacy/vehicles/{setup['vin']}/consent",
                      headers=setup["admin"]).status_code == 404


def test_another_tenants_vehicle_and_request_are_404(client: TestClient, setup: dict) -> None:
    refused = client.post("/v1/privacy/requests",
                          json={"kind": "erasure", "vins": [setup["globex_vin"]]},
                          headers=setup["admin"])
    assert refused.status_code == 404
    theirs = client.post("/v1/privacy/requests",
                         json={"kind": "access", "vins": [setup["globex_vin"]]},
                         headers=setup["globex"]).json()
    for suffix in ("", "/archive"):
        stolen = client.get(f"/v1/privacy/requests/{theirs['request_id']}{suffix}",
                            headers=setup["admin"])
        assert stolen.status_code == 404


def test_a_third_party_app_cannot_open_or_read_requests(client: TestClient, setup: dict) -> None:
    body = {"kind": "access", "vins": [setup["vin"]]}
    assert client.post("/v1/privacy/requests", json=body, headers=setup["app"]).status_code == 403
    assert client.get("/v1/privacy/requests", headers=setup["app"]).status_code == 403


@pytest.mark.parametrize("body", [
    {"kind": "sell", "vins": ["DTVJETH88T571PG8B"]},
    {"kind": "access", "vins": []},
    {"kind": "access", "vins": ["X" * 18]},
    {"kind": "access", "vins": ["DTVJETH88T571PG8B"], "extra": 1},
])
def test_a_malformed_request_is_422(client: TestClient, setup: dict, body: dict) -> None:
    response = client.post("/v1/privacy/requests", json=body, headers=setup["admin"])
    assert response.status_code == 422
    assert client.get("/v1/privacy/requests", headers=setup["admin"]).json() == []
