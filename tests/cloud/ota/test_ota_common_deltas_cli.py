"""``drivetrain ota image add`` with no ``--delta-from``: deltas are published from the
versions most installed on the image's hardware id in the twins' ECU inventory (those whose
image is published), and the bytes saved are printed."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from typer.testing import CliRunner

from drivetrain.cli import app
from drivetrain.cloud.fleet import provision_vehicle
from drivetrain.cloud.infra import create_tenant, open_database
from drivetrain.cloud.ota import OtaLayout
from drivetrain.cloud.twins import record_ecu_inventory
from drivetrain.core.crypto import SigningKey
from drivetrain.core.settings import load_settings

HW = "BMS-HW3"


def _run(data_dir: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args),
                                env={"DRIVETRAIN_DATA_DIR": str(data_dir), "COLUMNS": "200"})
    return result.exit_code, result.output


def _firmware(version: str) -> bytes:
    rng = random.Random(11)
    return bytes(rng.getrandbits(8) for _ in range(8192)) + f"BMS {version}".encode() * 50


@pytest.mark.embedded_only(
    reason="publishes before any state database exists, which only the embedded SQLite "
    "default allows (an unmigrated PostgreSQL database is refused: run db upgrade)"
)
def test_image_add_publishes_deltas_from_the_most_installed_versions(tmp_path: Path) -> None:
    data = tmp_path / "drivetrain"
    image = tmp_path / "bms.bin"
    # no state database yet: published without deltas, nothing asked of twins
    assert _run(data, "ota", "init", "--root-threshold", "1", "--root-keys", "1")[0] == 0
    for version, counter in (("2.4.0", 4), ("2.5.0", 5)):
        image.write_bytes(_firmware(version))
        code, out = _run(data, "ota", "image", "add", str(image), "--name",
                         f"bms/bms-{version}.bin", "--hardware-id", HW, "--release-counter",
                         str(counter), "--version", version)
        assert code == 0 and "delta" not in out, out
    assert _run(data, "db", "upgrade")[0] == 0
    database = open_database(load_settings(data_dir=data))
    cloud = SigningKey.generate()
    try:
        with database.session() as session:
            create_tenant(session, "default", actor="test")
            for n, version in enumerate(["2.5.0"] * 3 + ["2.4.0"] * 2 + ["2.3.0"]):
                vin = provision_vehicle(session, tenant="default", model="compact-bev",
                                        region="EU", cloud_key=cloud.verify_key, actor="test",
                                        rng=random.Random(70 + n))[0].vin
                record_ecu_inventory(session, vin, {"BMS": (HW, version)})
    finally:
        database.dispose()
    image.write_bytes(_firmware("2.6.0"))
    code, out = _run(data, "ota", "image", "add", str(image), "--name", "bms/bms-2.6.0.bin",
                     "--hardware-id", HW, "--release-counter", "6", "--version", "2.6.0")
    assert code == 0, out
    assert "installed 2.5.0 on 3 ECU(s): delta source bms/bms-2.5.0.bin" in out
    assert "installed 2.4.0 on 2 ECU(s): delta source bms/bms-2.4.0.bin" in out
    assert "2.3.0" not in out  # never published: no delta source, no place among the three
    images = OtaLayout.under(data).images()
    assert len([i for i in images.images() if i.kind == "delta"]) == 2
    # already published: add_delta answers the stored delta's figures, signing nothing new
    saved = {source: images.add_delta(source, "bms/bms-2.6.0.bin").bytes_saved
             for source in ("bms/bms-2.5.0.bin", "bms/bms-2.4.0.bin")}
    assert len([i for i in images.images() if i.kind == "delta"]) == 2
    fleet = 3 * saved["bms/bms-2.5.0.bin"] + 2 * saved["bms/bms-2.4.0.bin"]
    assert (f"bytes saved: {sum(saved.values()):,} per download of each delta; {fleet:,} "
            "across the ECUs running the sources") in out
    # --common-sources 0: no delta
    image.write_bytes(_firmware("2.7.0"))
    code, out = _run(data, "ota", "image", "add", str(image), "--name", "bms/bms-2.7.0.bin",
                     "--hardware-id", HW, "--release-counter", "7", "--version", "2.7.0",
                     "--common-sources", "0")
    assert code == 0 and "delta" not in out and "bytes saved" not in out, out
