"""`drivetrain serve` in the embedded deployment runs the dispatcher beside the API: without a
vehicle link a command says it is not delivered; with a broker it reaches a real agent and
the agent's answer comes back (the process's own ingest worker stores the ack)."""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fleet_profile import FLEET

from drivetrain.cloud.fleet import cloud_signing_key, provision_vehicle
from drivetrain.cloud.infra import Database
from drivetrain.core.settings import load_settings
from drivetrain.core.transport import COMMANDS, vehicle_topic
from drivetrain.core.transport.mqtt import MqttTransport
from drivetrain.core.transport.testing import unique_name
from drivetrain.core.vss import builtin_catalog
from drivetrain.edge.actuator import InMemoryActuator
from drivetrain.edge.agent import EdgeAgent
from drivetrain.edge.buffer import MemoryBuffer
from drivetrain.edge.identity import VehicleIdentity

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Served:
    """A `drivetrain serve` process on a data dir, and an admin token for it."""

    def __init__(self, data: Path, broker: str | None) -> None:
        self.data = data
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "DRIVETRAIN_DATA_DIR": str(data)}
        if not FLEET:  # the fleet profile's state and backbone come from the environment
            env.pop("DRIVETRAIN_DATABASE_URL", None)
        env.pop("DRIVETRAIN_BROKER_URL", None)
        if broker is not None:
            env["DRIVETRAIN_BROKER_URL"] = broker
        self.process = subprocess.Popen(
            [sys.executable, "-m", "drivetrain", "serve", "--port", str(self.port)],
            env=env, cwd=data.parent, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                httpx.get(f"{self.base}/healthz", timeout=1.0)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        creds = json.loads((data / "bootstrap-admin.json").read_text())
        token = httpx.post(f"{self.base}/v1/auth/token", data={
            "grant_type": "client_credentials", "client_id": creds["client_id"],
            "client_secret": creds["client_secret"]}).json()["access_token"]
        self.http = httpx.Client(base_url=self.base, timeout=10.0,
                                 headers={"Authorization": f"Bearer {token}"})
        self.output = ""

    def stop(self) -> None:
        if self.process.poll() is not None and self.output:
            return
        self.http.close()
        self.process.terminate()
        self.output, _ = self.process.communicate(timeout=30)


@pytest.fixture
def served(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Served]:
    broker = request.getfixturevalue("mqtt_url") if request.param else None
    server = Served(tmp_path / "data", broker)
    try:
        yield server
    finally:
        server.stop()


def _vehicle(data: Path) -> VehicleIdentity:
    settings = load_settings(data_dir=data)
    database = Database(settings.state_database_url)
    try:
        with database.session() as session:
            _v, credentials = provision_vehicle(
                session, tenant="default", model="compact-bev", region="EU",
                cloud_key=cloud_signing_key(settings).verify_key, actor="test",
                rng=random.Random(),
            )
    finally:
        database.dispose()
    return VehicleIdentity.from_dict(credentials.to_dict())


def _until(http: httpx.Client, path: str, done: Any, timeout_s: float = 25.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        body = http.get(path).json()
        if done(body) or time.monotonic() > deadline:
            return body
        time.sleep(0.2)


@pytest.mark.embedded_only(reason="serve without a vehicle link (the fleet profile needs one)")
@pytest.mark.parametrize("served", [False], indirect=True, ids=["no-link"])
def test_without_a_vehicle_link_a_command_says_it_is_not_delivered(served: Served) -> None:
    vin = _vehicle(served.data).vin
    sent = served.http.post("/v1/commands", json={"vin": vin, "name": "flash_lights"}).json()
    shown = _until(served.http, f"/v1/commands/{sent['job_id']}",
                   lambda c: c["waiting_reason"] is not None)
    assert shown["waiting_reason"] == "not delivered: no vehicle link"
    assert shown["delivery"]["state"] == "queued"
    # A desired value says so too, instead of staying silently pending.
    limit = "Vehicle.Powertrain.TractionBattery.Charging.ChargeLimit"
    version = served.http.get(f"/v1/twins/{vin}").json()["version"]
    written = served.http.patch(f"/v1/twins/{vin}/desired", json={"values": {limit: 80}},
                                headers={"If-Match": f'"{version}"'})
    assert written.status_code == 200, written.text
    summary = _until(served.http, "/v1/twins/reconciliation",
                     lambda s: s["pending_reasons"] != {})
    assert summary["pending"] == 1
    assert summary["pending_reasons"] == {"not delivered: no vehicle link": 1}
    item = next(i for i in served.http.get(f"/v1/twins/{vin}").json()["items"]
                if i["path"] == limit)
    assert item["status"] == "pending" and item["reason"] == "not delivered: no vehicle link"
    served.stop()
    assert "vehicle link: none" in served.output


@pytest.mark.parametrize("served", [True], indirect=True, ids=["mosquitto"])
def test_with_a_broker_a_command_reaches_the_vehicle_and_its_answer_comes_back(
    served: Served, mqtt_url: str
) -> None:
    # readiness follows the process's own MQTT session (which may be reconnecting a moment)
    deadline = time.monotonic() + 15
    while True:
        ready = served.http.get("/readyz").json()
        broker = {c["name"]: c["detail"] for c in ready["checks"]}["broker"]
        if broker == "ok" or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert broker == "ok"
    identity = _vehicle(served.data)
    stop = threading.Event()
    actuator = InMemoryActuator(builtin_catalog(),
                                commands={"flash_lights": lambda args: "flashed"})
    with MqttTransport(mqtt_url, client_id=unique_name("car")) as link:
        agent = EdgeAgent(identity, link, MemoryBuffer(), actuator=actuator)
        thread = threading.Thread(target=agent.run, args=(None,),
                                  kwargs={"stop": stop, "tick_s": 0.1}, daemon=True)
        thread.start()
        try:
            sent = served.http.post("/v1/commands", json={"vin": identity.vin,
                                                          "name": "flash_lights"}).json()
            shown = _until(served.http, f"/v1/commands/{sent['job_id']}",
                           lambda c: c["status"] == "finished")
        finally:
            stop.set()
            thread.join(15)
            link.publish(vehicle_topic(identity.vin, COMMANDS), b"", retain=True)
    assert shown["status"] == "finished", shown
    assert shown["delivery"]["state"] == "succeeded" and shown["delivery"]["detail"] == "flashed"
    assert actuator.executed == [("flash_lights", {})]


def test_the_dispatch_worker_delivers_queued_commands_through_the_broker(
    tmp_path: Path, mqtt_url: str
) -> None:
    from drivetrain.cloud.commands import send_command
    from drivetrain.core.wire import parse

    data = tmp_path / "data"
    settings = load_settings(data_dir=data)
    database = Database(settings.state_database_url)
    database.upgrade()
    try:
        from drivetrain.cloud.infra import create_tenant

        with database.session() as session:
            create_tenant(session, "acme", actor="test")
            _v, credentials = provision_vehicle(
                session, tenant="acme", model="compact-bev", region="EU",
                cloud_key=cloud_signing_key(settings).verify_key, actor="test",
                rng=random.Random())
        vin = credentials.vin
        with database.session() as session:
            send_command(session, vin, "flash_lights", tenant="acme", actor="op")
    finally:
        database.dispose()
    env = {**os.environ, "DRIVETRAIN_DATA_DIR": str(data)}
    if not FLEET:  # the fleet profile's state and backbone come from the environment
        env.pop("DRIVETRAIN_DATABASE_URL", None)
    worker = subprocess.Popen(
        [sys.executable, "-m", "drivetrain", "worker", "dispatch", "--broker", mqtt_url,
         "--client-id", unique_name("dispatch"), "--status-interval-s", "0.5"],
        env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    got: list[Any] = []
    arrived = threading.Event()
    try:
        with MqttTransport(mqtt_url, client_id=unique_name("car")) as car:
            car.subscribe(vehicle_topic(vin, COMMANDS),
                          lambda m: (got.append(m), arrived.set()) if m.payload else None)
            assert arrived.wait(30), "the worker sent nothing"
            car.publish(vehicle_topic(vin, COMMANDS), b"", retain=True)
    finally:
        worker.terminate()
        output, _ = worker.communicate(timeout=30)
    envelope = parse(got[0].payload).verify(cloud_signing_key(settings).verify_key)
    assert envelope.vehicle_id == vin and envelope.json_body()["name"] == "flash_lights"
    assert "messages sent" in output, output
