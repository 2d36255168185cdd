"""``drivetrain data-act``: the containers in force, owner accounts bound and unbound on the
state database (audited), a vehicle's grants and access log, recipients and metering."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from drivetrain.cli import app as cli_app
from drivetrain.cloud.fleet import provision_vehicle
from drivetrain.cloud.infra import Database, Role, create_client, create_tenant, list_audit
from drivetrain.core.crypto import SigningKey


@pytest.fixture
def world(database: Database) -> dict[str, str]:
    """Tenant acme: one car, an owner account, a repairer and a fleet operator."""
    with database.session() as session:
        create_tenant(session, "acme", actor="test")
        vin = provision_vehicle(session, tenant="acme", model="compact-bev", region="EU",
                                cloud_key=SigningKey.generate().verify_key, actor="test",
                                rng=random.Random(9))[0].vin
        made = {role: create_client(session, tenant="acme", role=role, actor="test")
                .client.client_id
                for role in (Role.OWNER, Role.THIRD_PARTY_APP, Role.FLEET_OPERATOR)}
    return {"vin": vin, "owner": made[Role.OWNER], "repairer": made[Role.THIRD_PARTY_APP],
            "operator": made[Role.FLEET_OPERATOR]}


@pytest.fixture
def cli(
    tmp_path: Path, database_url: str, database: Database, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., str]:
    monkeypatch.setenv("DRIVETRAIN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DRIVETRAIN_DATABASE_URL", database_url)
    runner = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1"})

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(cli_app, list(args))
        assert result.exit_code == code, result.output
        return result.output

    return run


def test_containers_are_listed_with_their_trade_secrets(cli: Callable[..., str]) -> None:
    listed = {c["name"]: c for c in json.loads(cli("data-act", "containers", "--json"))}
    assert set(listed) == {"diagnostics", "battery", "location", "driving"}
    assert listed["battery"]["withheld"]
    assert "battery" in cli("data-act", "containers")


def test_an_owner_is_bound_listed_and_removed_and_each_change_audited(
    cli: Callable[..., str], world: dict[str, str], database: Database
) -> None:
    vin, owner = world["vin"], world["owner"]
    bound = json.loads(cli("data-act", "owner", "add", vin, "--client", owner,
                           "--relation", "lessee", "--tenant", "acme", "--json"))
    assert (bound["vin"], bound["client_id"], bound["relation"]) == (vin, owner, "lessee")
    assert "already bound" in cli("data-act", "owner", "add", vin, "--client", owner,
                                  "--tenant", "acme", code=1)
    refused = cli("data-act", "owner", "add", vin, "--client", world["operator"],
                  "--tenant", "acme", code=1)
    assert "client of role 'owner'" in refused
    assert "is not registered" in cli("data-act", "owner", "add", vin, "--client", owner,
                                      code=1)  # the default tenant does not own it
    listed = json.loads(cli("data-act", "owner", "list", "--tenant", "acme", "--json"))
    assert [b["client_id"] for b in listed] == [owner]
    cli("data-act", "owner", "remove", vin, "--client", owner, "--tenant", "acme")
    assert json.loads(cli("data-act", "owner", "list", "--tenant", "acme", "--json")) == []
    with database.session() as session:
        actions = [e.action for e in list_audit(session, "acme", limit=100)]
    assert actions.count("privacy.owner.add") == 1 and actions.count("privacy.owner.remove") == 1


def test_grants_log_recipients_and_metering_read_the_database(
    cli: Callable[..., str], world: dict[str, str]
) -> None:
    vin = world["vin"]
    assert json.loads(cli("data-act", "grants", vin, "--tenant", "acme", "--json")) == []
    assert json.loads(cli("data-act", "access-log", vin, "--tenant", "acme", "--json")) == []
    assert json.loads(cli("data-act", "metering", "--tenant", "acme", "--json")) == []
    assert "expected YYYY-MM" in cli("data-act", "metering", "--month", "2026-13",
                                     "--tenant", "acme", code=1)
    marked = json.loads(cli("data-act", "recipient", "set", world["repairer"], "--sme",
                            "--tenant", "acme", "--json"))
    assert marked == {"client_id": world["repairer"], "sme": True}
    assert "recipients are clients of role 'third_party_app'" in cli(
        "data-act", "recipient", "set", world["owner"], "--sme", "--tenant", "acme", code=1)
