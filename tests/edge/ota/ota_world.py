"""A small OTA world for tests: both repositories, served over HTTP, and one vehicle's primary
with two A/B ECUs running the simulator's firmware."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from drivetrain.cloud.ota.director import EcuAssignment
from drivetrain.cloud.ota.layout import OtaLayout
from drivetrain.cloud.ota.serve import BackgroundServer
from drivetrain.edge import AbEcu, RepositoryUrls, UptanePrimary
from drivetrain.sim.firmware import FirmwareBehaviour, build_firmware, simulated_health_check

VIN = "1HGCM82633A004352"
ECUS = {"BMS-001": "bms-v2", "ADAS-001": "adas-v1"}


@dataclass
class OtaWorld:
    layout: OtaLayout
    url: str
    primary: UptanePrimary
    vehicle_dir: Path

    def publish(self, component: str, version: str, counter: int, *, hardware_id: str,
                self_test: bool = True, now: datetime | None = None,
                size: int = 8 * 1024) -> str:
        name = f"{component}/{component}-{version}.bin"
        data = build_firmware(FirmwareBehaviour(component, version, self_test), size)
        self.layout.images().add_image(name, data, hardware_id=hardware_id,
                                       release_counter=counter, version=version, now=now)
        return name

    def assign(self, *orders: tuple[str, str], now: datetime | None = None) -> int:
        return self.layout.director().assign(
            VIN, [EcuAssignment(serial, ECUS[serial], image) for serial, image in orders],
            self.layout.images(), now=now)

    def ecu(self, serial: str) -> AbEcu:
        return self.primary.ecus[serial]


@contextmanager
def ota_world(tmp_path: Path, *, now: datetime | None = None) -> Iterator[OtaWorld]:
    layout = OtaLayout.under(tmp_path / "cloud")
    layout.init({"root": (2, 3)}, now=now)
    with BackgroundServer(layout) as server:
        vehicle_dir = tmp_path / "vehicle"
        ecus = [AbEcu(serial, hw, vehicle_dir / "ecus" / serial, simulated_health_check)
                for serial, hw in ECUS.items()]
        primary = UptanePrimary(VIN, vehicle_dir / "ota", RepositoryUrls.under(server.url, VIN),
                                ecus)
        layout.director().enrol(VIN, now=now)
        primary.provision(layout.director().root_bytes(), layout.images().repo.root_bytes(1))
        yield OtaWorld(layout, server.url, primary, vehicle_dir)
