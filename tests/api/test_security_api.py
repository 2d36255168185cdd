"""``/v1/security``: events, incidents, workflow, fleet incidents and responses over HTTP, per
tenant and per scope; a response is refused without a second person's approval."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from drivetrain.cloud.fleet import provision_vehicle
from drivetrain.cloud.infra import Database
from drivetrain.cloud.ingest.records import add_events
from drivetrain.core.crypto import SigningKey
from drivetrain.edge import SecurityEvent, to_vehicle_event


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _vehicle_with_event(database: Database, tenant: str, seed: int) -> str:
    now = datetime.now(UTC)
    with database.session() as session:
        vehicle, _ = provision_vehicle(
            session, tenant=tenant, model="compact-bev", region="EU",
            cloud_key=SigningKey.generate().verify_key, actor="test", rng=random.Random(seed),
        )  # fmt: skip
        event = SecurityEvent(0x1006, "cross_signal", "0x0D0", 4, 1.0, 1.2, 2.0, ("1.0 D0#00",))
        wire = to_vehicle_event(event, epoch_offset_s=now.timestamp() - 5)
        add_events(session, tenant=tenant, vin=vehicle.vin, batch_id=f"s{seed}", events=[(0, wire)], now=now)
    return vehicle.vin


@pytest.fixture
def setup(
    database: Database, new_tenant: Callable[[str], Any], new_client: Callable[..., Any],
    get_token: Callable[..., str],
) -> dict[str, Any]:
    acme_admin = new_tenant("acme")
    globex_admin = new_tenant("globex")
    vins = [_vehicle_with_event(database, "acme", s) for s in (1, 2)]
    _vehicle_with_event(database, "globex", 3)
    return {
        "vins": vins,
        "admin": bearer(get_token(acme_admin)),
        "second": bearer(get_token(new_client(acme_admin, "admin"))),
        "reader": bearer(get_token(new_client(acme_admin, "read_only"))),
        "globex": bearer(get_token(globex_admin)),
    }


def test_events_become_incidents_and_a_fleet_incident_worked_through_the_api(
    client: TestClient, setup: dict[str, Any]
) -> None:
    admin, reader = setup["admin"], setup["reader"]
    events = client.get("/v1/security/events", headers=reader)
    assert events.status_code == 200, events.text
    assert {e["vin"] for e in events.json()} == set(setup["vins"])
    assert client.post("/v1/security/correlate", headers=reader).status_code == 403
    report = client.post("/v1/security/correlate", headers=admin)
    assert report.status_code == 200 and report.json()["incidents_opened"] == 2
    incidents = client.get("/v1/security/incidents", headers=reader).json()
    assert len(incidents) == 2
    fleet = client.get("/v1/security/fleet-incidents", headers=reader).json()
    assert len(fleet) == 1 and sorted(fleet[0]["vehicles"]) == sorted(setup["vins"])
    iid = incidents[0]["incident_id"]
    step = client.post(f"/v1/security/incidents/{iid}/actions", json={"action": "assign", "assignee": "bob"},
                       headers=admin)
    assert step.status_code == 200 and step.json()["assignee"] == "bob"
    done = client.post(f"/v1/security/incidents/{iid}/actions", json={"action": "resolve"}, headers=admin)
    assert done.json()["status"] == "resolved"
    again = client.post(f"/v1/security/incidents/{iid}/actions", json={"action": "acknowledge"}, headers=admin)
    assert again.status_code == 409
    assert client.get(f"/v1/security/incidents/{iid}", headers=setup["globex"]).status_code == 404
    assert client.get("/v1/security/incidents", headers=setup["globex"]).json() == []


def test_a_response_needs_a_second_persons_approval_before_anything_is_sent(
    client: TestClient, setup: dict[str, Any]
) -> None:
    admin = setup["admin"]
    client.post("/v1/security/correlate", headers=admin)
    body = {"signature": "cross_signal:0x0D0", "playbook": "disable_function", "function": "reverse_assist"}
    proposed = client.post("/v1/security/responses", json=body, headers=admin)
    assert proposed.status_code == 200, proposed.text
    rid = proposed.json()["response_id"]
    assert proposed.json()["status"] == "proposed" and proposed.json()["job_id"] is None
    refused = client.post(f"/v1/security/responses/{rid}/approve", headers=admin)
    assert refused.status_code == 403 and "another person" in refused.text
    assert client.post(f"/v1/security/responses/{rid}/approve", headers=setup["reader"]).status_code == 403
    approved = client.post(f"/v1/security/responses/{rid}/approve", headers=setup["second"])
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "executed" and approved.json()["job_id"]
    job = client.get(f"/v1/jobs/{approved.json()['job_id']}", headers=admin)
    assert job.status_code == 200 and job.json()["origin"] == "security"
    listed = client.get("/v1/security/responses", headers=setup["reader"]).json()
    assert [r["status"] for r in listed] == ["executed"]


def test_the_report_counts_incidents_by_severity_and_times_detection_to_response(
    client: TestClient, setup: dict[str, Any]
) -> None:
    admin, reader = setup["admin"], setup["reader"]
    empty = client.get("/v1/security/report", headers=reader)
    assert empty.status_code == 200, empty.text
    assert empty.json()["incidents"] == 0 and empty.json()["to_respond"]["count"] == 0
    client.post("/v1/security/correlate", headers=admin)
    incidents = client.get("/v1/security/incidents", headers=reader).json()
    first = incidents[0]["incident_id"]
    client.post(f"/v1/security/incidents/{first}/actions", json={"action": "acknowledge"}, headers=admin)
    body = {"signature": "cross_signal:0x0D0", "playbook": "security_channel"}
    rid = client.post("/v1/security/responses", json=body, headers=admin).json()["response_id"]
    waiting = client.get("/v1/security/report", headers=reader).json()
    assert waiting["awaiting_approval"] == 1 and waiting["to_respond"]["count"] == 0
    client.post(f"/v1/security/responses/{rid}/approve", headers=setup["second"])
    client.post(f"/v1/security/incidents/{first}/actions", json={"action": "resolve"}, headers=admin)
    report = client.get("/v1/security/report", headers=reader).json()
    assert report["incidents"] == 2 and report["vehicles"] == 2 and report["events"] == 8
    severity = incidents[0]["severity"]
    assert report["by_severity"][severity] == {"open": 1, "acknowledged": 0, "resolved": 1}
    assert report["by_status"] == {"open": 1, "acknowledged": 0, "resolved": 1}
    assert report["to_acknowledge"]["count"] == 1 and report["to_resolve"]["count"] == 1
    # the approved response reached both cars: detected about 5 s before it was sent
    assert report["to_respond"]["count"] == 2
    assert 3.9 <= report["to_respond"]["median_s"] <= report["to_respond"]["max_s"] < 120
    assert report["responses"] == {"proposed": 0, "executed": 1, "refused": 0}
    # another tenant's report holds none of this; the window is bounded
    assert client.get("/v1/security/report", headers=setup["globex"]).json()["incidents"] == 0
    assert client.get("/v1/security/report?days=0", headers=reader).status_code == 422
    assert client.get("/v1/security/report?days=3651", headers=reader).status_code == 422
