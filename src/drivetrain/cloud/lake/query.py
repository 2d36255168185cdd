"""Queries over the lake's Parquet files with DuckDB.

Every query is handed the exact list of committed files to read (the index has already pruned
by tenant, date and time range), so DuckDB never globs the lake directory and never sees a
staged or retired file. Parameters always travel as bound values, never as SQL text.

Raw SQL (:func:`run_sql`) runs in a throw-away DuckDB connection locked down before the
caller's statement is parsed (:mod:`drivetrain.cloud.lake.confinement`): the statement may
name only the view ``telemetry`` and generator table functions, the only files the connection
may open are the tenant's own (``allowed_paths``), external access is off (no other files, no
network, no extensions, no COPY/ATTACH/EXPORT), Python replacement scans are off (no reaching
the server's variables), it spills into a temporary directory of its own, and the
configuration is locked so the statement cannot undo any of it. It must be a single SELECT,
runs under a time limit, and returns at most ``max_rows`` rows. Every query, raw or not,
spills into its own private temporary directory, never a directory another query shares.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds

from drivetrain.cloud.lake.confinement import (
    check_references,
    list_literal,
    literal,
    lock_down,
    private_temp_directory,
)
from drivetrain.cloud.lake.models import Aggregation, GroupBy
from drivetrain.core.errors import QueryError, StorageError

#: How often a query re-reads the file list when a file vanished under it (a compaction or
#: retention run swapped it out between listing and reading).
_ATTEMPTS: Final = 3

# union_by_name: files written before the campaign or dimensions column existed read it as
# NULL.
_HIVE: Final = "hive_partitioning = true, hive_types = {'region': VARCHAR, 'tenant': VARCHAR, " \
               "'date': DATE}, union_by_name = true"

#: Result schemas, also for empty results.
RAW_SCHEMA: Final = pa.schema([
    pa.field("vehicle", pa.utf8()), pa.field("path", pa.utf8()),
    pa.field("ts", pa.timestamp("ns", tz="UTC")), pa.field("value", pa.float64()),
    pa.field("text", pa.utf8()),
])
SAMPLED_SCHEMA: Final = pa.schema([
    pa.field("vehicle", pa.utf8()), pa.field("path", pa.utf8()),
    pa.field("ts", pa.timestamp("ns", tz="UTC")), pa.field("value", pa.float64()),
    pa.field("samples", pa.int64()),
])
_KEY_TYPES: Final = {"region": pa.utf8(), "vehicle": pa.utf8(), "day": pa.date32()}


def aggregate_schema(group_by: GroupBy) -> pa.Schema:
    """Schema of :func:`fleet_aggregate`'s result for ``group_by``."""
    return pa.schema([
        pa.field(group_by, _KEY_TYPES[group_by]), pa.field("value", pa.float64()),
        pa.field("samples", pa.int64()), pa.field("vehicles", pa.int64()),
    ])


@dataclass(frozen=True, slots=True)
class TableScan:
    """What a query reads on the table-format backend: per region, the tenant's rows of that
    region's table (a pyarrow dataset listing exactly the table version's files), instead of
    a list of local Parquet paths. DuckDB's own delta/iceberg readers are extensions it would
    download, so the table library lists the files and DuckDB scans them through Arrow.
    On the encrypted lake (embedded or Delta), the decrypted rows as Arrow tables
    (shredding.py, delta_encrypted.py)."""

    datasets: Mapping[str, ds.Dataset | pa.Table]

    def register(self, con: duckdb.DuckDBPyConnection) -> str:
        """Register the datasets on ``con``; returns the SQL of their union (with a
        ``region`` column, like the hive column of the embedded layout)."""
        parts = []
        for i, (region, dataset) in enumerate(sorted(self.datasets.items())):
            con.register(f"_lake_table_{i}", dataset)
            # the table stores microseconds; readers see the lake's nanosecond type
            parts.append(f"SELECT * REPLACE (ts::TIMESTAMPTZ_NS AS ts), {literal(region)} "
                         f"AS region FROM _lake_table_{i}")
        return "(" + " UNION ALL BY NAME ".join(parts) + ")"


#: What a query is handed to read: the committed files, or the region tables' datasets.
Source = list[str] | TableScan


def _aggregate_sql(agg: Aggregation) -> str:
    # "last" is the latest sample that has a value (NULL values are not samples of it).
    return {
        "mean": "avg(value)",
        "min": "min(value)",
        "max": "max(value)",
        "last": "arg_max(value, ts) FILTER (WHERE value IS NOT NULL)",
    }[agg]


def connect(
    threads: int | None = None, temp_directory: str | None = None
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with UTC as its time zone (spilling into
    ``temp_directory`` when given, else DuckDB's default)."""
    config: dict[str, str | bool | int | float | list[str]] = {}
    if threads is not None:
        config["threads"] = threads
    if temp_directory is not None:
        config["temp_directory"] = temp_directory
    con = duckdb.connect(":memory:", config=config)
    con.execute("SET TimeZone = 'UTC'")
    return con


def _to_arrow(relation: duckdb.DuckDBPyRelation) -> pa.Table:
    table = relation.to_arrow_table()
    assert isinstance(table, pa.Table)
    return table


def _in_list(column: str, values: Sequence[str], prefix: str, params: dict[str, object]) -> str:
    names = []
    for i, value in enumerate(values):
        params[f"{prefix}{i}"] = value
        names.append(f"${prefix}{i}")
    return f"{column} IN ({', '.join(names)})"


#: Which rows a read may see: per privacy category, ``None`` (every vehicle) or the vehicle
#: pseudonyms allowed; a category not named is not visible at all (purpose binding).
RowPermit = Mapping[str, frozenset[str] | None]


def permit_clause(permit: RowPermit) -> str:
    """A SQL condition over ``category`` and ``vehicle`` that admits exactly ``permit``'s rows
    (``false`` when it admits none). Values are quoted literals, so it also fits a view."""
    everyone = sorted(c for c, v in permit.items() if v is None)
    parts = [f"category IN ({', '.join(literal(c) for c in everyone)})"] if everyone else []
    for category, vehicles in sorted(permit.items()):
        if vehicles:
            parts.append(f"(category = {literal(category)} AND vehicle IN "
                         f"({', '.join(literal(v) for v in sorted(vehicles))}))")
    return "(" + " OR ".join(parts) + ")" if parts else "false"


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    return table.rename_columns(schema.names).cast(schema)


def _run(
    files: Callable[[], Source],
    build: Callable[[str], tuple[str, dict[str, object]]],
    schema: pa.Schema,
    *,
    max_rows: int | None,
    threads: int | None,
) -> pa.Table:
    """Run the query ``build`` makes for the current file list; re-list and retry when a
    file vanished under it (a compaction or retention swap)."""
    last_error: Exception | None = None
    for _ in range(_ATTEMPTS):
        source = files()
        if not (source.datasets if isinstance(source, TableScan) else source):
            return schema.empty_table()
        with private_temp_directory() as temp:
            con = connect(threads, temp)
            try:
                if isinstance(source, TableScan):
                    sql, params = build(source.register(con))
                else:
                    sql, params = build(f"read_parquet($files, {_HIVE})")
                    params["files"] = source
                relation = con.sql(sql, params=params)
                if max_rows is not None:
                    relation = relation.limit(max_rows + 1)
                table = _conform(_to_arrow(relation), schema)
            except duckdb.IOException as e:
                last_error = e
                continue
            except duckdb.Error as e:
                raise StorageError(f"lake query failed: {e}") from e
            finally:
                con.close()
        if max_rows is not None and table.num_rows > max_rows:
            raise QueryError(
                f"the result has more than max_rows={max_rows} rows; narrow the time range, "
                "name vehicles and paths, or down-sample with every="
            )
        return table
    raise StorageError(f"lake files kept changing under the query: {last_error}")


def _where(
    tenant: str, start_ns: int, end_ns: int, vehicles: Sequence[str], paths: Sequence[str],
    permit: RowPermit | None = None,
) -> tuple[list[str], dict[str, object]]:
    params: dict[str, object] = {"tenant": tenant, "start": start_ns, "end": end_ns}
    clauses = [
        "tenant = $tenant",
        "ts >= make_timestamp_ns($start)::TIMESTAMPTZ_NS",
        "ts < make_timestamp_ns($end)::TIMESTAMPTZ_NS",
    ]
    if vehicles:
        clauses.append(_in_list("vehicle", vehicles, "v", params))
    if paths:
        clauses.append(_in_list("path", paths, "p", params))
    if permit is not None:
        clauses.append(permit_clause(permit))
    return clauses, params


def signals(
    files: Callable[[], Source],
    tenant: str,
    vehicles: Sequence[str],
    paths: Sequence[str],
    start_ns: int,
    end_ns: int,
    step_ns: int | None,
    agg: Aggregation,
    *,
    max_rows: int | None = None,
    threads: int | None = None,
    permit: RowPermit | None = None,
) -> pa.Table:
    """Samples of ``vehicles`` × ``paths`` in [start_ns, end_ns), raw or down-sampled.

    Raw: vehicle, path, ts, value, text — ordered by vehicle, path, ts. Down-sampled
    (``step_ns``): one row per vehicle, path and bucket of ``step_ns`` aligned to the epoch,
    with ``ts`` the bucket start, ``value`` the aggregate of the bucket's values and
    ``samples`` how many values it had. Empty ``vehicles``/``paths`` mean all; ``permit``
    limits the rows to the (category, vehicle) pairs a purpose may read.

    Raises:
        QueryError: the result would exceed ``max_rows``.
        StorageError: the files cannot be read.
    """

    def build(scan: str) -> tuple[str, dict[str, object]]:
        clauses, params = _where(tenant, start_ns, end_ns, vehicles, paths, permit)
        where = " AND ".join(clauses)
        if step_ns is None:
            return (f"SELECT vehicle, path, ts, value, text FROM {scan} WHERE {where} "
                    "ORDER BY vehicle, path, ts"), params
        params["step"] = step_ns
        return (
            f"SELECT vehicle, path, make_timestamp_ns((epoch_ns(ts) // $step) * $step)"
            f"::TIMESTAMPTZ_NS AS bucket, {_aggregate_sql(agg)} AS value, "
            f"count(value) AS samples FROM {scan} WHERE {where} "
            "GROUP BY vehicle, path, bucket ORDER BY vehicle, path, bucket"
        ), params

    schema = RAW_SCHEMA if step_ns is None else SAMPLED_SCHEMA
    return _run(files, build, schema, max_rows=max_rows, threads=threads)


def fleet_aggregate(
    files: Callable[[], Source],
    tenant: str,
    path: str,
    start_ns: int,
    end_ns: int,
    group_by: GroupBy,
    agg: Aggregation,
    *,
    threads: int | None = None,
    permit: RowPermit | None = None,
) -> pa.Table:
    """One aggregate of ``path`` over the fleet in [start_ns, end_ns), per ``group_by``.

    Columns: the group key (``region``, ``vehicle`` or ``day``), ``value`` (the aggregate),
    ``samples`` (values aggregated), ``vehicles`` (distinct vehicles). Ordered by the key.
    """
    key = {"region": "region", "vehicle": "vehicle", "day": "date"}[group_by]

    def build(scan: str) -> tuple[str, dict[str, object]]:
        clauses, params = _where(tenant, start_ns, end_ns, (), (path,), permit)
        return (
            f"SELECT {key} AS key, {_aggregate_sql(agg)} AS value, count(value) AS samples, "
            f"count(DISTINCT vehicle) AS vehicles FROM {scan} "
            f"WHERE {' AND '.join(clauses)} GROUP BY key ORDER BY key"
        ), params

    return _run(files, build, aggregate_schema(group_by), max_rows=None, threads=threads)


def run_sql(
    files: Callable[[], Source],
    tenant: str,
    query: str,
    *,
    max_rows: int,
    timeout_s: float,
    memory_limit: str = "2GB",
    threads: int | None = None,
    permit: RowPermit | None = None,
) -> pa.Table:
    """Run one SELECT over the view ``telemetry`` (the tenant's rows: vehicle, path, ts,
    value, text, category, batch_id, campaign, dimensions, region, date) in a locked-down
    connection. With ``permit``, the view holds only the (category, vehicle) pairs it admits.

    Raises:
        QueryError: not exactly one SELECT statement, a SQL error (including any attempt to
            reach a file outside the tenant's data), more than ``max_rows`` rows, or a run
            longer than ``timeout_s``.
        StorageError: the tenant's files kept changing under the query.
    """
    if not isinstance(query, str) or not query.strip():
        raise QueryError("query is empty; expected one SELECT statement over 'telemetry'")
    last_error: Exception | None = None
    for _ in range(_ATTEMPTS):
        source = files()
        with private_temp_directory() as temp:
            con = connect(threads, temp)
            try:
                table = _run_confined(con, tenant, source, query, max_rows=max_rows,
                                      timeout_s=timeout_s, memory_limit=memory_limit, temp=temp,
                                      permit=permit)
            except duckdb.InterruptException as e:
                raise QueryError(f"query ran longer than {timeout_s:g} s and was stopped") from e
            except duckdb.IOException as e:
                last_error = e
                continue
            except duckdb.Error as e:
                raise QueryError(f"SQL failed: {e}") from e
            finally:
                con.close()
        if table.num_rows > max_rows:
            raise QueryError(f"the result has more than max_rows={max_rows} rows; add a LIMIT "
                             "or aggregate")
        return table
    raise StorageError(f"lake files kept changing under the query: {last_error}")


def _run_confined(
    con: duckdb.DuckDBPyConnection, tenant: str, source: Source, query: str, *,
    max_rows: int, timeout_s: float, memory_limit: str, temp: str,
    permit: RowPermit | None = None,
) -> pa.Table:
    # on the table backend the connection opens no file at all: the datasets are read
    # through Arrow, so allowed_paths stays empty
    paths: Sequence[str] = [] if isinstance(source, TableScan) else source
    _create_view(con, tenant, source, permit)
    try:
        statements = con.extract_statements(query)
    except duckdb.Error as e:
        raise QueryError(f"SQL does not parse: {e}") from e
    if len(statements) != 1 or statements[0].type != duckdb.StatementType.SELECT:
        kinds = ", ".join(s.type.name for s in statements) or "none"
        raise QueryError(
            f"expected exactly one SELECT statement over 'telemetry', got "
            f"{len(statements)} statement(s): {kinds}"
        )
    check_references(con, query)
    lock_down(con, paths, memory_limit, temp)
    timer = threading.Timer(timeout_s, con.interrupt)
    timer.start()
    try:
        return _to_arrow(con.sql(query).limit(max_rows + 1))
    finally:
        timer.cancel()


def _create_view(
    con: duckdb.DuckDBPyConnection, tenant: str, source: Source,
    permit: RowPermit | None = None,
) -> None:
    """The ``telemetry`` view over ``source``'s files or tables (an empty one without any),
    limited to ``permit``'s rows."""
    if source.datasets if isinstance(source, TableScan) else source:
        scan = source.register(con) if isinstance(source, TableScan) else \
            f"read_parquet({list_literal(source)}, {_HIVE})"
        con.execute(
            "CREATE VIEW telemetry AS SELECT vehicle, path, ts, value, text, category, "
            f"batch_id, campaign, dimensions, region, date FROM {scan} "
            f"WHERE tenant = {literal(tenant)}"
            + ("" if permit is None else f" AND {permit_clause(permit)}")
        )
    else:
        con.execute(
            "CREATE VIEW telemetry AS SELECT NULL::VARCHAR AS vehicle, NULL::VARCHAR AS path, "
            "NULL::TIMESTAMPTZ_NS AS ts, NULL::DOUBLE AS value, NULL::VARCHAR AS text, "
            "NULL::VARCHAR AS category, NULL::VARCHAR AS batch_id, NULL::VARCHAR AS campaign, "
            "NULL::VARCHAR AS dimensions, "
            "NULL::VARCHAR AS region, "
            "NULL::DATE AS date WHERE false"
        )
