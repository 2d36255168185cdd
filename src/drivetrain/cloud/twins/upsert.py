"""Newer-wins bulk upsert of reported rows (see ``reported.py``'s docstring for why so).

The rows reach the database the way each engine takes them fastest: SQLite as multi-row
``VALUES`` lists of :data:`UPSERT_CHUNK` rows, on the driver's own cursor (SQLAlchemy's
result rows cost a microsecond per changed row, a quarter of SQLite's own work); PostgreSQL (psycopg 3) as one array per
column (``INSERT ... SELECT * FROM unnest(...)``), sorted by (vin, path) so that concurrent
workers lock rows in the same order. Used for ``twin_reported`` and for the personal values
kept in each region's store (``twin_reported_personal``).
"""

from __future__ import annotations

from itertools import chain
from operator import itemgetter
from typing import Any, Final

from sqlalchemy import Table
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from drivetrain.cloud.twins.models import REPORTED

#: One stored row: vin, path, kind, num, text, measured (ns), stored (ns).
Row = tuple[str, str, str, float | None, str | None, int, int]
#: Rows per multi-row INSERT: 7 parameters each stays far below SQLite's 32,766.
UPSERT_CHUNK: Final = 500
_COLUMNS: Final = ("vin", "path", "kind", "num", "text", "ts_ns", "updated_ns")


def path_major(session: Session) -> bool:
    """Whether the state database keys ``twin_reported`` by (path, vin) — SQLite, since
    migration twins_0008 — rather than (vin, path). Rows upserted in the table's key order
    walk its b-tree once, leaf after leaf; in the other order each row lands on another page
    (on the realistic ingest shape a third of the upsert's CPU)."""
    return bool(session.get_bind().dialect.name == "sqlite")


def _upsert_sql(dialect: Any, count: int, target: Table, returning: bool = True) -> str:
    """``INSERT ... VALUES (...) x count ON CONFLICT ... RETURNING vin, path`` in the
    driver's parameter style (without ``RETURNING`` unless ``returning``). Built by hand: at
    tens of thousands of rows a second, the per-row parameter processing of a Core statement
    costs more than SQLite's own work."""
    mark = "?" if dialect.paramstyle == "qmark" else "%s"
    row = "(" + ", ".join([mark] * len(_COLUMNS)) + ")"
    table = dialect.identifier_preparer.format_table(target)
    updates = ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS[2:])
    return (
        f"INSERT INTO {table} ({', '.join(_COLUMNS)}) VALUES {', '.join([row] * count)} "
        f"ON CONFLICT (vin, path) DO UPDATE SET {updates} "
        f"WHERE excluded.ts_ns > {table}.ts_ns" + (" RETURNING vin, path" if returning else "")
    )


def _upsert_unnest_sql(dialect: Any, target: Table, returning: bool) -> str:
    """PostgreSQL: the batch as one array per column (see the module docstring)."""
    table = dialect.identifier_preparer.format_table(target)
    updates = ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS[2:])
    arrays = "%b::varchar[], %b::varchar[], %b::varchar[], %b::float8[], %b::text[], %b::int8[]"
    return (
        f"INSERT INTO {table} ({', '.join(_COLUMNS)}) "
        f"SELECT v.*, %b::int8 FROM unnest({arrays}) AS v "
        f"ON CONFLICT (vin, path) DO UPDATE SET {updates} "
        f"WHERE excluded.ts_ns > {table}.ts_ns" + (" RETURNING vin, path" if returning else "")
    )


def _upsert_postgresql(
    session: Session, rows: list[Row], target: Table, changed: list[tuple[str, str]] | None
) -> int:
    """The unnest upsert; appends the changed (vin, path) to ``changed`` (None: only counts
    them, without ``RETURNING``). Returns how many rows changed."""
    # One lock order for every worker. (vin, path) is unique in a batch, so the plain tuple
    # order is that order, without a key function per row.
    rows.sort()
    vins, paths, kinds, nums, texts, ts_ns, updated = zip(*rows, strict=True)
    # The stored-at time is one value for the batch: its parameter comes first in the text.
    params = (
        updated[0],
        list(vins),
        list(paths),
        list(kinds),
        list(nums),
        list(texts),
        list(ts_ns),
    )
    connection = session.connection()
    sql = _upsert_unnest_sql(connection.dialect, target, returning=changed is not None)
    result = connection.exec_driver_sql(sql, params)
    if changed is None:  # rows inserted or updated (a conflict the WHERE skips is not counted)
        return max(result.rowcount, 0)
    found = result.all()
    changed.extend(tuple(row) for row in found)
    return len(found)


def upsert_rows(
    session: Session, rows: list[Row], target: Table = REPORTED
) -> list[tuple[str, str]]:
    """Write ``rows`` newer-wins into ``target`` (``twin_reported`` or its personal twin);
    returns (vin, path) of every row that changed."""
    connection = session.connection()
    dialect = connection.dialect
    changed: list[tuple[str, str]] = []
    if dialect.name == "postgresql" and dialect.driver == "psycopg":  # %b: psycopg 3's binary
        _upsert_postgresql(session, rows, target, changed)
    else:
        _upsert_values(session, rows, target, changed)
    return changed


def upsert_count(session: Session, rows: list[Row], target: Table = REPORTED) -> int:
    """:func:`upsert_rows` when the caller needs only how many rows changed, not which:
    without ``RETURNING`` (naming every changed row costs SQLite and the driver a third of
    the upsert; psycopg and SQLAlchemy a result row per value)."""
    connection = session.connection()
    dialect = connection.dialect
    if dialect.name == "postgresql" and dialect.driver == "psycopg":
        return _upsert_postgresql(session, rows, target, None)
    return _upsert_values(session, rows, target, None)


def _in_key_order(session: Session, rows: list[Row], target: Table) -> list[Row]:
    """``rows`` in ``target``'s primary-key order where they may not be, so that the upsert
    walks its b-tree leaf after leaf. Tables keyed (vin, path) get a stable sort on the VIN:
    rows in (path, vin) order — ingestion hands its personal rows over in ``twin_reported``'s
    SQLite key order (:func:`path_major`) — come out in key order (unsorted they took half
    again as long on the realistic ingest shape). ``twin_reported`` on SQLite, keyed (path,
    vin), is left in the caller's order: ingestion's is that order already."""
    if target is REPORTED and path_major(session):
        return rows
    return sorted(rows, key=itemgetter(0))


def _upsert_values(
    session: Session, rows: list[Row], target: Table, changed: list[tuple[str, str]] | None
) -> int:
    """The multi-row ``VALUES`` upsert on the driver's cursor; appends the changed (vin,
    path) to ``changed`` (None: only counts them). Returns how many rows changed."""
    connection = session.connection()
    dialect = connection.dialect
    count = 0
    dbapi = dialect.loaded_dbapi
    rows = _in_key_order(session, rows, target)
    cursor = connection.connection.cursor()  # in the session's transaction
    try:
        for start in range(0, len(rows), UPSERT_CHUNK):
            chunk = rows[start : start + UPSERT_CHUNK]
            sql = _upsert_sql(dialect, len(chunk), target, returning=changed is not None)
            try:
                cursor.execute(sql, tuple(chain.from_iterable(chunk)))
                if changed is not None:
                    found = cursor.fetchall()
                    changed.extend(found)
                    count += len(found)
                else:  # rows inserted or updated (a conflict the WHERE skips is not counted)
                    count += max(cursor.rowcount, 0)
            except dbapi.Error as e:  # as SQLAlchemy would raise it (the session translates)
                raise DBAPIError.instance(sql, None, e, dbapi.Error, dialect=dialect) from e
    finally:
        cursor.close()
    return count
