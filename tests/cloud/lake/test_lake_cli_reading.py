"""Reading the lake from the command line as a newcomer does: nanosecond timestamps print
without pandas, --json everywhere, the defaults (tenant, last 24 hours), and an empty answer
that says why."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from fleet_profile import FLEET
from lake_rows import T0_NS, make_rows
from typer.testing import CliRunner

from drivetrain.cli import app
from drivetrain.cloud.lake import Lake
from drivetrain.commands.output import iso_from_ns

#: Runs the command line with pandas unimportable, as on an install without it.
_WITHOUT_PANDAS = """
import sys
class NoPandas:
    def find_spec(self, name, path=None, target=None):
        if name == "pandas" or name.startswith("pandas."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, NoPandas())
sys.modules.pop("pandas", None)
from drivetrain.cli import main
sys.argv = ["drivetrain", *sys.argv[1:]]
main()
"""


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    with Lake(data) as lake:
        lake.append("EU", "acme", make_rows(500, seed=1))
    return data


@pytest.fixture
def runner(data_dir: Path, tmp_path: Path) -> CliRunner:
    return CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1", "DRIVETRAIN_DATA_DIR": str(data_dir),
                          "DRIVETRAIN_CONFIG": str(tmp_path / "none.toml")})


def _without_pandas(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DRIVETRAIN_DATA_DIR": str(data_dir), "COLUMNS": "200"}
    if not FLEET:  # the fleet profile's state comes from the environment
        env.pop("DRIVETRAIN_DATABASE_URL", None)
    return subprocess.run([sys.executable, "-c", _WITHOUT_PANDAS, *args], env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def _first_ts_ns(data_dir: Path) -> int:
    with Lake(data_dir) as lake:
        table = lake.sql("acme", "SELECT ts FROM telemetry ORDER BY ts LIMIT 1")
    return int(table.column("ts").cast(pa.int64())[0].as_py())


def test_raw_query_and_sql_over_ts_print_nanosecond_times_without_pandas(
    data_dir: Path,
) -> None:
    first = iso_from_ns(_first_ts_ns(data_dir))
    assert len(first.split(".")[1]) == 10  # nine digits and the Z: really nanoseconds
    query = _without_pandas(data_dir, "lake", "query", "-t", "acme", "--start", "2024-05-01",
                            "--end", "2024-05-02", "--show", "500")
    assert query.returncode == 0, query.stderr
    assert "Traceback" not in query.stderr and first in query.stdout
    sql = _without_pandas(data_dir, "lake", "sql", "-t", "acme",
                          "SELECT ts, path, value FROM telemetry ORDER BY ts LIMIT 5")
    assert sql.returncode == 0, sql.stderr
    assert "Traceback" not in sql.stderr and first in sql.stdout


def test_query_sql_and_counts_print_json(runner: CliRunner, data_dir: Path) -> None:
    query = runner.invoke(app, ["lake", "query", "-t", "acme", "--start", "2024-05-01",
                                "--end", "2024-05-02", "--json"])
    assert query.exit_code == 0, query.output
    rows = json.loads(query.stdout)
    assert len(rows) == 500 and set(rows[0]) == {"vehicle", "path", "ts", "value", "text"}
    assert min(r["ts"] for r in rows) == iso_from_ns(_first_ts_ns(data_dir))
    sql = runner.invoke(app, ["lake", "sql", "-t", "acme", "--json",
                              "SELECT count(*) AS n, min(ts) AS first FROM telemetry"])
    assert json.loads(sql.stdout) == [{"n": 500, "first": min(r["ts"] for r in rows)}]
    counts = runner.invoke(app, ["lake", "counts", "-t", "acme", "--json"])
    assert sum(r["rows"] for r in json.loads(counts.stdout)) == 500


def test_tenant_defaults_to_default_and_time_to_the_last_24_hours(
    data_dir: Path, runner: CliRunner
) -> None:
    now_ns = int(datetime.now(UTC).timestamp()) * 1_000_000_000
    hour_ns = 3600 * 1_000_000_000
    with Lake(data_dir) as lake:
        lake.append("EU", "default", make_rows(40, seed=5, start_ns=now_ns - 2 * hour_ns,
                                               span_s=3600))
        lake.append("EU", "default", make_rows(30, seed=6, start_ns=now_ns - 30 * hour_ns,
                                               span_s=3600))
    result = runner.invoke(app, ["lake", "query", "--json"])
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)) == 40  # the day-old batch is outside the window
    start = (datetime.now(UTC) - timedelta(days=2)).isoformat()
    wider = runner.invoke(app, ["lake", "query", "--start", start, "--json"])
    assert len(json.loads(wider.stdout)) == 70


def test_an_empty_query_names_the_missing_consent(runner: CliRunner, data_dir: Path) -> None:
    with Lake(data_dir) as lake:
        lake.append("US", "nocabin", make_rows(50, seed=3, paths=(
            "Vehicle.Powertrain.TractionBattery.StateOfHealth",)))
    result = runner.invoke(app, ["lake", "query", "-t", "nocabin", "--start", "2024-05-01",
                                 "--end", "2024-05-02", "-p", "Vehicle.Speed"])
    assert result.exit_code == 0, result.output
    assert "0 rows" in result.stdout
    assert "driving_behaviour" in result.stderr and "consent" in result.stderr
    assert "drivetrain privacy consent set" in result.stderr


def test_an_empty_query_suggests_the_path_meant(runner: CliRunner) -> None:
    result = runner.invoke(app, ["lake", "query", "-t", "acme", "--start", "2024-05-01",
                                 "--end", "2024-05-02", "-p", "Vehicle.Sped"])
    assert result.exit_code == 0, result.output
    assert "did you mean 'Vehicle.Speed'" in result.stderr


def test_an_empty_query_shows_where_the_data_is_in_time(runner: CliRunner) -> None:
    result = runner.invoke(app, ["lake", "query", "-t", "acme", "--start", "2020-01-01",
                                 "--end", "2020-01-02"])
    assert result.exit_code == 0, result.output
    assert "misses the tenant's data, which spans 2024-05-01T" in result.stderr


def test_an_unknown_tenant_is_an_error(data_dir: Path, tmp_path: Path) -> None:
    from drivetrain.cloud.infra import create_tenant, open_database
    from drivetrain.core.settings import load_settings

    settings = load_settings(data_dir=data_dir)
    database = open_database(settings)
    database.upgrade()
    with database.session() as session:
        create_tenant(session, "acme", actor="test")
    database.dispose()
    runner = CliRunner(env={"DRIVETRAIN_DATA_DIR": str(data_dir),
                            "DRIVETRAIN_CONFIG": str(tmp_path / "none.toml")})
    for command in (["query", "--start", "2024-05-01", "--end", "2024-05-02"],
                    ["sql", "SELECT * FROM telemetry"], ["counts"]):
        result = runner.invoke(app, ["lake", *command, "-t", "acmee"])
        assert result.exit_code == 1, result.output
        assert "tenant 'acmee' does not exist (tenants: acme)" in result.stderr


@pytest.mark.embedded_only(reason="the embedded default's data folder and SQLite file (no "
                                  "database URL: the fleet profile refuses to start without one)")
def test_a_read_in_a_folder_without_data_says_where_it_looked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DRIVETRAIN_DATA_DIR", raising=False)
    monkeypatch.delenv("DRIVETRAIN_DATABASE_URL", raising=False)
    runner = CliRunner(env={"DRIVETRAIN_CONFIG": str(tmp_path / "none.toml"), "COLUMNS": "300"})
    for command in (["lake", "query"], ["lake", "counts"], ["lake", "sql", "SELECT 1"],
                    ["fleet", "list"], ["ingest", "stats"]):
        result = runner.invoke(app, command)
        assert result.exit_code == 1, (command, result.output)
        assert str(tmp_path / ".drivetrain") in result.stderr, result.stderr
        assert "DRIVETRAIN_DATA_DIR" in result.stderr
    assert not (tmp_path / ".drivetrain" / "state.db").exists()  # nothing created by a read


def test_ts_of_the_first_row_is_exact() -> None:
    assert iso_from_ns(T0_NS) == "2024-05-01T00:00:00Z"
    assert iso_from_ns(T0_NS + 1) == "2024-05-01T00:00:00.000000001Z"
    assert iso_from_ns(T0_NS + 250_000_000) == "2024-05-01T00:00:00.250Z"


def test_a_select_that_matches_nothing_says_the_tenant_has_data(runner: CliRunner) -> None:
    result = runner.invoke(app, ["lake", "sql", "-t", "acme",
                                 "SELECT * FROM telemetry WHERE value > 1e9"])
    assert result.exit_code == 0, result.output
    assert "0 rows" in result.stdout
    assert "tenant 'acme' has 500 samples stored; the query selects none of them" in \
        " ".join(result.stderr.split())
