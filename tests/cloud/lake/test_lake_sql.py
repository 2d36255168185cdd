"""Raw SQL for power users: confined to the caller's tenant. Every attack here is refused."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from lake_rows import make_rows

from drivetrain.cloud.lake import Lake
from drivetrain.core.errors import QueryError
from drivetrain.core.settings import load_settings


@pytest.fixture(scope="module")
def two_tenants(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Lake, Path]]:
    data = tmp_path_factory.mktemp("lake") / "data"
    with Lake(data) as lake:
        lake.append("EU", "acme", make_rows(1_000, seed=1))
        lake.append("EU", "globex", make_rows(700, seed=2))
        lake.append("US", "globex", make_rows(300, seed=3))
        yield lake, data


def _globex_file(data: Path) -> Path:
    return next((data / "lake" / "EU").glob("region=EU/tenant=globex/date=*/*.parquet"))


def test_the_telemetry_view_holds_only_the_callers_rows(two_tenants: tuple[Lake, Path]) -> None:
    lake, _ = two_tenants
    acme = lake.sql("acme", "SELECT count(*) AS n, count(DISTINCT region) AS r FROM telemetry")
    assert acme.to_pylist() == [{"n": 1_000, "r": 1}]
    globex = lake.sql("globex", "SELECT region, count(*) AS n FROM telemetry GROUP BY region "
                                "ORDER BY region")
    assert globex.to_pylist() == [{"region": "EU", "n": 700}, {"region": "US", "n": 300}]


def test_the_view_has_the_documented_columns(two_tenants: tuple[Lake, Path]) -> None:
    lake, _ = two_tenants
    table = lake.sql("acme", "SELECT * FROM telemetry LIMIT 1")
    assert table.column_names == ["vehicle", "path", "ts", "value", "text", "category",
                                  "batch_id", "campaign", "region", "date"]


def test_a_tenant_without_data_gets_an_empty_view(two_tenants: tuple[Lake, Path]) -> None:
    lake, _ = two_tenants
    assert lake.sql("initech", "SELECT count(*) AS n FROM telemetry").to_pylist() == [{"n": 0}]


ATTACKS = [
    "SELECT * FROM read_parquet('{other}')",
    "SELECT * FROM read_parquet('{data}/lake/EU/region=EU/tenant=globex/**/*.parquet')",
    "SELECT * FROM read_parquet('{data}/lake/*/*/*/*/*.parquet', hive_partitioning=true)",
    "SELECT * FROM parquet_metadata('{other}')",
    "SELECT * FROM parquet_schema('{other}')",
    "SELECT * FROM read_blob('{other}')",
    "SELECT * FROM read_text('/etc/passwd')",
    "SELECT * FROM read_csv('/etc/passwd', sep=':')",
    "SELECT * FROM sniff_csv('/etc/passwd')",
    "SELECT * FROM glob('{data}/**')",
    "SELECT * FROM read_parquet('{data}/lake/EU/_lake_index.sqlite')",
    "SELECT * FROM sqlite_scan('{data}/lake/EU/_lake_index.sqlite', 'batches')",
    "SELECT * FROM read_parquet('https://example.com/x.parquet')",
    "SELECT * FROM duckdb_secrets()",
]


@pytest.mark.parametrize("attack", ATTACKS)
def test_reading_files_outside_the_tenants_data_is_refused(
    two_tenants: tuple[Lake, Path], attack: str
) -> None:
    lake, data = two_tenants
    query = attack.format(other=_globex_file(data), data=data)
    with pytest.raises(QueryError, match="Permission Error|extension|not allowed|not readable"):
        lake.sql("acme", query)


@pytest.mark.parametrize("statement", [
    "COPY (SELECT * FROM telemetry) TO '{data}/stolen.csv'",
    "ATTACH '{data}/lake/EU/_lake_index.sqlite' AS idx",
    "INSTALL httpfs",
    "LOAD httpfs",
    "SET enable_external_access = true",
    "SET allowed_directories = ['/']",
    "RESET lock_configuration",
    "CREATE TABLE t AS SELECT 1",
    "EXPORT DATABASE '{data}/dump'",
    "SELECT 1; SELECT * FROM read_parquet('{other}')",
    "PRAGMA database_list",
    "CALL pragma_version()",
])
def test_anything_but_one_select_is_refused(
    two_tenants: tuple[Lake, Path], statement: str
) -> None:
    lake, data = two_tenants
    with pytest.raises(QueryError, match="exactly one SELECT"):
        lake.sql("acme", statement.format(data=data, other=_globex_file(data)))
    assert not (data / "stolen.csv").exists() and not (data / "dump").exists()


def test_a_select_that_tries_to_reconfigure_the_connection_cannot(
    two_tenants: tuple[Lake, Path],
) -> None:
    lake, _ = two_tenants
    with pytest.raises(QueryError):
        lake.sql("acme", "SELECT set_config('enable_external_access', 'true')")
    setting = lake.sql("acme", "SELECT current_setting('enable_external_access') AS v")
    assert setting.column("v")[0].as_py() is False


def test_python_variables_of_the_server_are_not_reachable(two_tenants: tuple[Lake, Path]) -> None:
    lake, _ = two_tenants
    for name in ("paths", "files", "query", "lake", "two_tenants", "tenant"):
        with pytest.raises(QueryError):
            lake.sql("acme", f"SELECT * FROM {name}")


def test_a_query_running_past_its_time_limit_is_stopped(two_tenants: tuple[Lake, Path]) -> None:
    lake, _ = two_tenants
    slow = "SELECT count(*) FROM range(100000000000) a"
    with pytest.raises(QueryError, match="longer than 0.5 s"):
        lake.sql("acme", slow, timeout_s=0.5)


def test_a_result_larger_than_max_rows_is_refused(two_tenants: tuple[Lake, Path]) -> None:
    lake, _ = two_tenants
    with pytest.raises(QueryError, match="more than max_rows=10 rows"):
        lake.sql("acme", "SELECT * FROM telemetry", max_rows=10)


@pytest.mark.parametrize("query", ["", "   ", "SELEC 1", "SELECT * FROM nowhere"])
def test_malformed_sql_is_a_query_error_quoting_duckdb(
    two_tenants: tuple[Lake, Path], query: str
) -> None:
    lake, _ = two_tenants
    with pytest.raises(QueryError):
        lake.sql("acme", query)


def test_a_query_selects_one_campaigns_samples_and_older_files_read_as_null(
    tmp_path: Path,
) -> None:
    settings = load_settings(data_dir=tmp_path / "data")
    lake = Lake.open(settings)
    try:
        ts = pa.array([1_800_000_000_000_000_000 + i for i in range(4)], pa.timestamp("ns", "UTC"))
        common = {"vehicle": ["v1"] * 4, "path": ["Vehicle.Speed"] * 4, "ts": ts,
                  "value": [1.0, 2.0, 3.0, 4.0], "text": pa.nulls(4, pa.utf8()),
                  "category": ["driving_behaviour"] * 4}
        old = pa.table({**common, "batch_id": ["a" * 32] * 4})  # a writer without campaigns
        lake.append("EU", "acme", old)
        new = pa.table({**common, "batch_id": ["b" * 32] * 4,
                        "campaign": ["harsh-brake", "harsh-brake", "default", None]})
        lake.append("EU", "acme", new)
        counts = lake.sql("acme", "SELECT campaign, count(*) AS n FROM telemetry "
                                  "GROUP BY campaign ORDER BY campaign NULLS FIRST").to_pylist()
        assert counts == [{"campaign": None, "n": 5}, {"campaign": "default", "n": 1},
                          {"campaign": "harsh-brake", "n": 2}]
    finally:
        lake.close()
