"""A real Drivetrain API with its console on a free localhost port, for browser tests, seeded
with a small tenant: vehicles with reported state (and lake history), ECUs, a draft campaign,
and clients of three roles."""

from __future__ import annotations

import json
import random
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path

import httpx
import pyarrow as pa
import uvicorn
from fastapi import FastAPI
from sqlalchemy.orm import Session

from drivetrain.api import create_app
from drivetrain.api.background import ControlPlane
from drivetrain.cloud.fleet import provision_vehicle
from drivetrain.cloud.infra import Database, Role, create_client, create_tenant, open_database
from drivetrain.cloud.lake import Lake
from drivetrain.cloud.privacy import give_consent, vehicle_pseudonym
from drivetrain.cloud.twins import apply_reported, record_ecu_inventory
from drivetrain.core.crypto import SigningKey
from drivetrain.core.settings import load_settings
from drivetrain.core.vss.privacy import privacy_category_for

TENANT = "acme"
SPEED = "Vehicle.Speed"
#: A technical signal: the contract purposes (fleet_operations) may read its history.
SOC = "Vehicle.Powertrain.TractionBattery.StateOfCharge.Current"
#: A string a vehicle might send to attack the operators' browsers (the third car reports it).
EVSE_ID = "Vehicle.Powertrain.TractionBattery.Charging.EvseId"
MARKUP = '<img src=x onerror="window.__injected=1"><script>window.__injected=2</script>'
#: Where the seeded cars are and what they report: (region, lat, lon, speed, charging).
CARS = (("EU", 48.137, 11.575, 42.0, False), ("EU", 48.20, 11.62, 0.0, True),
        ("US", 37.77, -122.42, 0.0, False))
ACCOUNT = "driver:alice"
#: What the seeded fleet account consents to for fleet operations.
FLEET_CONSENT = ("location", "driving_behaviour")
CAMPAIGN = {
    "campaign": {"id": "speed-sample", "signals": [SPEED], "period_ms": 1000},
    "targeting": {"query": 'region == "EU"'},
    "description": "speed every second",
}


@dataclass(frozen=True)
class Client:
    client_id: str
    client_secret: str


@dataclass(frozen=True)
class Console:
    url: str
    database: Database  # the server's: its change feed sees what is written here
    vins: list[str]
    operator: Client
    reader: Client
    admin: Client
    data_dir: Path  # the server's: OTA repositories and model registry live here
    app: FastAPI  # the served app (a test may hang a demo board on it)


class _ThreadServer(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # the main thread keeps its handlers
        return


def _soc_history(pseudonym: str, now: datetime) -> pa.Table:
    """Ten minutes of state of charge, one sample every 10 s, ending now."""
    n = 60
    return pa.table({
        "vehicle": pa.DictionaryArray.from_arrays(
            pa.array([0] * n, pa.int32()), pa.array([pseudonym])),
        "path": pa.DictionaryArray.from_arrays(pa.array([0] * n, pa.int16()), pa.array([SOC])),
        "ts": pa.array([int((now - timedelta(seconds=10 * (n - i))).timestamp()) * 10**9
                        for i in range(n)], pa.timestamp("ns", tz="UTC")),
        "value": pa.array([30.0 + 20.0 * ((i % 12) / 12) for i in range(n)], pa.float64()),
        "text": pa.nulls(n, pa.utf8()),
        "category": pa.DictionaryArray.from_arrays(
            pa.array([0] * n, pa.int8()), pa.array([privacy_category_for(SOC)])),
        "batch_id": pa.DictionaryArray.from_arrays(
            pa.array([0] * n, pa.int32()), pa.array([uuid.uuid4().hex])),
    })


def _client(session: Session, role: Role) -> Client:
    created = create_client(session, tenant=TENANT, role=role, actor="test")
    return Client(created.client.client_id, created.client_secret)


def _sell_a_subscription(url: str, admin: Client, vin: str) -> None:
    """The example catalog, a paying account and its subscription to boost-monthly."""
    token = httpx.post(f"{url}/v1/auth/token", data={
        "grant_type": "client_credentials", "client_id": admin.client_id,
        "client_secret": admin.client_secret}).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    catalog = json.loads(
        resources.files("drivetrain.cloud.commerce").joinpath("example_catalog.json").read_text())
    for method, path, body in (
        ("PUT", "/v1/commerce/catalog", catalog),
        ("PUT", f"/v1/commerce/accounts/{ACCOUNT}/payment-method",
         {"payment_method": "test_card_ok"}),
        ("POST", "/v1/commerce/subscriptions",
         {"vin": vin, "account_id": ACCOUNT, "offer_id": "boost-monthly"}),
    ):
        httpx.request(method, f"{url}{path}", json=body, headers=headers).raise_for_status()


@contextmanager
def console_server(data_dir: Path) -> Iterator[Console]:
    """Serve the seeded platform until exit."""
    settings = load_settings(deployment="embedded", data_dir=data_dir)
    database = open_database(settings)
    app = create_app(settings, database)
    now = datetime.now(UTC)
    rng = random.Random(11)
    cloud = SigningKey.generate().verify_key
    with database.session() as session:
        create_tenant(session, TENANT, actor="test")
        operator = _client(session, Role.FLEET_OPERATOR)
        reader = _client(session, Role.READ_ONLY)
        admin = _client(session, Role.ADMIN)
        vins = [provision_vehicle(session, tenant=TENANT, model="compact-bev", region=region,
                                  cloud_key=cloud, actor="test", rng=rng)[0].vin
                for region, *_ in CARS]
        pseudonyms = [vehicle_pseudonym(session, TENANT, vin) for vin in vins]
    with database.session() as session:
        apply_reported(session, {vin: {
            "Vehicle.CurrentLocation.Latitude": (lat, now),
            "Vehicle.CurrentLocation.Longitude": (lon, now),
            SPEED: (speed, now),
            "Vehicle.Powertrain.TractionBattery.Charging.IsCharging": (charging, now),
            SOC: (64.5, now),
        } for vin, (_region, lat, lon, speed, charging) in zip(vins, CARS, strict=True)})
        apply_reported(session, {vins[2]: {EVSE_ID: (MARKUP, now)}})
        # The fleet account lets its operators see where its cars are and whether they drive
        # (the fleet map reads twins for fleet_operations; without this, both are withheld).
        for vin in vins:
            give_consent(session, tenant=TENANT, vin=vin, purpose="fleet_operations",
                         categories=FLEET_CONSENT, person="fleet", source="fleet-contract",
                         actor="test")
        for vin, version in zip(vins, ("2.3.1", "2.4.0", "2.4.0"), strict=True):
            record_ecu_inventory(session, vin, {"BMS": ("BMS-HW-1", version),
                                                "VCU": ("VCU-HW-1", "5.1.0")})
    with Lake.open(settings) as lake:
        lake.append("EU", TENANT, _soc_history(pseudonyms[0], now))

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = _ThreadServer(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    # The dispatcher and campaign runner, as `drivetrain serve` runs them (no vehicle link:
    # approved campaigns start, deliveries wait).
    plane = ControlPlane(settings, database, workers=False, dispatching=True).start()
    thread.start()
    try:
        deadline = time.monotonic() + 15
        while not server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the console server did not start in 15 s")
            time.sleep(0.05)
        token = httpx.post(f"{url}/v1/auth/token", data={
            "grant_type": "client_credentials", "client_id": operator.client_id,
            "client_secret": operator.client_secret}).json()["access_token"]
        created = httpx.post(f"{url}/v1/campaigns", json=CAMPAIGN,
                             headers={"Authorization": f"Bearer {token}"})
        created.raise_for_status()
        _sell_a_subscription(url, admin, vins[0])
        yield Console(url=url, database=database, vins=vins, operator=operator, reader=reader,
                      admin=admin, data_dir=data_dir, app=app)
    finally:
        server.should_exit = True
        thread.join(15)
        plane.stop()
        sock.close()
        database.dispose()
