"""The "fleet drives" and "telemetry lands" acts against a real embedded platform."""

from __future__ import annotations

import json
from typing import Any

import pytest
from act_support import act_context

from drivetrain.demo import EmbeddedPlatform, PlatformHandles, demo_settings
from drivetrain.demo.act_fleet_drives import FLEET_DRIVES, NO_LOCATION_KEY, fleet_dir
from drivetrain.demo.act_telemetry_lands import TELEMETRY_LANDS, _verdict
from drivetrain.sim.fleet.groundtruth import MANIFEST_FILE


@pytest.fixture(scope="module")
def fleet_drove(platform: PlatformHandles) -> Any:
    return FLEET_DRIVES.run(act_context(platform, seed=11, vehicles=4, budget_s=40.0))


def test_fleet_drives_every_vehicle_publishes_and_every_frame_decodes(fleet_drove: Any) -> None:
    assert fleet_drove.passed, fleet_drove.check
    assert fleet_drove.figures["vehicles"] == 4
    assert fleet_drove.figures["frames"] > 0 and fleet_drove.figures["signals"] > 0
    assert fleet_drove.figures["km_driven"] > 0
    assert "every vehicle published signed telemetry" in fleet_drove.check


def test_fleet_drives_writes_a_manifest_naming_the_vehicle_without_location_consent(
    platform: PlatformHandles, fleet_drove: Any
) -> None:
    manifest = json.loads(
        (fleet_dir(act_context(platform, seed=11, vehicles=4, budget_s=1)) / MANIFEST_FILE).read_text()
    )
    vins = [v["vin"] for v in manifest["vehicles"]]
    assert len(vins) == 4 and manifest[NO_LOCATION_KEY] == vins[-1]
    assert manifest["files"]["component_health.parquet"]["rows"] >= 4


def test_telemetry_lands_with_rows_per_region_and_no_location_for_the_refusing_vehicle(
    platform: PlatformHandles, fleet_drove: Any
) -> None:
    result = TELEMETRY_LANDS.run(act_context(platform, seed=11, vehicles=4, budget_s=30.0))
    assert result.passed, result.check
    assert result.figures["location_rows"] > 0
    assert {k for k in result.figures if k.startswith("rows_")} >= {"rows_EU", "rows_US"}
    assert "0 location rows" in result.check


def test_telemetry_lands_fails_when_the_refusing_vehicle_has_location_rows() -> None:
    vehicles = [{"vin": "A", "region": "EU"}, {"vin": "B", "region": "US"}]
    counts = [{"region": "EU", "rows": 10}, {"region": "US", "rows": 10}]
    rows = [
        {"region": "EU", "vehicle": "pa", "category": "location", "n": 5},
        {"region": "US", "vehicle": "pb", "category": "location", "n": 3},
        {"region": "US", "vehicle": "pb", "category": "technical", "n": 7},
    ]
    result = _verdict(vehicles, "B", {"pa": "A", "pb": "B"}, counts, rows)
    assert not result.passed
    assert "B withheld location consent but has 3 location rows" in result.check


def test_telemetry_lands_fails_for_a_region_without_rows() -> None:
    vehicles = [{"vin": "A", "region": "EU"}, {"vin": "B", "region": "CN"}]
    rows = [{"region": "EU", "vehicle": "pa", "category": "location", "n": 2}]
    result = _verdict(vehicles, "B", {"pa": "A", "pb": "B"}, [{"region": "EU", "rows": 2}], rows)
    assert not result.passed and "no rows stored for region(s) CN" in result.check


def test_telemetry_lands_fails_for_rows_outside_the_vehicles_region() -> None:
    vehicles = [{"vin": "A", "region": "EU"}, {"vin": "B", "region": "US"}]
    rows = [
        {"region": "EU", "vehicle": "pa", "category": "location", "n": 2},
        {"region": "EU", "vehicle": "pb", "category": "technical", "n": 2},
        {"region": "US", "vehicle": "pb", "category": "technical", "n": 2},
    ]
    result = _verdict(vehicles, "B", {"pa": "A", "pb": "B"}, [{"region": "EU", "rows": 6}], rows)
    assert not result.passed and "B (US) has 2 rows under EU" in result.check


def test_telemetry_lands_fails_without_a_fleet_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    embedded = EmbeddedPlatform(demo_settings(tmp_path_factory.mktemp("empty")))
    try:
        result = TELEMETRY_LANDS.run(act_context(embedded.start(), seed=11, vehicles=2, budget_s=10.0))
    finally:
        embedded.stop()
    assert not result.passed and "no fleet run to check" in result.check
