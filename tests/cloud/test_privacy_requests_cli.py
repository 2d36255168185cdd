"""``drivetrain privacy request ...`` and ``privacy grants list``: access and erasure from the
command line, the register with deadlines, erasure only when confirmed, re-application."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from drivetrain.cli import app as cli_app
from drivetrain.cloud.fleet import list_vehicles, provision_vehicle
from drivetrain.cloud.infra import Database, create_tenant
from drivetrain.cloud.privacy import give_consent
from drivetrain.core.crypto import SigningKey

Run = Callable[..., str]


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, state_url: Callable[[Path], str]) -> tuple[Run, Database, str]:
    monkeypatch.setenv("DRIVETRAIN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DRIVETRAIN_DATABASE_URL", state_url(tmp_path))
    database = Database(state_url(tmp_path))
    database.upgrade()
    with database.session() as session:
        create_tenant(session, "acme", actor="test")
        vehicle, _ = provision_vehicle(session, tenant="acme", model="compact-bev", region="EU",
                                       cloud_key=SigningKey.generate().verify_key, actor="test",
                                       rng=random.Random(3))
    runner = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1"})

    def run(*args: str, code: int = 0, input: str | None = None) -> str:
        result = runner.invoke(cli_app, list(args), input=input)
        assert result.exit_code == code, result.output
        return result.output

    yield run, database, vehicle.vin
    database.dispose()


def test_access_then_erasure_from_the_command_line(world: tuple[Run, Database, str]) -> None:
    run, database, vin = world
    assert "no data requests" in run("privacy", "request", "list", "--tenant", "acme")
    [access] = json.loads(run("privacy", "request", "access", vin, "--tenant", "acme", "--json"))
    assert access["status"] == "done" and Path(access["outcome"]["archive"]).is_dir()
    assert "nothing erased" in run("privacy", "request", "erase", vin, "--tenant", "acme",
                                   input="n\n", code=1)
    with database.session() as session:
        assert [v.vin for v in list_vehicles(session, tenant="acme")] == [vin]
    run("privacy", "request", "erase", vin, "--tenant", "acme", "--yes")
    with database.session() as session:
        assert list_vehicles(session, tenant="acme") == []
    listed = json.loads(run("privacy", "request", "list", "--tenant", "acme", "--json"))
    assert [(r["kind"], r["status"], r["overdue"]) for r in listed] == [
        ("erasure", "done", False), ("access", "done", False)]
    again = json.loads(run("privacy", "request", "reapply", "--tenant", "acme", "--json"))
    assert again == {"vehicles": 0, "state_rows": 0, "lake_rows": 0}


def test_the_grants_of_a_vehicle_are_listed(world: tuple[Run, Database, str]) -> None:
    run, database, vin = world
    assert "no purpose grant" in run("privacy", "grants", "list", vin, "--tenant", "acme")
    with database.session() as session:
        give_consent(session, tenant="acme", vin=vin, purpose="repair",
                     categories=["diagnostics"], person="owner", source="owner-app",
                     actor="test", recipient="repairer-1")
    [grant] = json.loads(run("privacy", "grants", "list", vin, "--tenant", "acme", "--json"))
    assert (grant["purpose"], grant["recipient"], grant["status"]) == (
        "repair", "repairer-1", "active")
    assert "not registered" in run("privacy", "grants", "list", "DTVJETH88T571PG8B",
                                   "--tenant", "acme", code=1)
