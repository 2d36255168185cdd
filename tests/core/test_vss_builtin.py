"""The built-in catalog ships with the package and covers every area the platform uses."""

from __future__ import annotations

import pytest

from drivetrain.core.errors import CatalogFormatError
from drivetrain.core.vss import builtin_catalog, privacy_category_for
from drivetrain.core.vss.builtin import parse_builtin_yaml

#: Each area the Foundation issue names, with the least number of built-in signals under it.
AREAS = {
    "Vehicle.Speed": 1,
    "Vehicle.Powertrain.ElectricMotor": 10,
    "Vehicle.Powertrain.CombustionEngine": 10,
    "Vehicle.Powertrain.Transmission": 5,
    "Vehicle.Powertrain.TractionBattery.StateOfCharge": 2,
    "Vehicle.Powertrain.TractionBattery.Temperature": 3,
    "Vehicle.Powertrain.TractionBattery.CellVoltage": 3,
    "Vehicle.Powertrain.TractionBattery.Charging": 20,
    "Vehicle.Chassis.Axle": 20,
    "Vehicle.Body": 10,
    "Vehicle.Cabin.HVAC": 5,
    "Vehicle.Cabin.Door": 5,
    "Vehicle.ADAS": 10,
    "Vehicle.CurrentLocation": 6,
    "Vehicle.Diagnostics": 2,
    "Vehicle.LowVoltageBattery": 4,
}


@pytest.mark.parametrize(("prefix", "least"), AREAS.items())
def test_builtin_catalog_covers_each_area(prefix: str, least: int) -> None:
    assert len(builtin_catalog().with_prefix(prefix)) >= least


@pytest.mark.parametrize(
    "path",
    [
        "Vehicle.Powertrain.TractionBattery.StateOfCharge.Current",
        "Vehicle.Powertrain.TractionBattery.StateOfCharge.Displayed",
        "Vehicle.Powertrain.TractionBattery.StateOfHealth",
        "Vehicle.Chassis.Axle.Row2.Wheel.Right.Brake.PadWear",
        "Vehicle.Chassis.Axle.Row1.Wheel.Left.Tire.Pressure",
        "Vehicle.CurrentLocation.Heading",
        "Vehicle.LowVoltageBattery.CurrentVoltage",
        "Vehicle.Powertrain.CombustionEngine.MAF",
    ],
)
def test_signals_the_platform_relies_on_are_built_in(path: str) -> None:
    assert path in builtin_catalog()


def test_every_builtin_category_follows_the_path_rule() -> None:
    for spec in builtin_catalog():
        assert spec.privacy_category == privacy_category_for(spec.path), spec.path


def test_obviously_bounded_signals_carry_bounds() -> None:
    catalog = builtin_catalog()
    for spec in catalog:
        if spec.unit == "percent":
            assert spec.maximum is not None, spec.path
        if spec.unit == "Celsius":
            assert spec.minimum is not None and spec.minimum >= -273.15, spec.path
    avg = catalog.get("Vehicle.AverageSpeed")
    assert (avg.minimum, avg.bounds_source) == (0, "drivetrain")


def test_every_ancestor_branch_has_its_vss_description() -> None:
    catalog = builtin_catalog()
    for spec in catalog:
        parts = spec.path.split(".")
        for depth in range(1, len(parts)):
            branch = catalog.branches[".".join(parts[:depth])]
            assert branch.description, branch.path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("signals: [", "not valid YAML"),
        ("branches: {}", "expected a mapping with a 'signals' list"),
        ("signals:\n  - 3", r"signals\[0\] is 3; expected a mapping"),
        (
            "signals:\n  - {path: Vehicle.X, type: sensor}",
            r"signals\[0\] \(Vehicle\.X\): .*missing",
        ),
        ("branches: [1]\nsignals: []", "'branches' must map branch paths"),
        ("branches: {Vehicle: 3}\nsignals: []", "branch Vehicle: expected a mapping"),
    ],
)
def test_malformed_builtin_yaml_names_the_source_and_entry(text: str, message: str) -> None:
    with pytest.raises(CatalogFormatError, match=rf"^cat\.yaml: .*{message}"):
        parse_builtin_yaml(text, source="cat.yaml")


def test_duplicate_builtin_entries_are_a_format_error() -> None:
    entry = (
        "{path: Vehicle.X, type: sensor, datatype: float, description: d, "
        "privacy_category: technical}"
    )
    with pytest.raises(CatalogFormatError, match="duplicate signal path 'Vehicle.X'"):
        parse_builtin_yaml(f"signals:\n  - {entry}\n  - {entry}", source="cat.yaml")
