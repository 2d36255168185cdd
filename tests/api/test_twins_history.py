"""``GET /v1/twins/{vin}/history``: a property over time, read from the telemetry lake by the
tenant's pseudonym of the vehicle — raw, down-sampled, and never across tenants."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

from drivetrain.cloud.fleet import provision_vehicle
from drivetrain.cloud.infra import Database
from drivetrain.cloud.lake import Lake
from drivetrain.cloud.privacy import vehicle_pseudonym
from drivetrain.core.crypto import SigningKey
from drivetrain.core.settings import Settings
from drivetrain.core.vss.privacy import privacy_category_for

LIMIT = "Vehicle.Powertrain.TractionBattery.Charging.ChargeLimit"
T0 = datetime(2026, 2, 1, 8, 0, tzinfo=UTC)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _samples(pseudonym: str, values: list[float]) -> pa.Table:
    """One sample a minute from T0, in one batch."""
    n = len(values)
    category = privacy_category_for(LIMIT)
    return pa.table({
        "vehicle": pa.DictionaryArray.from_arrays(pa.array([0] * n, pa.int32()), pa.array([pseudonym])),
        "path": pa.DictionaryArray.from_arrays(pa.array([0] * n, pa.int16()), pa.array([LIMIT])),
        "ts": pa.array([int((T0 + timedelta(minutes=i)).timestamp()) * 10**9 for i in range(n)],
                       pa.timestamp("ns", tz="UTC")),
        "value": pa.array(values, pa.float64()),
        "text": pa.nulls(n, pa.utf8()),
        "category": pa.DictionaryArray.from_arrays(pa.array([0] * n, pa.int8()), pa.array([category])),
        "batch_id": pa.DictionaryArray.from_arrays(pa.array([0] * n, pa.int32()),
                                                   pa.array([uuid.uuid4().hex])),
    })


@pytest.fixture
def stored(
    settings: Settings, database: Database, new_tenant: Callable[[str], Any],
    new_client: Callable[..., Any], get_token: Callable[..., str],
) -> dict[str, Any]:
    """acme's EU car with six charge-limit samples in the lake; a globex reader."""
    acme, globex = new_tenant("acme"), new_tenant("globex")
    with database.session() as session:
        vin = provision_vehicle(session, tenant="acme", model="compact-bev", region="EU",
                                cloud_key=SigningKey.generate().verify_key, actor="test",
                                rng=random.Random(5))[0].vin
        pseudonym = vehicle_pseudonym(session, "acme", vin)
    with Lake.open(settings) as lake:
        lake.append("EU", "acme", _samples(pseudonym, [90, 90, 80, 80, 80, 85]))
    return {
        "vin": vin,
        "acme": _bearer(get_token(new_client(acme, "read_only"))),
        "globex": _bearer(get_token(new_client(globex, "fleet_operator"))),
    }


def _history(client: TestClient, stored: dict[str, Any], headers: str = "acme", **params: Any) -> Any:
    query = {"path": LIMIT, "start": T0.isoformat(), "end": (T0 + timedelta(hours=1)).isoformat(),
             "purpose": "fleet_operations"}
    return client.get(f"/v1/twins/{stored['vin']}/history", params={**query, **params},
                      headers=stored[headers])


def test_history_returns_each_stored_value_in_its_vss_type(
    client: TestClient, stored: dict[str, Any]
) -> None:
    response = _history(client, stored)
    assert response.status_code == 200, response.text
    points = response.json()["points"]
    assert [p["value"] for p in points] == [90, 90, 80, 80, 80, 85]
    assert all(isinstance(p["value"], int) for p in points)  # ChargeLimit is a uint8
    assert points[0]["ts"].startswith("2026-02-01T08:00:00") and points[0]["samples"] is None


def test_history_down_samples_with_every_and_agg(client: TestClient, stored: dict[str, Any]) -> None:
    body = _history(client, stored, every="3m", agg="max").json()
    assert [(p["value"], p["samples"]) for p in body["points"]] == [(90.0, 3), (85.0, 3)]
    assert body["agg"] == "max" and body["every"] == "3m"


def test_history_of_another_tenants_vehicle_is_not_found(
    client: TestClient, stored: dict[str, Any]
) -> None:
    response = _history(client, stored, headers="globex")
    assert response.status_code == 404 and "not registered" in response.json()["detail"]


@pytest.mark.parametrize(
    ("params", "needle"),
    [({"path": "Vehicle.Nope"}, "unknown VSS signal"), ({"every": "fortnight"}, "every")],
)
def test_bad_history_requests_name_the_problem(
    client: TestClient, stored: dict[str, Any], params: dict[str, str], needle: str
) -> None:
    response = _history(client, stored, **params)
    assert response.status_code == 422 and needle in response.json()["detail"]


def test_history_without_a_purpose_or_outside_it_is_refused(
    client: TestClient, stored: dict[str, Any]
) -> None:
    missing = _history(client, stored, purpose="")
    assert missing.status_code == 422 and "must name its purpose" in missing.json()["detail"]
    location = _history(client, stored, path="Vehicle.CurrentLocation.Latitude",
                        purpose="maintenance")
    assert location.status_code == 403 and "may not read location" in location.json()["detail"]
    unconsented = _history(client, stored, path="Vehicle.CurrentLocation.Latitude",
                           purpose="insurance")
    assert unconsented.status_code == 403 and "no vehicle has consent" in unconsented.text
