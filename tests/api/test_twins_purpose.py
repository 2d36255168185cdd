"""Purpose binding on twins' current state (``GET /v1/twins``, ``/v1/twins/{vin}``, the change
stream): personal categories are withheld — and the answer says why — unless the request names a
purpose whose basis or consent covers them; every such read is audited; the attacks (no purpose,
a purpose without consent, another tenant, a third party without a grant) are refused."""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from drivetrain.cloud.fleet import provision_vehicle
from drivetrain.cloud.infra import Database, list_audit
from drivetrain.cloud.privacy.state_reads import PERSONAL_CATEGORIES, StateView
from drivetrain.cloud.twins import apply_reported, hub_for
from drivetrain.cloud.twins.api import _change_event
from drivetrain.cloud.twins.feed import TwinChange
from drivetrain.core.crypto import SigningKey

LAT = "Vehicle.CurrentLocation.Latitude"
SPEED = "Vehicle.Speed"
SOC = "Vehicle.Powertrain.TractionBattery.StateOfCharge.Current"  # technical
DTC = "Vehicle.Diagnostics.DTCCount"  # diagnostics
CLOUD = SigningKey.from_seed(b"twins-purpose-cloud-key-00000000")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def setup(
    database: Database, new_tenant: Callable[[str], Any], new_client: Callable[..., Any],
    get_token: Callable[..., str],
) -> dict[str, Any]:
    """acme: two cars reporting position, speed, charge and faults; globex: one car."""
    acme, globex = new_tenant("acme"), new_tenant("globex")
    rng = random.Random(23)
    vins: dict[str, list[str]] = {}
    with database.session() as session:
        for tenant, count in (("acme", 2), ("globex", 1)):
            vins[tenant] = [provision_vehicle(session, tenant=tenant, model="compact-bev",
                                              region="EU", cloud_key=CLOUD.verify_key,
                                              actor="test", rng=rng)[0].vin
                            for _ in range(count)]
        now = datetime.now(UTC)
        apply_reported(session, {vin: {LAT: (48.1 + i, now), SPEED: (42.0, now),
                                       SOC: (64.5, now), DTC: (1, now)}
                                 for i, vin in enumerate(vins["acme"] + vins["globex"])})
    third = new_client(acme, "third_party_app")
    return {"acme": vins["acme"], "globex": vins["globex"], "admin": bearer(get_token(acme)),
            "reader": bearer(get_token(new_client(acme, "read_only"))),
            "globex_reader": bearer(get_token(new_client(globex, "read_only"))),
            "third": bearer(get_token(third)), "third_id": third.client_id}


def _grant(client: TestClient, setup: dict, vin: str, **grant: Any) -> None:
    body = {"person": "fleet", "source": "fleet-portal", **grant}
    made = client.post(f"/v1/privacy/vehicles/{vin}/grants", json=body, headers=setup["admin"])
    assert made.status_code == 201, made.text


def _actions(database: Database, action: str) -> list[dict[str, Any]]:
    with database.session() as session:
        return [dict(e.details) | {"target": e.target}
                for e in list_audit(session, "acme", limit=1000) if e.action == action]


def test_without_a_purpose_personal_categories_are_withheld_and_technical_ones_shown(
    client: TestClient, setup: dict, database: Database
) -> None:
    body = client.get(f"/v1/twins/{setup['acme'][0]}", headers=setup["reader"]).json()
    assert set(body["reported"]) == {SOC, DTC}
    assert set(body["withheld"]) == PERSONAL_CATEGORIES
    assert "name a purpose" in body["withheld"]["location"] and body["purpose"] is None
    assert _actions(database, "privacy.read") == []  # nothing personal was read


def test_a_purpose_shows_location_only_where_consent_covers_it_and_is_audited(
    client: TestClient, setup: dict, database: Database
) -> None:
    granted, other = setup["acme"]
    _grant(client, setup, granted, purpose="fleet_operations", categories=["location"])
    params = {"purpose": "fleet_operations"}
    shown = client.get(f"/v1/twins/{granted}", params=params, headers=setup["reader"]).json()
    assert LAT in shown["reported"] and SPEED not in shown["reported"]
    assert set(shown["withheld"]) == {"driving_behaviour", "cabin"}
    assert "fleet_operations" in shown["withheld"]["driving_behaviour"]
    hidden = client.get(f"/v1/twins/{other}", params=params, headers=setup["reader"]).json()
    assert LAT not in hidden["reported"] and SOC in hidden["reported"]
    assert hidden["withheld"]["location"] == (
        f"no active consent of vehicle {other} covers purpose 'fleet_operations' for location")
    reads = _actions(database, "privacy.read")
    assert [(r["target"], r["allowed"]) for r in reads] == [
        (f"twins:state:{granted}", ["location"]), (f"twins:state:{other}", [])]


def test_a_purpose_that_may_not_use_a_category_says_so(client: TestClient, setup: dict) -> None:
    body = client.get(f"/v1/twins/{setup['acme'][0]}", params={"purpose": "maintenance"},
                      headers=setup["reader"]).json()
    assert body["withheld"]["location"] == "purpose 'maintenance' (contract) may not use location"


def test_an_unknown_purpose_is_refused_and_the_refusal_audited(
    client: TestClient, setup: dict, database: Database
) -> None:
    response = client.get(f"/v1/twins/{setup['acme'][0]}", params={"purpose": "marketing"},
                          headers=setup["reader"])
    assert response.status_code == 422 and "'marketing' is not known" in response.json()["detail"]
    assert [r["error"] for r in _actions(database, "privacy.read.refused")] == [
        "PurposeRequiredError"]


def test_another_tenants_twin_is_404_whatever_the_purpose(
    client: TestClient, setup: dict
) -> None:
    for purpose in (None, "fleet_operations", "insurance"):
        params = {"purpose": purpose} if purpose else {}
        response = client.get(f"/v1/twins/{setup['acme'][0]}", params=params,
                              headers=setup["globex_reader"])
        assert response.status_code == 404


def test_a_query_over_location_needs_a_purpose_and_matches_only_covered_vehicles(
    client: TestClient, setup: dict, database: Database
) -> None:
    granted, _ = setup["acme"]
    where = {"query": f'reported."{LAT}" > 40'}
    refused = client.get("/v1/twins", params=where, headers=setup["reader"])
    assert refused.status_code == 422 and "must name its purpose" in refused.json()["detail"]
    outside = client.get("/v1/twins", params={**where, "purpose": "maintenance"},
                         headers=setup["reader"])
    assert outside.status_code == 403 and "may not read location" in outside.json()["detail"]
    _grant(client, setup, granted, purpose="fleet_operations", categories=["location"])
    page = client.get("/v1/twins", params={**where, "purpose": "fleet_operations"},
                      headers=setup["reader"]).json()
    assert [t["vin"] for t in page["twins"]] == [granted] and page["total"] == 1
    status = client.get("/v1/twins/reconciliation", params=where, headers=setup["reader"])
    assert status.status_code == 422
    assert len(_actions(database, "privacy.read.refused")) == 3
    # a query over technical signals needs nothing
    plain = client.get("/v1/twins", params={"query": f'reported."{SOC}" > 50'},
                       headers=setup["reader"]).json()
    assert plain["total"] == 2


def test_a_third_party_without_a_grant_is_refused_and_with_one_sees_only_its_grant(
    client: TestClient, setup: dict, database: Database
) -> None:
    vin, other = setup["acme"]
    third = setup["third"]
    none = client.get(f"/v1/twins/{vin}", headers=third)
    assert none.status_code == 422 and "third-party app" in none.json()["detail"]
    contract = client.get(f"/v1/twins/{vin}", params={"purpose": "fleet_operations"},
                          headers=third)
    assert contract.status_code == 403 and "may not read for 'fleet_operations'" in contract.text
    ungranted = client.get(f"/v1/twins/{vin}", params={"purpose": "repair"}, headers=third)
    assert ungranted.status_code == 403
    assert f"no active grant to {setup['third_id']}" in ungranted.json()["detail"]
    _grant(client, setup, vin, purpose="repair", categories=["diagnostics"],
           recipient=setup["third_id"], person="owner", source="owner-app")
    body = client.get(f"/v1/twins/{vin}", params={"purpose": "repair"}, headers=third).json()
    assert set(body["reported"]) == {DTC}
    assert set(body["withheld"]) == {"location", "driving_behaviour", "cabin", "technical"}
    listed = client.get("/v1/twins", params={"purpose": "repair"}, headers=third).json()
    assert [t["vin"] for t in listed["twins"]] == [vin]
    assert client.get(f"/v1/twins/{other}", params={"purpose": "repair"},
                      headers=third).status_code == 403
    refusals = [r["error"] for r in _actions(database, "privacy.read.refused")]
    assert refusals == ["PurposeRequiredError", "PurposeNotAllowedError",
                        "PurposeNotAllowedError", "PurposeNotAllowedError"]


def test_a_change_event_leaves_out_withheld_paths_and_drops_a_reported_event_left_empty() -> None:
    view = StateView(None, None, PERSONAL_CATEGORIES)
    now = datetime.now(UTC)
    mixed = _change_event(TwinChange("reported", "V", "acme", now, (LAT, SOC)), view)
    assert mixed is not None and mixed[1]["paths"] == [SOC]
    assert set(mixed[1]["withheld"]) == {"location"}
    assert _change_event(TwinChange("reported", "V", "acme", now, (LAT, SPEED)), view) is None
    desired = _change_event(TwinChange("desired", "V", "acme", now, (SPEED,), version=2), view)
    assert desired is not None and desired[1]["paths"] == [SPEED]  # the operator's own write


def test_the_change_stream_without_a_purpose_carries_no_location(
    client: TestClient, setup: dict, database: Database
) -> None:
    vin = setup["acme"][0]
    hub = hub_for(database.engine)
    before = hub.subscriber_count
    out: list[str] = []

    def read() -> None:
        response = client.get("/v1/twins/changes", headers=setup["reader"],
                              params={"max_events": 2, "timeout_s": 20, "kind": "reported"})
        out.append(response.text)

    reader = threading.Thread(target=read)
    reader.start()
    deadline = time.monotonic() + 10
    while hub.subscriber_count == before and time.monotonic() < deadline:
        time.sleep(0.02)
    for values in ({LAT: 50.0, SOC: 60.0}, {LAT: 51.0}, {SOC: 59.0}):
        with database.session() as session:
            apply_reported(session, {vin: {p: (v, datetime.now(UTC)) for p, v in values.items()}})
    reader.join(30)
    data = [json.loads(block.split("data: ", 1)[1]) for block in out[0].split("\n\n")
            if block.startswith("id:")]
    assert [d["paths"] for d in data] == [[SOC], [SOC]]
    assert "location" in data[0]["withheld"] and LAT not in out[0]
