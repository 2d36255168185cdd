"""``/v1/commands`` and ``/v1/jobs`` over HTTP: create, follow, page, cancel, stream — each
tenant only ever sees and reaches its own jobs and vehicles."""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from drivetrain.cloud.commands import Dispatcher
from drivetrain.cloud.fleet import provision_vehicle
from drivetrain.cloud.infra import Database
from drivetrain.core.crypto import SigningKey

CLOUD = SigningKey.from_seed(b"commands-api-cloud-key-000000000")


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
) -> dict[str, Any]:
    acme_admin = new_tenant("acme")
    globex_admin = new_tenant("globex")
    return {
        "acme": _vehicles(database, "acme", ["EU", "EU", "US"], 1),
        "globex": _vehicles(database, "globex", ["EU"], 2),
        "operator": bearer(get_token(new_client(acme_admin, "fleet_operator"))),
        "reader": bearer(get_token(new_client(acme_admin, "read_only"))),
        "globex_operator": bearer(get_token(new_client(globex_admin, "fleet_operator"))),
    }


def test_a_command_is_sent_and_followed(client: TestClient, setup: dict[str, Any]) -> None:
    vin = setup["acme"][0]
    sent = client.post("/v1/commands", headers=setup["operator"],
                       json={"vin": vin, "name": "flash_lights", "args": {"times": 2}})
    assert sent.status_code == 201, sent.text
    body = sent.json()
    assert body["origin"] == "command" and body["kind"] == "command"
    assert body["delivery"]["vin"] == vin and body["delivery"]["state"] == "queued"
    assert body["counts"]["queued"] == 1 and body["counts"]["total"] == 1
    read = client.get(f"/v1/commands/{body['job_id']}", headers=setup["reader"])
    assert read.status_code == 200 and read.json()["name"] == "flash_lights"
    listed = client.get("/v1/commands", headers=setup["reader"]).json()
    assert [j["job_id"] for j in listed["jobs"]] == [body["job_id"]]


def test_a_job_selects_its_targets_by_query_and_lists_them_per_vehicle(
    client: TestClient, setup: dict[str, Any]
) -> None:
    made = client.post("/v1/jobs", headers=setup["operator"], json={
        "command": {"name": "flash_lights"}, "query": 'region == "EU"',
        "policy": {"rate_per_min": 600, "max_retries": 1},
    })
    assert made.status_code == 201, made.text
    job = made.json()
    assert job["counts"]["queued"] == 2 and job["policy"]["rate_per_min"] == 600
    page = client.get(f"/v1/jobs/{job['job_id']}/vehicles", headers=setup["reader"],
                      params={"limit": 1}).json()
    assert len(page["deliveries"]) == 1 and page["next_after"] is not None
    rest = client.get(f"/v1/jobs/{job['job_id']}/vehicles", headers=setup["reader"],
                      params={"after": page["next_after"]}).json()
    assert {d["vin"] for d in page["deliveries"] + rest["deliveries"]} == set(setup["acme"][:2])
    cancelled = client.post(f"/v1/jobs/{job['job_id']}/cancel", headers=setup["operator"],
                            json={"reason": "wrong group"})
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    again = client.post(f"/v1/jobs/{job['job_id']}/cancel", headers=setup["operator"])
    assert again.status_code == 409 and "only a scheduled or running job" in again.json()["detail"]


def test_bad_policies_and_commands_are_refused_naming_the_field(
    client: TestClient, setup: dict[str, Any]
) -> None:
    bad = client.post("/v1/jobs", headers=setup["operator"], json={
        "command": {"name": "flash_lights"}, "query": "",
        "policy": {"freshness_s": 300, "timeout_s": 10},
    })
    assert bad.status_code == 422 and "'timeout_s' is 10" in bad.json()["detail"]
    window = client.post("/v1/jobs", headers=setup["operator"], json={
        "command": {"name": "flash_lights"}, "query": "",
        "policy": {"maintenance_windows": [{"days": ["sat"], "start": "25:00", "end": "03:00"}]},
    })
    assert window.status_code == 422 and "field 'start' is '25:00'" in window.json()["detail"]
    name = client.post("/v1/commands", headers=setup["operator"],
                       json={"vin": setup["acme"][0], "name": "Flash Lights!"})
    assert name.status_code == 422 and "command name 'Flash Lights!'" in name.json()["detail"]
    query = client.post("/v1/jobs", headers=setup["operator"],
                        json={"command": {"name": "x"}, "query": "region =="})
    assert query.status_code == 422


def test_a_tenant_never_reaches_another_tenants_vehicles_or_jobs(
    client: TestClient, setup: dict[str, Any]
) -> None:
    foreign = setup["globex"][0]
    refused = client.post("/v1/commands", headers=setup["operator"],
                          json={"vin": foreign, "name": "flash_lights"})
    assert refused.status_code == 404 and "not a vehicle of tenant 'acme'" in refused.text
    job = client.post("/v1/jobs", headers=setup["globex_operator"],
                      json={"command": {"name": "flash_lights"}, "query": ""}).json()
    assert client.get(f"/v1/jobs/{job['job_id']}", headers=setup["operator"]).status_code == 404
    assert client.post(f"/v1/jobs/{job['job_id']}/cancel",
                       headers=setup["operator"]).status_code == 404
    assert client.get("/v1/jobs", headers=setup["operator"]).json()["jobs"] == []


def test_reading_needs_fleet_read_and_sending_fleet_write(
    client: TestClient, setup: dict[str, Any]
) -> None:
    denied = client.post("/v1/commands", headers=setup["reader"],
                         json={"vin": setup["acme"][0], "name": "flash_lights"})
    assert denied.status_code == 403
    assert client.get("/v1/jobs").status_code == 401


def test_the_change_stream_shows_a_jobs_progress(
    client: TestClient, setup: dict[str, Any], database: Database
) -> None:
    events: list[tuple[str, dict[str, Any]]] = []
    opened = threading.Event()

    def watch() -> None:
        with client.stream("GET", "/v1/jobs/changes", headers=setup["reader"],
                           params={"max_events": 2, "timeout_s": 20}) as response:
            kind = ""
            for line in response.iter_lines():
                if line.startswith(": connected"):
                    opened.set()
                elif line.startswith("event:"):
                    kind = line.split(":", 1)[1].strip()
                elif line.startswith("data:"):
                    events.append((kind, json.loads(line.split(":", 1)[1])))
        opened.set()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    assert opened.wait(10)
    job = client.post("/v1/jobs", headers=setup["operator"],
                      json={"command": {"name": "flash_lights"}, "query": 'region == "US"'}
                      ).json()
    Dispatcher(database, None, CLOUD).run_once()  # no link: progress says so
    watcher.join(20)
    assert [k for k, _ in events] == ["created", "progress"]
    assert all(e["subject"] == job["job_id"] for _, e in events)
    assert events[1][1]["data"]["counts"]["queued"] == 1
    shown = client.get(f"/v1/jobs/{job['job_id']}", headers=setup["reader"]).json()
    assert shown["waiting_reason"] == "not delivered: no vehicle link"
