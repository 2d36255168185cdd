"""`drivetrain fleet` and `drivetrain edge`: provisioning, a capture replayed through the agent
to a real broker, the buffer inspector, the campaign checker, help on every command."""

from __future__ import annotations

import json
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from edge_testkit import CloudReceiver, wait_for
from typer.testing import CliRunner

from drivetrain.cli import app as cli_app
from drivetrain.cloud.fleet import VehicleCredentials, get_vehicle, load_or_create_cloud_key
from drivetrain.cloud.infra import Database
from drivetrain.core.can import load_dbc, write_capture
from drivetrain.core.transport import MqttTransport, vehicle_filter
from drivetrain.core.transport.testing import unique_name
from drivetrain.core.wire import MessageKind
from drivetrain.demo.can_capture import SignalIndex, synthesize_capture
from drivetrain.demo.drive_profile import drive_profile
from drivetrain.edge import VehicleIdentity

REFERENCE_DBC = Path(__file__).parents[2] / "src/drivetrain/sim/data/drivetrain_bev.dbc"


@pytest.fixture(scope="session")
def capture_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60 s of the reference vehicle's CAN traffic as a candump log."""
    database = load_dbc(REFERENCE_DBC).database
    capture = synthesize_capture(
        database, SignalIndex.of(database), drive_profile(np.random.default_rng(5)), "X"
    )
    path = tmp_path_factory.mktemp("capture") / "drive.log"
    write_capture(path, capture.frames)
    return path


def _provision(cli: Callable[..., str], count: int = 2) -> list[Path]:
    cli("db", "upgrade")
    cli("auth", "create-tenant", "acme")
    output = cli(
        "fleet", "provision", "--count", str(count), "--tenant", "acme", "--model",
        "compact-bev", "--region", "EU", "--out", "creds", "--seed", "3",
    )  # fmt: skip
    assert f"{count} vehicle(s) provisioned for tenant 'acme'" in output
    return sorted(Path("creds").glob("*.json"))


def test_fleet_provision_writes_private_credentials_and_registers_public_keys(
    cli: Callable[..., str], database_url: str
) -> None:
    files = _provision(cli, 3)
    assert len(files) == 3
    cloud_key = load_or_create_cloud_key(Path("data/keys/cloud-signing.pem"), create=False)
    listing = cli("fleet", "list")
    database = Database(database_url)
    try:
        for path in files:
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
            identity = VehicleIdentity.read(path)
            assert identity.vin == path.stem
            assert VehicleCredentials.read(path).signing_key.key_id == identity.signing_key.key_id
            with database.session() as session:
                vehicle = get_vehicle(session, identity.vin)
            assert vehicle.verify_key == identity.signing_key.verify_key
            assert vehicle.tenant == "acme" and vehicle.region == "EU"
            assert identity.cloud_key == cloud_key.verify_key
            assert identity.signing_key.key_id in listing
    finally:
        database.dispose()
    listing = cli("fleet", "list", "--tenant", "acme")
    assert "3 of 3 vehicle(s)" in listing and all(p.stem in listing for p in files)
    assert "by region: EU 3" in listing


def test_provisioning_for_an_unknown_tenant_fails_and_writes_no_file(
    cli: Callable[..., str],
) -> None:
    cli("db", "upgrade")
    output = cli(
        "fleet", "provision", "--tenant", "nobody", "--model", "compact-bev", "--region", "EU",
        "--out", "creds", code=1,
    )  # fmt: skip
    assert (
        "tenant 'nobody' does not exist; create it with `drivetrain auth create-tenant nobody`"
        in output
    )
    assert list(Path("creds").glob("*")) == []


def test_provisioning_with_a_bad_region_names_it(cli: Callable[..., str]) -> None:
    cli("db", "upgrade")
    cli("auth", "create-tenant", "acme")
    output = cli(
        "fleet", "provision", "--tenant", "acme", "--model", "compact-bev", "--region", "MARS",
        "--out", "creds", code=1,
    )  # fmt: skip
    assert "MARS" in output and list(Path("creds").glob("*")) == []


@pytest.fixture
def receiver_for(mqtt_url: str) -> Iterator[Callable[[VehicleIdentity], CloudReceiver]]:
    clients: list[MqttTransport] = []

    def make(identity: VehicleIdentity) -> CloudReceiver:
        cloud = load_or_create_cloud_key(Path("data/keys/cloud-signing.pem"), create=False)
        receiver = CloudReceiver({identity.vin: identity.signing_key.verify_key}, cloud)
        client = MqttTransport(mqtt_url, client_id=unique_name("cloud"))
        client.subscribe(vehicle_filter("#", vin=identity.vin), receiver.handle)
        clients.append(client)
        return receiver

    yield make
    for client in clients:
        client.close()


@pytest.mark.slow
def test_replay_sends_a_capture_through_the_agent_to_the_broker(
    cli: Callable[..., str],
    capture_file: Path,
    mqtt_url: str,
    receiver_for: Callable[[VehicleIdentity], CloudReceiver],
) -> None:
    credentials = _provision(cli, 1)[0]
    identity = VehicleIdentity.read(credentials)
    receiver = receiver_for(identity)
    started = time.time_ns()
    output = cli(
        "edge", "replay", str(capture_file), "--credentials", str(credentials), "--broker",
        mqtt_url, "--buffer", "agent.db", "--speed", "100", "--tick-ms", "20", "--batch-s", "0.1",
        "--headless",
    )  # fmt: skip
    assert "edge agent summary" in output and "still buffered" in output
    wait_for(lambda: len(receiver.samples()) > 0, what="telemetry at the receiver")
    wait_for(
        lambda: "Vehicle.Powertrain.TractionBattery.StateOfCharge.Current"
        in {p for p, _, _ in receiver.samples()},
        what="the mapped signals",
    )
    samples = receiver.samples()
    # an EU car before its driver's consent: no driving behaviour (speed) leaves it
    assert "Vehicle.Speed" not in {p for p, _, _ in samples}
    # The default campaign: every mapped signal once per second of (compressed) replay time,
    # never dated after it was sent.
    assert all(started - 10**9 <= ts <= time.time_ns() for _, ts, _ in samples)
    assert receiver.duplicates == 0 and not receiver.refused
    assert len(receiver.of(MessageKind.TELEMETRY)) >= 1
    inspected = cli("edge", "buffer", "agent.db")
    assert "0 messages" in inspected and "the default campaign applies" in inspected
    as_json = json.loads(cli("edge", "buffer", "agent.db", "--json"))
    assert as_json["stats"]["messages"] == 0 and as_json["campaigns"] == []


@pytest.mark.embedded_only(reason="an agent with no broker configured (the fleet profile names one)")
def test_run_without_a_broker_says_how_to_give_one(
    cli: Callable[..., str], capture_file: Path
) -> None:
    credentials = _provision(cli, 1)[0]
    output = cli(
        "edge", "run", "--credentials", str(credentials), "--bus", f"log:{capture_file}", code=1
    )
    assert "the agent needs a broker: give --broker" in output


def test_run_refuses_an_unknown_bus_kind(cli: Callable[..., str], mqtt_url: str) -> None:
    credentials = _provision(cli, 1)[0]
    output = cli(
        "edge", "run", "--credentials", str(credentials), "--bus", "serial:ttyS0", "--broker",
        mqtt_url, "--buffer", "agent.db", code=1,
    )  # fmt: skip
    assert "unknown bus kind 'serial'; expected virtual, socketcan or log" in output


def test_credentials_readable_by_others_are_refused(cli: Callable[..., str], mqtt_url: str) -> None:
    credentials = _provision(cli, 1)[0]
    credentials.chmod(0o644)
    output = cli(
        "edge", "run", "--credentials", str(credentials), "--bus", "virtual:x", "--broker", mqtt_url,
        code=1,
    )  # fmt: skip
    assert "readable by group/others; chmod 600 it" in output


def test_check_campaign_accepts_a_good_one_and_names_the_bad_token(
    cli: Callable[..., str], tmp_path: Path
) -> None:
    good: dict[str, Any] = {
        "id": "hot",
        "version": 1,
        "signals": ["Vehicle.Speed"],
        "period_ms": 500,
        "triggers": [
            {"name": "fast", "expression": "Vehicle.Speed > 120", "pre_s": 5, "post_s": 5}
        ],
    }
    path = tmp_path / "campaign.json"
    path.write_text(json.dumps(good))
    output = cli("edge", "check-campaign", str(path))
    assert "campaign 'hot' version 1: valid" in output and "Vehicle.Speed > 120" in output
    good["triggers"][0]["expression"] = "Vehicle.Speed >> 120"
    path.write_text(json.dumps(good))
    output = cli("edge", "check-campaign", str(path), code=1)
    assert "unexpected token '>>' at column 15" in output


@pytest.mark.parametrize(("body", "message"), [
    ('{"version": 1}', "campaign.json: campaign: field 'id' is missing; expected 1-64 characters"),
    ('{"id": null}', "campaign.json: campaign: field 'id' is null; expected"),
    ('{"id": "hot"}',
     "campaign.json: campaign 'hot': field 'version' is missing; expected an integer >= 0"),
    ('{"id": "hot", "version": 1}',
     "campaign.json: campaign 'hot': field 'signals' is missing; expected a non-empty list"),
    ('{"id": "hot",', "campaign.json:1:14: not valid JSON"),
])
def test_a_campaign_missing_a_field_is_refused_naming_file_and_field(
    cli: Callable[..., str], tmp_path: Path, body: str, message: str
) -> None:
    path = tmp_path / "campaign.json"
    path.write_text(body)
    output = " ".join(cli("edge", "check-campaign", str(path), code=1).split())
    assert message in output and "None" not in output


@pytest.mark.parametrize(
    "command",
    [
        ("fleet",),
        ("fleet", "provision"),
        ("fleet", "list"),
        ("edge",),
        ("edge", "run"),
        ("edge", "replay"),
        ("edge", "buffer"),
        ("edge", "check-campaign"),
    ],
)
def test_every_command_has_help(command: tuple[str, ...]) -> None:
    result = CliRunner().invoke(cli_app, [*command, "--help"])
    assert result.exit_code == 0 and "Usage" in result.output
