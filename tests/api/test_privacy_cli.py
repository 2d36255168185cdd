"""``drivetrain privacy``: consent shown and set on the state database, the category list."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from drivetrain.cli import app as cli_app
from drivetrain.cloud.fleet import generate_vin, provision_vehicle
from drivetrain.cloud.infra import Database, create_tenant, list_audit
from drivetrain.cloud.infra.bootstrap import resolve_audit_key
from drivetrain.cloud.privacy import get_consent, vehicle_pseudonym
from drivetrain.core.crypto import SigningKey
from drivetrain.core.settings import load_settings


@pytest.fixture
def vin(database: Database) -> str:
    """One EU car of tenant acme (tenant globex exists too, without cars)."""
    with database.session() as session:
        create_tenant(session, "acme", actor="test")
        create_tenant(session, "globex", actor="test")
        vehicle, _ = provision_vehicle(
            session, tenant="acme", model="compact-bev", region="EU",
            cloud_key=SigningKey.generate().verify_key, actor="test", rng=random.Random(5),
        )  # fmt: skip
    return vehicle.vin


@pytest.fixture
def cli(
    tmp_path: Path, database_url: str, database: Database, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., str]:
    """Run ``drivetrain`` in-process on ``database`` (each engine); checks the exit code."""
    monkeypatch.setenv("DRIVETRAIN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DRIVETRAIN_DATABASE_URL", database_url)
    runner = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1"})

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(cli_app, list(args))
        assert result.exit_code == code, result.output
        return result.output

    return run


def test_show_gives_the_default_then_set_replaces_it_and_is_audited(
    cli: Callable[..., str], vin: str, database: Database
) -> None:
    shown = json.loads(cli("privacy", "consent", "show", vin, "--json"))
    assert (shown["categories"], shown["source"], shown["updated_at"]) == (
        ["diagnostics", "technical"], "default", None,
    )  # fmt: skip
    table = cli("privacy", "consent", "set", vin, "--allow", "technical, location", "--source",
                "contract")  # fmt: skip
    assert "source contract" in table and "no (dropped at ingestion)" in table
    # the entry's personal part sits in the EU store under a digest keyed with the
    # installation's audit key, which a reader needs to check it against the central pointer
    database.use_audit_key(resolve_audit_key(load_settings()))
    with database.session() as session:
        consent = get_consent(session, vin, "acme")
        assert consent.categories == {"technical", "location"} and consent.source == "contract"
        [entry] = list_audit(session, "acme", action="privacy.consent.set")
        assert entry.actor.startswith("cli") and entry.details["source"] == "contract"
        assert shown["pseudonym"] == vehicle_pseudonym(session, "acme", vin)
    assert json.loads(cli("privacy", "consent", "show", vin, "--json"))["categories"] == [
        "location", "technical",
    ]  # fmt: skip


def test_allow_none_withdraws_every_category(
    cli: Callable[..., str], vin: str, database: Database
) -> None:
    cli("privacy", "consent", "set", vin, "--allow", "none")
    with database.session() as session:
        consent = get_consent(session, vin, "acme")
    assert consent.categories == frozenset() and consent.source == "operator"


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--allow", "technical,gps"], 1, "'gps' is not known"),
        (["--allow", "technical,,cabin"], 2, "not a list of categories"),
        (["--allow", "technical", "--source", "default"], 1, "reserved"),
        (["--allow", "technical", "--source", "two words"], 1, "malformed"),
    ],
)
def test_bad_categories_or_source_are_refused_and_change_nothing(
    cli: Callable[..., str], vin: str, database: Database, args: list[str], code: int,
    message: str,
) -> None:
    assert message in cli("privacy", "consent", "set", vin, *args, code=code)
    with database.session() as session:
        assert get_consent(session, vin, "acme").source == "default"
        assert list_audit(session, "acme", action="privacy.consent.set") == []


def test_a_vehicle_outside_the_named_tenant_or_registry_is_not_found(
    cli: Callable[..., str], vin: str, database: Database
) -> None:
    assert "not registered" in cli("privacy", "consent", "show", vin, "--tenant", "globex", code=1)
    assert "not registered" in cli(
        "privacy", "consent", "set", vin, "--tenant", "globex", "--allow", "location", code=1
    )
    stranger = generate_vin(random.Random(77))
    assert "not registered" in cli("privacy", "consent", "show", stranger, code=1)
    with database.session() as session:
        assert get_consent(session, vin, "acme").source == "default"


def test_categories_lists_all_five_with_the_default_marked(cli: Callable[..., str]) -> None:
    listed = json.loads(cli("privacy", "categories", "--json", "--examples", "1"))
    assert [c["name"] for c in listed] == [
        "location", "driving_behaviour", "cabin", "diagnostics", "technical",
    ]  # fmt: skip
    assert all(len(c["examples"]) == 1 for c in listed)
    table = cli("privacy", "categories")
    assert "needs consent" in table and "Vehicle.CurrentLocation.Latitude" in table


@pytest.mark.parametrize(
    "command", [["privacy"], ["privacy", "consent"], ["privacy", "consent", "show"],
                ["privacy", "consent", "set"], ["privacy", "categories"]],
)
def test_every_privacy_command_has_help(command: list[str]) -> None:
    result = CliRunner().invoke(cli_app, [*command, "--help"])
    assert result.exit_code == 0 and "Usage" in result.output


def test_policy_show_and_push_send_the_operators_file_to_the_cars_of_a_region(
    cli: Callable[..., str], vin: str, database: Database, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from drivetrain.cloud.commands import get_job

    shipped = json.loads(cli("privacy", "policy", "show", "--region", "EU", "--json"))
    assert shipped["regions"]["EU"]["default_off"] == ["cabin", "driving_behaviour", "location"]
    operator = tmp_path / "policy.json"
    operator.write_text(json.dumps({
        "format": "drivetrain.privacy-policy", "version": 1,
        "regions": {"EU": {"default_off": ["cabin"],
                           "precision": [{"signals": ["Vehicle.Speed"], "step": 5}]}}}))
    monkeypatch.setenv("DRIVETRAIN_PRIVACY_POLICY", str(operator))
    assert "Vehicle.Speed: step 5" in cli("privacy", "policy", "show")
    pushed = json.loads(cli("privacy", "policy", "push", "--tenant", "acme", "--json"))
    (push,) = pushed["pushes"]
    assert (push["region"], push["vehicles"], pushed["source"]) == ("EU", 1, str(operator))
    with database.session() as session:
        job = get_job(session, push["job_id"], tenant="acme")
        audit = list_audit(session, "acme", action="privacy.policy.push")
    assert job.body["args"]["rules"]["default_off"] == ["cabin"]
    assert job.body["args"]["version"] == push["version"]
    assert audit[-1].actor.startswith("cli:")
    table = cli("privacy", "policy", "push", "--tenant", "acme", "--region", "EU")
    assert "EU" in table and "step 5" in table
    assert "names no rules for it" in cli("privacy", "policy", "push", "--tenant", "acme",
                                          "--region", "US", code=1)
    assert "does not exist" in cli("privacy", "policy", "push", "--tenant", "nobody", code=1)
    operator.write_text('{"format": "drivetrain.privacy-policy", "version": 1, '
                        '"regions": {"EU": {"default_off": ["gps"]}}}')
    assert "'gps' is not a privacy category" in cli("privacy", "policy", "show", code=2)
