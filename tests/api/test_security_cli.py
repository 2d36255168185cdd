"""``drivetrain security``: events, incidents, fleet incidents and the workflow on the state
database, with --json on every reader."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from drivetrain.cli import app as cli_app
from drivetrain.cloud.fleet import provision_vehicle
from drivetrain.cloud.infra import Database, create_tenant
from drivetrain.cloud.ingest.records import add_events
from drivetrain.core.crypto import SigningKey
from drivetrain.edge import SecurityEvent, to_vehicle_event


@pytest.fixture
def vins(database: Database) -> list[str]:
    """Two compact BEVs of tenant acme, each with one stored security event of one signature."""
    now = datetime.now(UTC)
    out = []
    with database.session() as session:
        create_tenant(session, "acme", actor="test")
        for seed in (1, 2):
            vehicle, _ = provision_vehicle(
                session, tenant="acme", model="compact-bev", region="EU",
                cloud_key=SigningKey.generate().verify_key, actor="test", rng=random.Random(seed),
            )  # fmt: skip
            event = SecurityEvent(0x1006, "cross_signal", "0x0D0", 7, 1.0, 1.5, 2.5, ("1.0 D0#00",))
            wire = to_vehicle_event(event, epoch_offset_s=now.timestamp() - 10)
            add_events(session, tenant="acme", vin=vehicle.vin, batch_id=f"b{seed}", events=[(0, wire)], now=now)
            out.append(vehicle.vin)
    return out


@pytest.fixture
def cli(tmp_path: Path, database_url: str, database: Database, monkeypatch: pytest.MonkeyPatch) -> Callable[..., str]:
    monkeypatch.setenv("DRIVETRAIN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DRIVETRAIN_DATABASE_URL", database_url)
    runner = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1"})

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(cli_app, list(args))
        assert result.exit_code == code, result.output
        return result.output

    return run


def test_events_become_incidents_and_a_fleet_incident_and_the_workflow_runs(
    cli: Callable[..., str], vins: list[str]
) -> None:
    assert "no incidents" in cli("security", "incidents", "list", "--tenant", "acme")
    events = json.loads(cli("security", "events", "list", "--tenant", "acme", "--json"))["events"]
    assert {e["vin"] for e in events} == set(vins) and events[0]["data"]["signature"] == "cross_signal:0x0D0"
    report = json.loads(cli("security", "correlate", "--tenant", "acme", "--json"))
    assert report == {"events_read": 2, "incidents_opened": 2, "incidents_updated": 0, "skipped": 0}
    incidents = json.loads(cli("security", "incidents", "list", "--tenant", "acme", "--json"))["incidents"]
    assert len(incidents) == 2 and {i["event_count"] for i in incidents} == {7}
    fleet = json.loads(cli("security", "fleet", "list", "--tenant", "acme", "--json"))["fleet_incidents"]
    assert len(fleet) == 1 and sorted(fleet[0]["vehicles"]) == sorted(vins) and fleet[0]["group"] == "compact-bev"
    iid = str(incidents[0]["incident_id"])
    cli("security", "incidents", "ack", iid, "--tenant", "acme")
    cli("security", "incidents", "assign", iid, "--tenant", "acme", "--to", "bob")
    cli("security", "incidents", "note", iid, "--tenant", "acme", "--text", "looked at the capture")
    assert "resolved" in cli("security", "incidents", "resolve", iid, "--tenant", "acme")
    shown = json.loads(cli("security", "incidents", "show", iid, "--tenant", "acme", "--json"))
    assert [a["action"] for a in shown["actions"]] == ["open", "acknowledge", "assign", "annotate", "resolve"]
    assert "is resolved" in cli("security", "incidents", "ack", iid, "--tenant", "acme", code=1)
    assert "not found" in cli("security", "incidents", "show", "999", "--tenant", "acme", code=1)
    assert "no responses" in cli("security", "responses", "list", "--tenant", "acme")
    other = str(incidents[1]["incident_id"])
    assert other
    monkeypatch_user = cli("security", "responses", "propose", "cross_signal:0x0D0", "--tenant", "acme",
                           "--playbook", "disable_function", "--function", "reverse_assist")
    assert "proposed" in monkeypatch_user and "1 vehicles" in monkeypatch_user
    assert "another person" in cli("security", "responses", "approve", "1", "--tenant", "acme", code=1)
    assert "refused" in cli("security", "responses", "refuse", "1", "--tenant", "acme")
    listed = json.loads(cli("security", "responses", "list", "--tenant", "acme", "--json"))["responses"]
    assert [r["status"] for r in listed] == ["refused"]
    assert "no signature on two or more" in cli("security", "fleet", "list", "--tenant", "acme", "--by", "region",
                                                 "--window-s", "1")


def test_the_report_counts_incidents_by_severity_and_the_time_to_acknowledge(
    cli: Callable[..., str], vins: list[str]
) -> None:
    empty = json.loads(cli("security", "report", "--tenant", "acme", "--json"))
    assert empty["incidents"] == 0 and empty["to_acknowledge"]["median_s"] is None
    cli("security", "correlate", "--tenant", "acme")
    [first, _] = json.loads(cli("security", "incidents", "list", "--tenant", "acme", "--json"))["incidents"]
    cli("security", "incidents", "ack", str(first["incident_id"]), "--tenant", "acme")
    report = json.loads(cli("security", "report", "--tenant", "acme", "--days", "7", "--json"))
    assert report["incidents"] == 2 and report["vehicles"] == 2 and report["events"] == 14
    assert report["by_status"] == {"open": 1, "acknowledged": 1, "resolved": 0}
    assert report["to_acknowledge"]["count"] == 1 and report["to_acknowledge"]["median_s"] >= 9.0
    text = cli("security", "report", "--tenant", "acme")
    assert "2 incidents on 2 vehicles (14 events)" in text and "acknowledgement" in text
    assert "--days" in cli("security", "report", "--tenant", "acme", "--days", "0", code=2)
