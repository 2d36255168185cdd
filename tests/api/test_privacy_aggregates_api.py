"""``/v1/privacy/aggregates/locations`` and ``/v1/privacy/budget`` over HTTP: only vehicles the
purpose covers are counted, groups under k are suppressed, a differentially private release is
charged to the tenant's budget and refused once it is spent, and tenants never mix."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from location_samples import BERLIN, MUNICH, T0, bearer, positions

from drivetrain.cloud.fleet import provision_vehicle
from drivetrain.cloud.infra import Database, list_audit
from drivetrain.cloud.lake import Lake
from drivetrain.cloud.privacy import give_consent, vehicle_pseudonym
from drivetrain.core.crypto import SigningKey
from drivetrain.core.settings import Settings

WINDOW = {"start": T0.isoformat(), "end": (T0 + timedelta(hours=1)).isoformat()}


@pytest.fixture
def fleet(
    settings: Settings, database: Database, new_tenant: Callable[[str], Any],
    new_client: Callable[..., Any], get_token: Callable[..., str],
) -> dict[str, Any]:
    """acme: 6 consenting cars in Munich, 2 in Berlin, 3 in Munich without consent."""
    acme, globex = new_tenant("acme"), new_tenant("globex")
    rng = random.Random(7)
    cars: dict[str, tuple[float, float]] = {}
    with database.session() as session:
        for place, count, consents in ((MUNICH, 6, True), (BERLIN, 2, True), (MUNICH, 3, False)):
            for _ in range(count):
                vin = provision_vehicle(session, tenant="acme", model="compact-bev", region="EU",
                                        cloud_key=SigningKey.generate().verify_key,
                                        actor="test", rng=rng)[0].vin
                cars[vehicle_pseudonym(session, "acme", vin)] = place
                if consents:
                    give_consent(session, tenant="acme", vin=vin, purpose="fleet_operations",
                                 categories=["location"], person="fleet", source="contract",
                                 actor="test")
    with Lake.open(settings) as lake:
        lake.append("EU", "acme", positions(cars))
    return {"acme": bearer(get_token(new_client(acme, "read_only"))),
            "globex": bearer(get_token(new_client(globex, "read_only")))}


def _aggregate(client: TestClient, headers: dict, **params: Any) -> Any:
    return client.get("/v1/privacy/aggregates/locations", headers=headers,
                      params={**WINDOW, "purpose": "fleet_operations", **params})


def test_only_covered_vehicles_count_and_groups_under_k_are_suppressed(
    client: TestClient, fleet: dict, database: Database
) -> None:
    answer = _aggregate(client, fleet["acme"])
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["k"] == 5 and body["method"] == "k_anonymity"
    assert [(g["cell"], g["vehicles"], g["samples"]) for g in body["groups"]] == [
        ("48.13,11.58", 6, 60)]  # the 3 cars without consent are not counted
    assert body["suppressed"] == 1  # Berlin: 2 cars
    with database.session() as session:
        reads = [e for e in list_audit(session, "acme", limit=100) if e.action == "privacy.read"]
    assert [e.target for e in reads] == ["privacy:aggregate"]
    stricter = _aggregate(client, fleet["acme"], k=7).json()
    assert stricter["groups"] == [] and stricter["suppressed"] == 2


@pytest.mark.parametrize(("params", "status", "detail"), [
    ({"purpose": ""}, 422, "must name its purpose"),
    ({"purpose": "maintenance"}, 403, "may not read location"),
    ({"k": 3}, 422, "below this installation's minimum group of 5"),
    ({"method": "differential_privacy", "epsilon": 1.0}, 422, "needs epsilon"),
    ({"method": "differential_privacy", "epsilon": 1.0, "bbox": "48,11,49"}, 422, "bbox"),
])
def test_bad_or_unbound_requests_are_refused(
    client: TestClient, fleet: dict, params: dict, status: int, detail: str
) -> None:
    answer = _aggregate(client, fleet["acme"], **params)
    assert answer.status_code == status and detail in answer.json()["detail"], answer.text


def test_a_dp_release_is_charged_and_refused_once_the_budget_is_spent(
    client: TestClient, fleet: dict, database: Database
) -> None:
    dp = {"method": "differential_privacy", "bbox": "48.0,11.4,48.3,11.7", "cell_deg": 0.05,
          "max_groups_per_vehicle": 1}
    first = _aggregate(client, fleet["acme"], epsilon=6.0, **dp)
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["epsilon"] == 6.0 and body["noise_scale"] == pytest.approx(1 / 6)
    assert body["budget"] == {"tenant": "acme", "total": 10.0, "spent": 6.0, "left": 4.0,
                              "releases": 1}
    [munich] = [g for g in body["groups"] if g["cell"] == "48.10,11.55"]
    assert abs(munich["vehicles"] - 6) <= 3 and munich["samples"] is None
    refused = _aggregate(client, fleet["acme"], epsilon=6.0, **dp)
    assert refused.status_code == 403
    assert "privacy budget of tenant 'acme' exhausted" in refused.json()["detail"]
    assert "4 of 10 is left" in refused.json()["detail"]
    budget = client.get("/v1/privacy/budget", headers=fleet["acme"]).json()
    assert (budget["spent"], budget["releases"]) == (6.0, 1)
    assert client.get("/v1/privacy/budget", headers=fleet["globex"]).json()["spent"] == 0.0
    with database.session() as session:
        spends = [e for e in list_audit(session, "acme", limit=100)
                  if e.action == "privacy.budget.spend"]
    assert len(spends) == 1 and spends[0].details["epsilon"] == 6.0


def test_another_tenant_reads_nothing_of_acmes_fleet(client: TestClient, fleet: dict) -> None:
    answer = _aggregate(client, fleet["globex"])  # globex: no vehicle consented to anything
    assert answer.status_code == 403
    assert "no vehicle has consent for it" in answer.json()["detail"]
