"""`drivetrain lake query | sql | counts | compact | retention | export | verify`."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from lake_rows import make_rows, vehicle_id
from typer.testing import CliRunner

from drivetrain.cli import app
from drivetrain.cloud.lake import Lake

COMMANDS = ["query", "sql", "counts", "compact", "retention", "export", "verify"]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    with Lake(data) as lake:
        lake.append("EU", "acme", make_rows(3_000, seed=1, span_s=2 * 86400))
        lake.append("EU", "acme", make_rows(1_000, seed=2))
        lake.append("US", "acme", make_rows(500, seed=3))
    return data


@pytest.fixture
def runner(data_dir: Path, tmp_path: Path) -> CliRunner:
    return CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1", "DRIVETRAIN_DATA_DIR": str(data_dir),
                          "DRIVETRAIN_CONFIG": str(tmp_path / "none.toml")})


@pytest.mark.parametrize("command", [[], *[[c] for c in COMMANDS]])
def test_every_lake_command_has_help(runner: CliRunner, command: list[str]) -> None:
    result = runner.invoke(app, ["lake", *command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def test_query_prints_a_table_and_writes_all_rows_to_csv_and_parquet(
    runner: CliRunner, tmp_path: Path, data_dir: Path
) -> None:
    csv, parquet = tmp_path / "out.csv", tmp_path / "out.parquet"
    result = runner.invoke(app, [
        "lake", "query", "-t", "acme", "--start", "2024-05-01", "--end", "2024-05-03",
        "-p", "Vehicle.Speed", "--vehicle", vehicle_id(1), "--every", "1h", "--agg", "max",
        "--show", "3", "--csv", str(csv), "--parquet", str(parquet),
    ])
    assert result.exit_code == 0, result.output
    assert "(showing 3)" in result.output and "Vehicle.Speed" in result.output
    from_csv, from_parquet = pacsv.read_csv(csv), pq.read_table(parquet)
    with Lake(data_dir) as lake:
        from datetime import UTC, datetime

        expected = lake.signals("acme", [vehicle_id(1)], ["Vehicle.Speed"],
                                datetime(2024, 5, 1, tzinfo=UTC), datetime(2024, 5, 3, tzinfo=UTC),
                                every="1h", agg="max")
    assert from_parquet.equals(expected)
    assert from_csv.num_rows == expected.num_rows
    assert from_csv.column("value").to_pylist() == expected.column("value").to_pylist()


def test_query_with_group_by_prints_a_fleet_aggregate(runner: CliRunner) -> None:
    result = runner.invoke(app, [
        "lake", "query", "-t", "acme", "--start", "2024-04-30", "--end", "2024-05-04",
        "-p", "Vehicle.Speed", "--group-by", "region",
    ])
    assert result.exit_code == 0, result.output
    assert "EU" in result.output and "US" in result.output and "2 rows" in result.output


def test_sql_and_counts(runner: CliRunner) -> None:
    result = runner.invoke(app, ["lake", "sql", "-t", "acme",
                                 "SELECT count(*) AS n FROM telemetry"])
    assert result.exit_code == 0, result.output
    assert "4,500" in result.output
    result = runner.invoke(app, ["lake", "counts", "-t", "acme"])
    assert result.exit_code == 0, result.output
    assert "location" in result.output and "US" in result.output


def test_refused_sql_exits_1_with_the_reason(runner: CliRunner) -> None:
    result = runner.invoke(app, ["lake", "sql", "-t", "acme", "COPY (SELECT 1) TO 'x.csv'"])
    assert result.exit_code == 1
    assert "exactly one SELECT" in result.output


def test_bad_dates_and_options_exit_2(runner: CliRunner) -> None:
    result = runner.invoke(app, ["lake", "query", "-t", "acme", "--start", "soon", "--end",
                                 "2024-05-02"])
    assert result.exit_code == 2 and "--start 'soon'" in result.output
    result = runner.invoke(app, ["lake", "retention", "--keep", "EU:location"])
    assert result.exit_code == 2 and "REGION:category=DAYS" in result.output
    result = runner.invoke(app, ["lake", "query", "-t", "acme", "--start", "2024-05-01",
                                 "--end", "2024-05-02", "--group-by", "day"])
    assert result.exit_code == 2 and "exactly one --path" in result.output


def test_compact_then_retention_dry_run_then_retention(runner: CliRunner, data_dir: Path) -> None:
    result = runner.invoke(app, ["lake", "compact"])
    assert result.exit_code == 0, result.output
    assert "compaction" in result.output
    dry = runner.invoke(app, ["lake", "retention", "--dry-run", "--keep", "*:location=0",
                              "--today", "2024-05-03"])
    assert dry.exit_code == 0, dry.output
    assert "nothing deleted" in dry.output and "would drop" in dry.output
    with Lake(data_dir) as lake:
        before = lake.counts("acme")
    assert any(r["category"] == "location" for r in before.to_pylist())
    real = runner.invoke(app, ["lake", "retention", "--keep", "*:location=0",
                               "--today", "2024-05-03"])
    assert real.exit_code == 0, real.output
    with Lake(data_dir) as lake:
        after = lake.counts("acme")
    assert not any(r["category"] == "location" for r in after.to_pylist())


def test_retention_without_a_policy_deletes_nothing(runner: CliRunner) -> None:
    result = runner.invoke(app, ["lake", "retention"])
    assert result.exit_code == 0 and "no telemetry expires" in result.output
    assert "dropped 0 rows" in result.output and "re-delivery window" in result.output


def test_export_then_verify(runner: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    result = runner.invoke(app, ["lake", "export", "-t", "acme", "-r", "EU", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "exported 4,000 rows" in result.output
    verified = runner.invoke(app, ["lake", "verify", str(out)])
    assert verified.exit_code == 0 and "ok: 2 files, 4,000 rows" in verified.output
    table = pa.concat_tables([pq.read_table(p) for p in sorted(out.rglob("*.parquet"))])
    assert table.num_rows == 4_000
    (next(out.rglob("*.parquet"))).write_bytes(b"changed")
    assert runner.invoke(app, ["lake", "verify", str(out)]).exit_code == 1
