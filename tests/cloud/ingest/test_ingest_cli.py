"""`drivetrain ingest` (dead letters, stats) and `drivetrain worker ingest` from the command
line: tables, JSON, replay, help on every command, specific error exits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fleet_profile import FLEET
from ingest_helpers import SOC, Fleet, telemetry, wall_clock_ns
from typer.testing import CliRunner

from drivetrain.cli import app
from drivetrain.cloud.infra import Database
from drivetrain.cloud.ingest import IngestPipeline, MemoryLake, MemoryReportedState


@pytest.fixture
def runner(database_url: str, database: Database, tmp_path: Path) -> CliRunner:
    return CliRunner(
        env={
            "COLUMNS": "200",
            "NO_COLOR": "1",
            "DRIVETRAIN_DATA_DIR": str(tmp_path / "data"),
            "DRIVETRAIN_DATABASE_URL": database_url,
            "DRIVETRAIN_CONFIG": str(tmp_path / "none.toml"),
            # no broker, except in the fleet profile, which needs its own
            **({} if FLEET else {"DRIVETRAIN_BROKER_URL": ""}),
        }
    )


@pytest.fixture
def refused(database: Database, fleet: Fleet) -> None:
    IngestPipeline(database, MemoryLake(), MemoryReportedState()).process(
        [
            telemetry(fleet.vin("eu1"), fleet.key("eu1"), [(SOC, wall_clock_ns(), 300.0)]),
        ]
    )


@pytest.mark.parametrize(
    "command",
    [
        ["ingest"],
        ["ingest", "dead-letters", "list"],
        ["ingest", "dead-letters", "show"],
        ["ingest", "dead-letters", "replay"],
        ["ingest", "stats"],
        ["worker", "ingest"],
    ],
)
def test_every_ingest_command_has_help(runner: CliRunner, command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0 and "Usage" in result.output


def test_dead_letters_are_listed_shown_and_replayed(
    runner: CliRunner, refused: None, fleet: Fleet
) -> None:
    listed = runner.invoke(app, ["ingest", "dead-letters", "list"])
    assert listed.exit_code == 0, listed.output
    assert "out_of_range" in listed.output and fleet.vin("eu1") in listed.output
    as_json = runner.invoke(app, ["ingest", "dead-letters", "list", "--json"])
    (letter,) = json.loads(as_json.stdout)
    assert letter["reason"] == "out_of_range" and letter["tenant"] == "acme"
    shown = runner.invoke(app, ["ingest", "dead-letters", "show", str(letter["dead_letter_id"])])
    assert shown.exit_code == 0 and SOC in shown.output and "300" in shown.output
    shown_json = json.loads(runner.invoke(
        app, ["ingest", "dead-letters", "show", str(letter["dead_letter_id"]), "--json"]).stdout)
    assert shown_json["dead_letter"]["reason"] == "out_of_range"
    assert [item["value"] for item in shown_json["refused_items"]] == [300.0]
    replayed = runner.invoke(app, ["ingest", "dead-letters", "replay", "--reason", "out_of_range"])
    assert replayed.exit_code == 0, replayed.output
    assert "still_refused" in replayed.output
    stats = runner.invoke(app, ["ingest", "stats", "--tenant", "acme"])
    assert stats.exit_code == 0 and "out_of_range" in stats.output
    stats_json = json.loads(runner.invoke(app, ["ingest", "stats", "--tenant", "acme",
                                                "--json"]).stdout)
    assert {"outcome": "out_of_range", "messages": 1, "samples": 1} in stats_json["totals"]


def test_bad_filters_and_unknown_ids_exit_with_the_reason(runner: CliRunner, refused: None) -> None:
    result = runner.invoke(app, ["ingest", "dead-letters", "list", "--reason", "bogus"])
    assert result.exit_code == 2 and "bogus" in result.output
    result = runner.invoke(app, ["ingest", "dead-letters", "list", "--since", "yesterday"])
    assert result.exit_code == 2 and "ISO 8601" in result.output
    result = runner.invoke(app, ["ingest", "dead-letters", "show", "999999"])
    assert result.exit_code == 1 and "999999" in result.output


@pytest.mark.embedded_only(reason="a worker with no broker configured (the fleet profile "
                                  "names one)")
def test_worker_needs_a_broker(runner: CliRunner) -> None:
    result = runner.invoke(app, ["worker", "ingest"])
    assert result.exit_code == 2 and "--broker" in result.output
    result = runner.invoke(app, ["worker", "ingest", "--broker", "ftp://example"])
    assert result.exit_code == 1 and "mqtt://" in result.output
