"""Desired state over a real MQTT 5 broker: the retained, signed delta reaches a vehicle that
connects after it was published (what "re-sent on reconnect" means), and the reconcile
command publishes it."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from twins_support import CHARGE_LIMIT, CLOUD_KEY, Fleet
from typer.testing import CliRunner

from drivetrain.cli import app
from drivetrain.cloud.fleet import cloud_signing_key, provision_vehicle
from drivetrain.cloud.infra import Database, create_tenant, open_database
from drivetrain.cloud.twins import Reconciler, get_twin, set_desired
from drivetrain.core.crypto import VerifyKey
from drivetrain.core.settings import load_settings
from drivetrain.core.transport import STATE_DESIRED, Message, vehicle_topic
from drivetrain.core.transport.mqtt import MqttTransport
from drivetrain.core.transport.testing import unique_name
from drivetrain.core.wire import DesiredStateDelta, parse

pytestmark = pytest.mark.slow


def _retained_delta(url: str, vin: str, key: VerifyKey) -> tuple[Message, DesiredStateDelta]:
    """Connect as the vehicle, subscribe, and return the first message (it must come at once:
    the broker holds it retained)."""
    got: list[Message] = []
    arrived = threading.Event()

    def on_message(message: Message) -> None:
        got.append(message)
        arrived.set()

    with MqttTransport(url, client_id=unique_name("car")) as car:
        car.subscribe(vehicle_topic(vin, STATE_DESIRED), on_message)
        assert arrived.wait(10), "no retained desired-state message"
    envelope = parse(got[0].payload).verify(key)
    return got[0], DesiredStateDelta.from_dict(envelope.json_body())


@pytest.fixture
def cleared(mqtt_url: str) -> Iterator[list[str]]:
    """VINs whose retained desired-state message is cleared after the test."""
    vins: list[str] = []
    yield vins
    with MqttTransport(mqtt_url, client_id=unique_name("cleanup")) as client:
        for vin in vins:
            client.publish(vehicle_topic(vin, STATE_DESIRED), b"", retain=True)


def test_a_vehicle_connecting_after_the_change_gets_the_latest_signed_delta(
    mqtt_url: str, database: Database, fleet: Fleet, cleared: list[str]
) -> None:
    vin = fleet.acme_vins[0]
    cleared.append(vin)
    with MqttTransport(mqtt_url, client_id=unique_name("reconciler")) as link:
        reconciler = Reconciler(database, link, CLOUD_KEY)
        for version, limit in enumerate((70, 75)):
            with database.session() as session:
                set_desired(session, vin, {CHARGE_LIMIT: limit}, tenant="acme",
                            if_match=version, actor="op")
            assert reconciler.run_once().sent == 1
    message, delta = _retained_delta(mqtt_url, vin, CLOUD_KEY.verify_key)
    assert message.retain and delta.version == 2 and delta.values == {CHARGE_LIMIT: 75}
    with database.session() as session:
        assert get_twin(session, vin, tenant="acme").sent_version == 2


def test_the_reconcile_command_publishes_pending_deltas(
    mqtt_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cleared: list[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DRIVETRAIN_DATA_DIR", str(tmp_path / "state"))
    settings = load_settings()
    database = open_database(settings)
    database.upgrade()
    key = cloud_signing_key(settings)
    with database.session() as session:
        create_tenant(session, "acme", actor="test")
        vehicle, _ = provision_vehicle(session, tenant="acme", model="compact-bev", region="EU",
                                       cloud_key=key.verify_key, actor="test",
                                       rng=random.Random())
        set_desired(session, vehicle.vin, {CHARGE_LIMIT: 66}, tenant="acme", if_match=0,
                    actor="op")
    database.dispose()
    cleared.append(vehicle.vin)
    result = CliRunner().invoke(app, ["twin", "reconcile", "--broker", mqtt_url, "--once",
                                      "--client-id", unique_name("reconcile-cli")])
    assert result.exit_code == 0, result.output
    assert "published 1 delta(s)" in result.output
    _, delta = _retained_delta(mqtt_url, vehicle.vin, key.verify_key)
    assert delta.values == {CHARGE_LIMIT: 66}
