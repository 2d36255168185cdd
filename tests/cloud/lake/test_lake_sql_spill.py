"""Raw SQL cannot read what another query spilled, nor any file through a file function.

DuckDB lets a connection read its temporary directory even with external access off; when
every query of the process shared one, a tenant with SQL rights read another tenant's
spilled rows with ``read_blob``. Each query now spills into a private directory of its own,
and file and catalog table functions are refused by name.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lake_rows import make_rows

from drivetrain.cloud.lake import Lake
from drivetrain.cloud.lake.confinement import (
    ALLOWED_TABLE_FUNCTIONS,
    lock_down,
    private_temp_directory,
)
from drivetrain.core.errors import QueryError


@pytest.fixture(scope="module")
def two_tenants(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Lake, Path]]:
    data = tmp_path_factory.mktemp("lake") / "data"
    with Lake(data) as lake:
        lake.append("EU", "acme", make_rows(200, seed=1))
        lake.append("EU", "globex", make_rows(200, seed=2))
        yield lake, data


def _globex_file(data: Path) -> str:
    return str(next((data / "lake" / "EU").glob("region=EU/tenant=globex/date=*/*.parquet")))


def test_read_blob_of_another_querys_spill_directory_is_refused(
    two_tenants: tuple[Lake, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    lake, _ = two_tenants
    # The attack as found: a spill file of another tenant's query in DuckDB's default
    # temporary directory ('.tmp' under the server's working directory).
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".tmp").mkdir()
    (tmp_path / ".tmp" / "duckdb_temp_storage-0.tmp").write_bytes(b"globex secret rows")
    for target in (".tmp/*", str(tmp_path / ".tmp" / "duckdb_temp_storage-0.tmp")):
        for function in ("read_blob", "read_text", "glob"):
            with pytest.raises(QueryError, match=f"table function {function}"):
                lake.sql("acme", f"SELECT * FROM {function}('{target}')")


def test_each_query_spills_into_its_own_private_directory_removed_afterwards(
    two_tenants: tuple[Lake, Path],
) -> None:
    lake, _ = two_tenants
    seen = []
    for _ in range(2):
        table = lake.sql("acme", "SELECT current_setting('temp_directory') AS d, "
                                 "count(*) AS n FROM telemetry")
        seen.append(table.column("d")[0].as_py())
    first, second = seen
    assert first != second and os.path.basename(first).startswith("drivetrain-sql-")
    assert not os.path.exists(first) and not os.path.exists(second)


def test_private_temp_directory_is_owner_only() -> None:
    with private_temp_directory() as path:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o700
    assert not os.path.exists(path)


def test_a_locked_connection_cannot_read_a_spill_directory_not_its_own(tmp_path: Path) -> None:
    """The connection layer alone (without the statement check) keeps another query's spill
    files out of reach: only its own temporary directory is readable."""
    with private_temp_directory() as victim, private_temp_directory() as own:
        Path(victim, "duckdb_temp_block-1.block").write_bytes(b"globex secret rows")
        con = duckdb.connect(":memory:")
        try:
            lock_down(con, [], "256MB", own)
            for query in (f"SELECT * FROM read_blob('{victim}/*')",
                          f"SELECT * FROM read_text('{victim}/duckdb_temp_block-1.block')",
                          f"SELECT * FROM glob('{victim}/*')"):
                with pytest.raises(duckdb.Error, match="Permission Error"):
                    con.sql(query).fetchall()
        finally:
            con.close()


def _table_functions() -> list[str]:
    con = duckdb.connect(":memory:")
    try:
        rows = con.sql("SELECT DISTINCT function_name FROM duckdb_functions() "
                       "WHERE function_type = 'table' ORDER BY 1").fetchall()
    finally:
        con.close()
    return [r[0] for r in rows if r[0] not in ALLOWED_TABLE_FUNCTIONS]


_FORBIDDEN = _table_functions()
_SHAPES = [
    "SELECT * FROM {f}({arg})",
    "SELECT (SELECT count(*) FROM {f}({arg})) AS n FROM telemetry",
    "WITH x AS (SELECT * FROM {f}({arg})) SELECT * FROM x",
    "SELECT * FROM telemetry WHERE EXISTS (SELECT 1 FROM {f}({arg}))",
    "SELECT * FROM telemetry, LATERAL (SELECT * FROM {f}({arg})) t",
    "SELECT vehicle FROM telemetry UNION ALL SELECT * FROM {f}({arg})",
    "SELECT * FROM {F}({arg})",
]


@settings(max_examples=150, deadline=None)
@given(function=st.sampled_from(_FORBIDDEN), shape=st.sampled_from(_SHAPES),
       target=st.sampled_from(["other", "temp", "etc", "data", "none"]))
def test_fuzz_no_file_or_catalog_table_function_passes_the_confinement(
    two_tenants: tuple[Lake, Path], function: str, shape: str, target: str,
) -> None:
    lake, data = two_tenants
    arg = {"other": f"'{_globex_file(data)}'", "temp": "'.tmp/*'", "etc": "'/etc/passwd'",
           "data": f"'{data}/**'", "none": ""}[target]
    query = shape.format(f=function, F=function.upper(), arg=arg)
    with pytest.raises(QueryError):
        lake.sql("acme", query)


@pytest.mark.parametrize("query", [
    "SELECT * FROM '{other}'",
    "SELECT * FROM \"{other}\"",
    "SELECT * FROM memory.main.telemetry_x",
    "WITH telemetry AS (SELECT * FROM '{other}') SELECT * FROM telemetry",
    "SELECT * FROM system.main.duckdb_settings",
])
def test_a_file_named_as_a_table_is_refused(two_tenants: tuple[Lake, Path], query: str) -> None:
    lake, data = two_tenants
    with pytest.raises(QueryError, match="not readable"):
        lake.sql("acme", query.format(other=_globex_file(data)))


def test_generators_and_ctes_still_work(two_tenants: tuple[Lake, Path]) -> None:
    lake, _ = two_tenants
    table = lake.sql("acme", "WITH hours AS (SELECT * FROM range(3) r(h)) "
                             "SELECT h, (SELECT count(*) FROM telemetry) AS n FROM hours, "
                             "unnest([1]) ORDER BY h")
    assert table.column("h").to_pylist() == [0, 1, 2]
    assert set(table.column("n").to_pylist()) == {200}
