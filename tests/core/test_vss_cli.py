"""`drivetrain vss list | show | validate`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from drivetrain.cli import app
from drivetrain.core.vss import builtin_catalog


@pytest.fixture
def runner() -> CliRunner:
    # Wide enough that Rich never folds a VSS path inside a table cell.
    return CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1"})


@pytest.mark.parametrize("command", [[], ["list"], ["show"], ["validate"]])
def test_every_vss_command_has_help(runner: CliRunner, command: list[str]) -> None:
    result = runner.invoke(app, ["vss", *command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def test_list_shows_every_builtin_signal_and_the_count(runner: CliRunner) -> None:
    result = runner.invoke(app, ["vss", "list"])
    assert result.exit_code == 0, result.output
    assert result.output.rstrip().endswith(f"{len(builtin_catalog())} signals")
    assert "Vehicle.Powertrain.TractionBattery.StateOfCharge.Current" in result.output


def test_list_filters_by_prefix_and_category(runner: CliRunner) -> None:
    result = runner.invoke(
        app, ["vss", "list", "--prefix", "Vehicle.CurrentLocation", "--category", "location"]
    )
    assert result.exit_code == 0, result.output
    expected = builtin_catalog().with_prefix("Vehicle.CurrentLocation")
    assert result.output.rstrip().endswith(f"{len(expected)} signals")
    assert "Vehicle.CurrentLocation.Latitude" in result.output
    assert "Vehicle.Speed " not in result.output


def test_list_refuses_an_unknown_category(runner: CliRunner) -> None:
    result = runner.invoke(app, ["vss", "list", "--category", "biometric"])
    assert result.exit_code == 2
    assert "biometric" in result.output


def test_list_reads_a_full_export_with_catalog(runner: CliRunner, tmp_path: Path) -> None:
    export = tmp_path / "mini.json"
    builtin_catalog().with_prefix("Vehicle.LowVoltageBattery").to_vss_json(export)
    result = runner.invoke(app, ["vss", "list", "--catalog", str(export)])
    assert result.exit_code == 0, result.output
    assert result.output.rstrip().endswith("4 signals")


def test_list_with_a_broken_catalog_file_exits_1_naming_the_file(
    runner: CliRunner, tmp_path: Path
) -> None:
    export = tmp_path / "broken.json"
    export.write_text(
        json.dumps({"Vehicle": {"type": "branch", "description": "v", "children": {"X": 1}}})
    )
    result = runner.invoke(app, ["vss", "list", "--catalog", str(export)])
    assert result.exit_code == 1
    assert "broken.json: node Vehicle.X: expected an object" in result.output


def test_show_prints_the_signal_definition(runner: CliRunner) -> None:
    result = runner.invoke(app, ["vss", "show", "Vehicle.CurrentLocation.Latitude"])
    assert result.exit_code == 0, result.output
    for text in ("double", "degrees", "-90", "location"):
        assert text in result.output


def test_show_unknown_path_exits_1_with_a_suggestion(runner: CliRunner) -> None:
    result = runner.invoke(app, ["vss", "show", "Vehicle.Sped"])
    assert result.exit_code == 1
    assert "unknown VSS signal 'Vehicle.Sped'" in result.output
    assert "Vehicle.Speed" in result.output


@pytest.mark.parametrize(
    ("path", "value", "printed"),
    [
        ("Vehicle.Speed", "87.5", "Vehicle.Speed = 87.5 km/h (float)"),
        ("Vehicle.Cabin.DoorCount", "4", "= 4 (uint8)"),
        ("Vehicle.IsMoving", "true", "= true (boolean)"),
        ("Vehicle.Powertrain.Transmission.Type", "CVT", '= "CVT" (string)'),
        ("Vehicle.Diagnostics.DTCList", '["P0301", "U0100"]', '= ["P0301", "U0100"] (string[])'),
    ],
)
def test_validate_accepts_a_good_value_and_prints_it_normalised(
    runner: CliRunner, path: str, value: str, printed: str
) -> None:
    result = runner.invoke(app, ["vss", "validate", path, value])
    assert result.exit_code == 0, result.output
    assert printed in result.output


@pytest.mark.parametrize(
    ("path", "value", "error"),
    [
        (
            "Vehicle.Powertrain.TractionBattery.StateOfCharge.Current",
            "120",
            "value 120 is outside [0, 100.0] percent",
        ),
        (
            "Vehicle.Cabin.DoorCount",
            "300",
            "not a valid VSS uint8: expected an integer that fits uint8",
        ),
        ("Vehicle.Speed", "fast", "value 'fast' of Python type str is not a valid VSS float"),
        ("Vehicle.IsMoving", "1", "value '1' of Python type str is not a valid VSS boolean"),
        ("Vehicle.Nope", "1", "unknown VSS signal 'Vehicle.Nope'"),
    ],
)
def test_validate_exits_1_with_the_specific_error(
    runner: CliRunner, path: str, value: str, error: str
) -> None:
    result = runner.invoke(app, ["vss", "validate", path, value])
    assert result.exit_code == 1
    assert error in result.output
