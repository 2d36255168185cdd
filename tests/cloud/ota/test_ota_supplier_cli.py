"""``drivetrain ota keys supplier add|rotate`` and ``drivetrain ota image add --supplier``:
a supplier's keys, the delegation to it, and images signed into its role from the command
line (the same publishing function as the HTTP route)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from drivetrain.cli import app
from drivetrain.cloud.ota import OtaLayout


def _run(data_dir: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["ota", *args],
                                env={"DRIVETRAIN_DATA_DIR": str(data_dir), "COLUMNS": "200"})
    return result.exit_code, result.output


def test_a_supplier_is_delegated_and_signs_its_images_from_the_command_line(
    tmp_path: Path,
) -> None:
    data = tmp_path / "drivetrain"
    # a migrated state database, as an installation has (the fleet profile's PostgreSQL too)
    upgraded = CliRunner().invoke(app, ["db", "upgrade"], env={"DRIVETRAIN_DATA_DIR": str(data)})
    assert upgraded.exit_code == 0, upgraded.output
    assert _run(data, "init", "--root-threshold", "1", "--root-keys", "1")[0] == 0
    code, out = _run(data, "keys", "supplier", "add", "bosch", "--hardware-id", "BMS-HW3",
                     "--threshold", "2", "--keys", "2")
    assert code == 0, out
    assert "supplier bosch: 2 of 2 key(s), paths bosch/BMS-HW3/*" in out
    code, out = _run(data, "keys", "show", "--json")
    [row] = [r for r in json.loads(out) if r["role"] == "supplier:bosch"]
    assert (row["threshold"], row["keys"], row["on_host"], row["paths"]) == (
        2, 2, 2, ["bosch/BMS-HW3/*"])
    image = tmp_path / "bms.bin"
    image.write_bytes(b"BMS firmware 3.0.0 " * 500)
    code, out = _run(data, "image", "add", str(image), "--name", "bosch/BMS-HW3/bms-3.0.0.bin",
                     "--hardware-id", "BMS-HW3", "--release-counter", "3", "--version", "3.0.0",
                     "--supplier", "bosch")
    assert code == 0, out
    assert "signed by supplier bosch" in out
    image.write_bytes(b"BMS firmware 2.9.0 " * 500)
    code, out = _run(data, "image", "add", str(image), "--name", "bosch/BMS-HW3/bms-2.9.0.bin",
                     "--hardware-id", "BMS-HW3", "--release-counter", "2", "--version", "2.9.0",
                     "--supplier", "bosch")
    assert code != 0 and "release_counter 2 is below 3" in out, out
    code, out = _run(data, "image", "add", str(image), "--name", "oem/bms-2.9.0.bin",
                     "--hardware-id", "BMS-HW3", "--release-counter", "4", "--version", "2.9.0",
                     "--supplier", "bosch")
    assert code != 0 and "outside supplier bosch's delegated paths" in out, out
    images = OtaLayout.under(data).images()
    old_keys = images.suppliers()[0].keyids
    code, out = _run(data, "keys", "supplier", "rotate", "bosch")
    assert code == 0, out
    [supplier] = OtaLayout.under(data).images().suppliers()
    assert supplier.threshold == 1 and set(supplier.keyids).isdisjoint(old_keys)
    assert supplier.paths == ("bosch/BMS-HW3/*",) and supplier.hardware_ids == ("BMS-HW3",)
    code, out = _run(data, "image", "list", "--json")
    assert [(i["name"], i["supplier"]) for i in json.loads(out)] == [
        ("bosch/BMS-HW3/bms-3.0.0.bin", "bosch")]
    assert _run(data, "keys", "supplier", "add", "bosch")[0] != 0  # keys never overwritten
