"""`drivetrain sim fleet`: help, a short run that provisions, drives, lands in the lake and
writes the ground truth, a re-run that re-keys the same vehicles, and refused options."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from drivetrain.cli import app as cli_app
from drivetrain.cloud.fleet import get_vehicle, list_vehicles
from drivetrain.cloud.infra import Database
from drivetrain.cloud.lake import Lake
from drivetrain.core.settings import load_settings
from drivetrain.sim.fleet.groundtruth import read_manifest


def test_sim_fleet_help_names_every_option() -> None:
    result = CliRunner().invoke(cli_app, ["sim", "fleet", "--help"])
    assert result.exit_code == 0
    for option in (
        "--vehicles",
        "--duration",
        "--speedup",
        "--out",
        "--broker",
        "--attacks",
        "--headless",
    ):
        assert option in result.output


def test_short_run_provisions_drives_lands_in_the_lake_and_writes_the_ground_truth(
    cli: Callable[..., str], database_url: str
) -> None:
    output = cli(
        "sim", "fleet", "--vehicles", "3", "--duration", "12", "--speedup", "0", "--headless",
        "--out", "run", "--attacks", "mixed",
    )  # fmt: skip
    assert "[fleet] t=12/12 s" in output
    assert "3 vehicles drove" in output and "ground truth in" in output
    manifest = read_manifest(Path("run/manifest.json"))
    vins = [v["vin"] for v in manifest["vehicles"]]
    assert len(vins) == 3 and manifest["files"]["attacks.parquet"]["rows"] >= 1
    database = Database(database_url)
    try:
        with database.session() as session:
            registered = {v.vin for v in list_vehicles(session, tenant="default")}
            key_before = get_vehicle(session, vins[0]).key_id
    finally:
        database.dispose()
    assert set(vins) <= registered
    lake = Lake.open(load_settings())
    try:
        rows = {row["region"]: row["rows"] for row in lake.counts("default").to_pylist()}
    finally:
        lake.close()
    assert {v["region"] for v in manifest["vehicles"]} <= set(rows)

    cli(
        "sim",
        "fleet",
        "--vehicles",
        "3",
        "--duration",
        "2",
        "--speedup",
        "0",
        "--headless",
        "--out",
        "run",
    )
    database = Database(database_url)
    try:
        with database.session() as session:
            assert get_vehicle(session, vins[0]).key_id != key_before  # the re-run re-keyed it
    finally:
        database.dispose()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--regions", "EU,XX"), "region 'XX'"),
        (("--models", "tractor"), "model 'tractor'"),
        (("--duration", "0", "--speedup", "5"), "needs --speedup 1"),
        (("--attacks", "chaos"), "'chaos' is not a preset"),
    ],
)
def test_bad_options_are_refused_naming_them(
    cli: Callable[..., str], args: tuple[str, ...], message: str
) -> None:
    output = cli("sim", "fleet", "--vehicles", "2", "--headless", *args, code=2)
    assert message in " ".join(output.split())
