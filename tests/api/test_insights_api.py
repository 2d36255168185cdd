"""``/v1/insights`` over HTTP: models and cards, scoring the lake, alerts and a vehicle's
predictions, service centres, appointments the driver accepts or moves, and charging plans —
each tenant seeing only its own, each route behind its scopes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from insights_fleet import FleetLake, fill_tenant

from drivetrain.cloud.infra import Database
from drivetrain.cloud.insights.registry import ModelCard, ModelRegistry
from drivetrain.cloud.insights.service import store_run, vins_by_pseudonym
from drivetrain.cloud.insights.training import (
    ComponentPrediction,
    health_paths,
    load_component_events,
    train_maintenance,
)
from drivetrain.cloud.lake import Lake
from drivetrain.cloud.privacy import pseudonymiser
from drivetrain.core.settings import Settings

pytest.importorskip("lightgbm")
Creds = Any  # the conftest's client credentials


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}

pytest.importorskip("ortools")


@pytest.fixture
def trained(settings: Settings, database: Database, client: TestClient, tmp_path: Path) -> FleetLake:
    """Tenant ``default``: a simulated fleet in the lake and a maintenance model trained on it."""
    with Lake.open(settings) as lake:
        fleet = fill_tenant(database, lake, "default", tmp_path / "run")
        signals = lake.signals("default", None, health_paths(), fleet.start - timedelta(minutes=5),
                               fleet.end + timedelta(minutes=5), every="5m")
    with database.session() as session:
        vehicle_of = {vin: p for p, vin in vins_by_pseudonym(session, "default").items()}
    card, artifact = train_maintenance(signals, load_component_events(fleet.ground_truth), vehicle_of,
                                       every="5m", horizon_s=1200)
    ModelRegistry.for_tenant(settings.data_dir, "default").save(card, artifact)
    return fleet


def _get(client: TestClient, token: str, path: str, **params: Any) -> Any:
    response = client.get(f"/v1/insights{path}", headers=bearer(token), params=params)
    assert response.status_code == 200, response.text
    return response.json()


def test_empty_answers_say_why(client: TestClient, operator: Creds, get_token: Callable[..., str]) -> None:
    token = get_token(operator)
    assert _get(client, token, "/models") == {"models": [], "reason": "no model trained yet (drivetrain insights train)"}
    alerts = _get(client, token, "/alerts")
    assert alerts["run"] is None and alerts["alerts"] == [] and "no scoring run yet" in alerts["reason"]
    response = client.post("/v1/insights/score", headers=bearer(token))
    assert response.status_code == 404 and "does not exist" in response.json()["detail"]


def test_scoring_over_http_serves_models_alerts_and_vehicle_predictions(
    client: TestClient, operator: Creds, get_token: Callable[..., str], trained: FleetLake,
) -> None:
    token = get_token(operator)
    [model] = _get(client, token, "/models")["models"]
    assert model["name"] == "maintenance" and model["versions"] == [1]
    card = _get(client, token, "/models/maintenance/versions/1")
    assert card == model["latest"] and card["training"]["vehicles"] == 30 and card["metrics"]["held_out"]
    assert client.get("/v1/insights/models/maintenance/versions/2", headers=bearer(token)).status_code == 404
    response = client.post("/v1/insights/score", headers=bearer(token), params={"at": trained.end.isoformat()})
    assert response.status_code == 201, response.text
    run = response.json()
    assert run["vehicles"] == 30 and run["predictions"] == 150 and run["trigger"] == "api"
    alerts = _get(client, token, "/alerts")
    assert alerts["run"]["run_id"] == run["run_id"] and len(alerts["alerts"]) == run["alerts"] > 0
    first = alerts["alerts"][0]
    assert first["vin"] in trained.vins and first["probability"] >= 0.5
    assert first["window_start"] <= first["window_end"]
    tires = _get(client, token, "/alerts", component="tires", min_probability=0.9)["alerts"]
    assert all(a["component"] == "tires" and a["probability"] >= 0.9 for a in tires)
    mine = _get(client, token, f"/vehicles/{trained.vins[0]}/predictions")
    assert len(mine["predictions"]) == 5 and mine["run"]["run_id"] == run["run_id"]
    assert [r["run_id"] for r in _get(client, token, "/runs")["runs"]] == [run["run_id"]]


def test_another_tenant_sees_none_of_it(
    client: TestClient, operator: Creds, get_token: Callable[..., str],
    new_tenant: Callable[[str], Creds], trained: FleetLake,
) -> None:
    token = get_token(operator)
    client.post("/v1/insights/score", headers=bearer(token), params={"at": trained.end.isoformat()})
    other = get_token(new_tenant("globex"))
    assert _get(client, other, "/models")["models"] == []
    assert _get(client, other, "/alerts")["alerts"] == []
    assert client.get(f"/v1/insights/vehicles/{trained.vins[0]}/predictions", headers=bearer(other)).status_code == 404
    assert client.get("/v1/insights/models/maintenance", headers=bearer(other)).status_code == 404


def test_reads_need_insights_read_and_acting_on_cars_needs_fleet_write_too(
    client: TestClient, operator: Creds, get_token: Callable[..., str], new_client: Callable[..., Creds],
) -> None:
    fleet_only = get_token(new_client(operator, "fleet_operator", ["fleet:read", "fleet:write"]))
    assert client.get("/v1/insights/alerts", headers=bearer(fleet_only)).status_code == 403
    insights_only = get_token(new_client(operator, "fleet_operator", ["insights:read", "insights:write"]))
    assert client.get("/v1/insights/alerts", headers=bearer(insights_only)).status_code == 200
    for path in ("/appointments/book", "/appointments/apt-x/accept", "/appointments/apt-x/move",
                 "/appointments/apt-x/cancel"):
        assert client.post(f"/v1/insights{path}", headers=bearer(insights_only)).status_code == 403, path
    reader = get_token(new_client(operator, "read_only"))
    response = client.put("/v1/insights/service-centres/c1", headers=bearer(reader),
                          json={"name": "C1", "lat": 48.1, "lon": 11.6, "daily_capacity": 2})
    assert response.status_code == 403
    assert client.get("/v1/insights/models").status_code == 401


def test_appointments_are_booked_accepted_and_moved_over_http(
    client: TestClient, operator: Creds, get_token: Callable[..., str], trained: FleetLake,
    database: Database,
) -> None:
    token = get_token(operator)
    client.post("/v1/insights/score", headers=bearer(token), params={"at": trained.end.isoformat()})
    for centre, lat in (("north", 48.2), ("south", 48.1)):
        response = client.put(f"/v1/insights/service-centres/{centre}", headers=bearer(token), json={
            "name": centre.title(), "lat": lat, "lon": 11.5, "daily_capacity": 20,
            "stock": {"tyre": 40, "12v-battery": 40, "hv-module": 40, "coolant-pump": 40, "brake-pads": 40}})
        assert response.status_code == 200, response.text
    bad = client.put("/v1/insights/service-centres/x", headers=bearer(token),
                     json={"name": "X", "lat": 48.1, "lon": 11.5, "daily_capacity": 1, "stock": {"wheel": 1}})
    assert bad.status_code == 422 and "unknown part 'wheel'" in bad.json()["detail"]
    assert len(_get(client, token, "/service-centres")["centres"]) == 2
    response = client.post("/v1/insights/appointments/book", headers=bearer(token), json={"days": 14})
    assert response.status_code == 201, response.text
    booking = response.json()
    alerted = {a["vin"] for a in _get(client, token, "/alerts")["alerts"]}
    # The accelerated fleet fails within hours of its last sample: no window leaves a day to
    # book ahead, and each alerted vehicle is reported with that reason, none silently dropped.
    assert booking["booked"] == [] and {u["vin"] for u in booking["unbooked"]} == alerted
    assert all("too soon" in u["reason"] for u in booking["unbooked"])

    # A prediction a week ahead is booked, accepted and moved.
    vin = trained.vins[0]
    with database.session() as session:
        pseudonym = pseudonymiser(session, "default")(vin)
        now = datetime.now(UTC)
        card = ModelCard("maintenance", 1, "maintenance.failure-window", now, "test", (), {}, {})
        store_run(session, tenant="default", card=card, threshold=0.5, trigger="api", actor="test",
                  predictions=[ComponentPrediction(pseudonym, "brake_pads", 0.8, now + timedelta(days=7),
                                                   now + timedelta(days=9), now)],
                  data_window=(now - timedelta(hours=1), now), started_at=now)
    [booked] = client.post("/v1/insights/appointments/book", headers=bearer(token)).json()["booked"]
    assert (booked["vin"], booked["component"], booked["status"]) == (vin, "brake_pads", "proposed")
    command = client.get(f"/v1/commands/{booked['command_id']}", headers=bearer(token)).json()
    assert command["name"] == "service.appointment" and command["delivery"]["vin"] == vin
    path = f"/v1/insights/appointments/{booked['appointment_id']}"
    accepted = client.post(f"{path}/accept", headers=bearer(token))
    assert accepted.status_code == 200 and accepted.json()["status"] == "accepted"
    assert client.post(f"{path}/accept", headers=bearer(token)).status_code == 409
    day = (now + timedelta(days=3)).date().isoformat()
    moved = client.post(f"{path}/move", headers=bearer(token), json={"centre_id": "south", "day": day})
    assert moved.status_code == 200, moved.text
    assert (moved.json()["centre_id"], moved.json()["day"]) == ("south", day)
    late = (now + timedelta(days=12)).date().isoformat()
    refused = client.post(f"{path}/move", headers=bearer(token), json={"centre_id": "south", "day": late})
    assert refused.status_code == 409 and "cannot move" in refused.json()["detail"]
    assert _get(client, token, f"/appointments/{booked['appointment_id']}") == moved.json()
    assert _get(client, token, "/appointments", vin=vin)["appointments"] == [moved.json()]
    cancelled = client.post(f"{path}/cancel", headers=bearer(token))
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert client.post(f"{path}/cancel", headers=bearer(token)).status_code == 409
    assert _get(client, token, "/appointments", status="cancelled")["appointments"] == [cancelled.json()]
    assert client.post("/v1/insights/appointments/apt-unknown/accept", headers=bearer(token)).status_code == 404


def test_a_charging_plan_over_http_sends_each_car_its_schedule(
    client: TestClient, operator: Creds, get_token: Callable[..., str], trained: FleetLake,
) -> None:
    token = get_token(operator)
    start = datetime.now(UTC).replace(microsecond=0)
    body = {"site": "depot", "start_at": start.isoformat(), "slot_minutes": 15,
            "prices_per_kwh": [0.4] * 8 + [0.1] * 16, "site_limit_kw": 20,
            "sessions": [{"vin": vin, "capacity_kwh": 50, "soc_now": 0.4, "soc_target": 0.8,
                          "plug_in_slot": 0, "departure_slot": 24} for vin in trained.vins[:3]]}
    response = client.post("/v1/insights/charging-plans", headers=bearer(token), json=body)
    assert response.status_code == 201, response.text
    plan = response.json()
    assert plan["saving"] > 0 and len(plan["schedules"]) == 3
    for schedule in plan["schedules"]:
        command = client.get(f"/v1/commands/{schedule['command_id']}", headers=bearer(token)).json()
        assert command["name"] == "charging.schedule" and command["delivery"]["vin"] == schedule["vin"]
        assert max(sum(s["power_kw"][t] for s in plan["schedules"]) for t in range(24)) <= 20 + 1e-6
    assert _get(client, token, f"/charging-plans/{plan['plan_id']}") == plan
    assert [p["plan_id"] for p in _get(client, token, "/charging-plans")["plans"]] == [plan["plan_id"]]
    body["sessions"][0]["soc_now"] = 1.5
    response = client.post("/v1/insights/charging-plans", headers=bearer(token), json=body)
    assert response.status_code == 422 and "soc_now" in response.text
