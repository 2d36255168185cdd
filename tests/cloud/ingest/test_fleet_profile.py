"""`drivetrain serve --profile fleet` against the real services: PostgreSQL state, a Mosquitto
vehicle link and a NATS JetStream backbone. A vehicle's telemetry comes in over MQTT, is
committed, and is announced on the durable ``telemetry-validated`` stream; the twin change it
makes lands on ``twin-reported``. Without its services the profile refuses to start; the
embedded default needs none."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from ingest_helpers import SOC, Fleet, telemetry, wall_clock_ns
from typer.testing import CliRunner

from drivetrain.cli import app
from drivetrain.cloud.infra import Database
from drivetrain.core.errors import ConfigurationError
from drivetrain.core.settings import load_settings
from drivetrain.core.transport import Message
from drivetrain.core.transport.jetstream import JetStreamTransport
from drivetrain.core.transport.jetstream_local import LocalJetStream
from drivetrain.core.transport.mqtt import MqttTransport
from drivetrain.core.transport.testing import PrivateBroker


@pytest.fixture
def jetstream(tmp_path: Path) -> Iterator[LocalJetStream]:
    with LocalJetStream(tmp_path / "nats", nodes=1) as node:
        yield node


@pytest.mark.parametrize("backend", ["postgresql"])
def test_serve_in_the_fleet_profile_announces_committed_telemetry_on_the_backbone(
    tmp_path: Path, database_url: str, database: Database, fleet: Fleet,
    private_broker: PrivateBroker, jetstream: LocalJetStream, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DRIVETRAIN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DRIVETRAIN_DATABASE_URL", database_url)
    monkeypatch.setenv("DRIVETRAIN_BROKER_URL", private_broker.url)
    monkeypatch.setenv("DRIVETRAIN_BACKBONE_URL", jetstream.url)
    monkeypatch.setenv("DRIVETRAIN_BACKBONE_NAMESPACE", "fleet-a")
    monkeypatch.chdir(tmp_path)
    since = datetime.now(UTC)
    seen: dict[str, object] = {}

    def run_while_serving(api: object, **options: object) -> None:
        """Stands in for uvicorn: serve has started every loop of the fleet profile."""
        consumer = JetStreamTransport(jetstream.url, client_id="lake-consumer",
                                      namespace="fleet-a")
        announced: list[Message] = []
        twins: list[Message] = []
        arrived = threading.Event()

        def on_telemetry(message: Message) -> None:
            announced.append(message)
            arrived.set()

        vehicle = MqttTransport(private_broker.url, client_id="vehicle-eu1")
        try:
            consumer.subscribe("$share/lake/dt/platform/v1/telemetry", on_telemetry)
            raw = telemetry(fleet.vin("eu1"), fleet.key("eu1"),
                            [(SOC, wall_clock_ns(), 71.5)], batch_id="f1ee7" * 6 + "ab")
            vehicle.publish(raw.topic, raw.payload, qos=1)
            assert arrived.wait(20), "no announcement on telemetry-validated"
            deadline = time.monotonic() + 10
            consumer.replay("dt/platform/v1/twins", since, twins.append)
            while not twins and time.monotonic() < deadline:
                time.sleep(0.1)
            seen["announced"] = [m.payload for m in announced]
            seen["twins"] = [m.payload for m in twins]
            seen["streams"] = {name: consumer.stream_messages(name) for name in
                               ("telemetry-validated", "twin-reported")}
            with JetStreamTransport(jetstream.url, client_id="plain", streams=()) as plain:
                seen["plain"] = plain.delete_streams(["telemetry-validated", "twin-reported"])
        finally:
            vehicle.close()
            consumer.close()

    monkeypatch.setattr("uvicorn.run", run_while_serving)
    result = CliRunner().invoke(app, ["serve", "--profile", "fleet", "--port", "8799"])
    assert result.exit_code == 0, result.output
    assert "profile fleet" in result.output
    assert f"backbone: JetStream {jetstream.url} namespace 'fleet-a'" in result.output
    (payload,) = seen["announced"]  # type: ignore[misc]
    assert b'"kind":"validated"' in payload and b"f1ee7f1ee7" in payload
    assert fleet.vin("eu1").encode() in payload
    assert any(fleet.vin("eu1").encode() in p and SOC.encode() in p
               for p in seen["twins"])  # type: ignore[attr-defined]
    assert seen["streams"] == {"telemetry-validated": 1, "twin-reported": len(seen["twins"])}
    assert seen["plain"] == []  # in a namespace, nothing was made under the plain names


def test_the_fleet_profile_refuses_to_start_without_its_services(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("PROFILE", "DATABASE_URL", "BROKER_URL", "BACKBONE_URL"):
        monkeypatch.delenv(f"DRIVETRAIN_{name}", raising=False)  # the suite's fleet profile
    with pytest.raises(ConfigurationError) as refused:
        load_settings(data_dir=tmp_path, profile="fleet", broker_url="mqtt://127.0.0.1:1883")
    message = str(refused.value)
    assert "backbone_url must be nats://" in message and "PostgreSQL" in message
    embedded = load_settings(data_dir=tmp_path)
    assert embedded.profile == "embedded" and embedded.backbone_url is None
