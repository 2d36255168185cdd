"""``/v1/ota``: images the Image repository signs, and a vehicle's Director assignments, read
per tenant (another tenant's vehicle is a 404)."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient

from drivetrain.cloud.fleet import provision_vehicle
from drivetrain.cloud.infra import Database
from drivetrain.cloud.ota import EcuAssignment, OtaLayout
from drivetrain.core.crypto import SigningKey
from drivetrain.core.settings import Settings

CLOUD = SigningKey.generate()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _vehicle(database: Database, tenant: str, seed: int) -> str:
    with database.session() as session:
        return provision_vehicle(session, tenant=tenant, model="compact-bev", region="EU",
                                 cloud_key=CLOUD.verify_key, actor="test",
                                 rng=random.Random(seed))[0].vin


def test_images_and_assignments_are_read_per_tenant(
    client: TestClient, settings: Settings, database: Database,
    new_tenant: Callable[[str], Any], new_client: Callable[..., Any],
    get_token: Callable[..., str],
) -> None:
    acme = new_tenant("acme")
    globex = new_tenant("globex")
    reader = bearer(get_token(new_client(acme, "read_only")))
    other = bearer(get_token(new_client(globex, "read_only")))
    vin = _vehicle(database, "acme", 1)
    assert client.get("/v1/ota/images", headers=reader).json() == []  # before ota init
    layout = OtaLayout.under(settings.data_dir)
    layout.init({"root": (1, 1)})
    layout.images().add_image("bms/bms-2.6.1.bin", b"fw", hardware_id="BMS-CH50-HW3",
                              release_counter=7, version="2.6.1")
    assert client.get(f"/v1/ota/vehicles/{vin}/assignments", headers=reader).json() == []
    layout.director().assign(vin, [EcuAssignment("BMS", "BMS-CH50-HW3", "bms/bms-2.6.1.bin")],
                             layout.images())
    images = client.get("/v1/ota/images", headers=reader)
    assert images.status_code == 200, images.text
    assert [(i["name"], i["release_counter"]) for i in images.json()] == [
        ("bms/bms-2.6.1.bin", 7)]
    assigned = client.get(f"/v1/ota/vehicles/{vin}/assignments", headers=reader)
    assert assigned.json() == [{"ecu_serial": "BMS", "hardware_id": "BMS-CH50-HW3",
                                "image": "bms/bms-2.6.1.bin"}]
    assert client.get(f"/v1/ota/vehicles/{vin}/assignments", headers=other).status_code == 404
    assert client.get("/v1/ota/images").status_code == 401
