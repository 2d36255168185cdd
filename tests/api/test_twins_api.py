"""``/v1/twins`` over HTTP: ETag/If-Match, 409 with both versions, queries, bulk writes,
ECU inventory, change stream — and a tenant's token never reaching another tenant's twins."""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from drivetrain.cloud.fleet import provision_vehicle
from drivetrain.cloud.infra import Database
from drivetrain.cloud.twins import apply_reported, hub_for
from drivetrain.core.crypto import SigningKey

LIMIT = "Vehicle.Powertrain.TractionBattery.Charging.ChargeLimit"
SOH = "Vehicle.Powertrain.TractionBattery.StateOfHealth"
CLOUD = SigningKey.from_seed(b"twins-api-cloud-key-000000000000")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _vehicles(database: Database, tenant: str, regions: list[str], seed: int) -> list[str]:
    rng = random.Random(seed)
    with database.session() as session:
        return [
            provision_vehicle(session, tenant=tenant, model="compact-bev", region=region,
                              cloud_key=CLOUD.verify_key, actor="test", rng=rng)[0].vin
            for region in regions
        ]


@pytest.fixture
def setup(
    database: Database, new_tenant: Callable[[str], Any], new_client: Callable[..., Any],
    get_token: Callable[..., str],
) -> dict[str, object]:
    """Tenants acme (2 EU, 1 US car; an operator and a read-only client) and globex (1 car)."""
    acme_admin = new_tenant("acme")
    globex_admin = new_tenant("globex")
    return {
        "acme": _vehicles(database, "acme", ["EU", "EU", "US"], 1),
        "globex": _vehicles(database, "globex", ["EU"], 2),
        "operator": bearer(get_token(new_client(acme_admin, "fleet_operator"))),
        "reader": bearer(get_token(new_client(acme_admin, "read_only"))),
        "globex_operator": bearer(get_token(new_client(globex_admin, "fleet_operator"))),
    }


def test_get_twin_carries_its_version_as_etag(client: TestClient, setup: dict) -> None:
    vin = setup["acme"][0]
    response = client.get(f"/v1/twins/{vin}", headers=setup["reader"])
    assert response.status_code == 200, response.text
    body = response.json()
    assert response.headers["etag"] == '"0"' and body["version"] == 0
    assert (body["vin"], body["tenant"], body["region"]) == (vin, "acme", "EU")
    assert body["delta"] == {"version": 0, "values": {}, "expires_at": None}


def test_if_match_write_flow_428_then_200_then_409_with_both_versions(
    client: TestClient, setup: dict
) -> None:
    vin, headers = setup["acme"][0], setup["operator"]
    body = {"values": {LIMIT: 80}}
    missing = client.patch(f"/v1/twins/{vin}/desired", json=body, headers=headers)
    assert missing.status_code == 428 and "If-Match" in missing.json()["detail"]
    ok = client.patch(f"/v1/twins/{vin}/desired", json=body, headers={**headers, "If-Match": '"0"'})
    assert ok.status_code == 200, ok.text
    assert ok.headers["etag"] == '"1"' and ok.json()["desired"] == {LIMIT: 80}
    assert ok.json()["items"][0]["status"] == "pending" and ok.json()["delta"]["values"] == {LIMIT: 80}
    stale = client.patch(
        f"/v1/twins/{vin}/desired", json={"values": {LIMIT: 60}}, headers={**headers, "If-Match": '"0"'}
    )
    assert stale.status_code == 409
    problem = stale.json()
    assert (problem["current_version"], problem["given_version"]) == (1, 0)
    assert "version 1, not 0" in problem["detail"] and stale.headers["etag"] == '"1"'
    assert client.get(f"/v1/twins/{vin}", headers=headers).json()["desired"] == {LIMIT: 80}


def test_put_replaces_and_star_overwrites_whatever_is_current(client: TestClient, setup: dict) -> None:
    vin, headers = setup["acme"][0], setup["operator"]
    temp = "Vehicle.Cabin.HVAC.Station.Row1.Driver.Temperature"
    client.patch(f"/v1/twins/{vin}/desired", json={"values": {LIMIT: 80, temp: 20.5}},
                 headers={**headers, "If-Match": "*"})
    put = client.put(f"/v1/twins/{vin}/desired", json={"values": {temp: 22.0}},
                     headers={**headers, "If-Match": '"1"'})
    assert put.status_code == 200 and put.json()["desired"] == {temp: 22.0}


@pytest.mark.parametrize(
    ("values", "if_match", "needle"),
    [
        ({"Vehicle.Speed": 10}, '"0"', "is a VSS sensor"),
        ({LIMIT: 180}, '"0"', "outside [0, 100]"),
        ({"Vehicle.Nope": 1}, '"0"', "unknown VSS signal"),
        ({LIMIT: 80}, 'W/"0"', "not an entity tag"),
        ({LIMIT: 80}, '"0", "1"', "not an entity tag"),
    ],
)
def test_bad_writes_are_422_naming_the_problem(
    client: TestClient, setup: dict, values: dict, if_match: str, needle: str
) -> None:
    vin = setup["acme"][0]
    response = client.patch(f"/v1/twins/{vin}/desired", json={"values": values},
                            headers={**setup["operator"], "If-Match": if_match})
    assert response.status_code == 422 and needle in response.json()["detail"]
    assert client.get(f"/v1/twins/{vin}", headers=setup["reader"]).json()["version"] == 0


def test_read_only_clients_cannot_write_desired_state(client: TestClient, setup: dict) -> None:
    response = client.patch(f"/v1/twins/{setup['acme'][0]}/desired", json={"values": {LIMIT: 80}},
                            headers={**setup["reader"], "If-Match": '"0"'})
    assert response.status_code == 403 and "fleet:write" in response.json()["detail"]
    assert client.get("/v1/twins").status_code == 401


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/v1/twins/{vin}", None),
        ("GET", "/v1/twins/{vin}/delta", None),
        ("GET", "/v1/twins/{vin}/ecus", None),
        ("GET", f"/v1/twins/{{vin}}/history?path={SOH}", None),
        ("PATCH", "/v1/twins/{vin}/desired", {"values": {LIMIT: 10}}),
        ("PUT", "/v1/twins/{vin}/desired", {"values": {LIMIT: 10}}),
        ("PUT", "/v1/twins/{vin}/ecus/BMS", {"software_version": "9.9.9"}),
        ("DELETE", "/v1/twins/{vin}/ecus/BMS", None),
    ],
)
def test_cross_tenant_access_is_refused_as_not_found(
    client: TestClient, setup: dict, method: str, path: str, body: dict | None
) -> None:
    foreign, missing = setup["globex"][0], "DTVAAAAAA1AAAAAAA"
    headers = {**setup["operator"], "If-Match": "*"}
    seen = client.request(method, path.format(vin=foreign), json=body, headers=headers)
    unknown = client.request(method, path.format(vin=missing), json=body, headers=headers)
    assert seen.status_code == unknown.status_code == 404
    assert seen.json()["detail"].replace(foreign, "X") == unknown.json()["detail"].replace(missing, "X")
    globex = client.get(f"/v1/twins/{foreign}", headers=setup["globex_operator"]).json()
    assert globex["version"] == 0 and globex["ecus"] == []


def test_queries_and_bulk_writes_stay_inside_the_callers_tenant(
    client: TestClient, setup: dict
) -> None:
    listed = client.get("/v1/twins", params={"query": 'region == "EU"'}, headers=setup["reader"])
    assert listed.status_code == 200
    assert {t["vin"] for t in listed.json()["twins"]} == set(setup["acme"][:2])
    bulk = client.post("/v1/twins/desired", json={"query": 'region == "EU"', "values": {LIMIT: 90}},
                       headers=setup["operator"])
    assert bulk.status_code == 200 and bulk.json()["matched"] == 2
    globex = client.get(f"/v1/twins/{setup['globex'][0]}", headers=setup["globex_operator"]).json()
    assert globex["desired"] == {}
    summary = client.get("/v1/twins/reconciliation", params={"query": 'region == "EU"', "path": LIMIT},
                         headers=setup["reader"]).json()
    assert (summary["twins"], summary["pending"], summary["converged"]) == (2, 2, 0)


def test_invalid_query_syntax_is_422_pointing_at_the_token(client: TestClient, setup: dict) -> None:
    response = client.get("/v1/twins", params={"query": 'region == "EU" and and'},
                          headers=setup["reader"])
    assert response.status_code == 422
    assert "column 20" in response.json()["detail"] and "'and'" in response.json()["detail"]


def test_pagination_through_the_api(client: TestClient, setup: dict) -> None:
    first = client.get("/v1/twins", params={"limit": 2}, headers=setup["reader"]).json()
    second = client.get("/v1/twins", params={"limit": 2, "cursor": first["next_cursor"]},
                        headers=setup["reader"]).json()
    assert first["total"] == second["total"] == 3 and second["next_cursor"] is None
    assert [t["vin"] for t in first["twins"] + second["twins"]] == sorted(setup["acme"])


def test_ecu_inventory_is_set_listed_queried_and_removed(client: TestClient, setup: dict) -> None:
    vin, headers = setup["acme"][2], setup["operator"]
    put = client.put(f"/v1/twins/{vin}/ecus/BMS", json={"hardware_id": "HW-9", "software_version": "2.3.0"},
                     headers=headers)
    assert put.status_code == 200 and put.json()["source"] == "api"
    bad = client.put(f"/v1/twins/{vin}/ecus/BMS", json={"software_version": "latest"}, headers=headers)
    assert bad.status_code == 422 and "not a version" in bad.json()["detail"]
    old = client.get("/v1/twins", params={"query": 'software."BMS" < "2.4.0"'}, headers=headers)
    assert [t["vin"] for t in old.json()["twins"]] == [vin]
    assert client.delete(f"/v1/twins/{vin}/ecus/BMS", headers=headers).status_code == 204
    assert client.get(f"/v1/twins/{vin}/ecus", headers=headers).json() == []


def _read_stream(client: TestClient, headers: dict, params: dict, out: list[str]) -> None:
    response = client.get("/v1/twins/changes", params=params, headers=headers)
    out.append(response.text)


def test_change_stream_sends_only_the_selected_twins_changes(
    app: FastAPI, client: TestClient, database: Database, setup: dict
) -> None:
    eu, us = setup["acme"][0], setup["acme"][2]
    hub = hub_for(database.engine)
    before = hub.subscriber_count
    out: list[str] = []
    reader = threading.Thread(target=_read_stream, args=(
        client, setup["reader"], {"query": 'region == "EU"', "max_events": 2, "timeout_s": 20}, out))
    reader.start()
    deadline = time.monotonic() + 10
    while hub.subscriber_count == before and time.monotonic() < deadline:
        time.sleep(0.02)
    now = datetime.now(UTC)
    with database.session() as session:
        apply_reported(session, {us: {SOH: (90.0, now)}, setup["globex"][0]: {SOH: (91.0, now)}})
    with database.session() as session:
        apply_reported(session, {eu: {SOH: (80.0, now)}})
    client.patch(f"/v1/twins/{eu}/desired", json={"values": {LIMIT: 70}},
                 headers={**setup["operator"], "If-Match": '"0"'})
    reader.join(30)
    events = [block for block in out[0].split("\n\n") if block.startswith("id:")]
    parsed = [
        (line.split(": ", 1)[1], json.loads(block.split("data: ", 1)[1]))
        for block in events for line in block.splitlines() if line.startswith("event:")
    ]
    assert [(kind, data["vin"]) for kind, data in parsed] == [("reported", eu), ("desired", eu)]
    assert parsed[0][1]["paths"] == [SOH] and parsed[1][1]["version"] == 1


def test_change_stream_refuses_a_bad_query_before_streaming(client: TestClient, setup: dict) -> None:
    response = client.get("/v1/twins/changes", params={"query": "region =="}, headers=setup["reader"])
    assert response.status_code == 422 and "column" in response.json()["detail"]


def test_openapi_documents_the_twins_routes(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/twins", "/v1/twins/{vin}", "/v1/twins/{vin}/desired", "/v1/twins/desired",
            "/v1/twins/changes", "/v1/twins/{vin}/history"} <= set(paths)
