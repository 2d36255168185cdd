"""Bulk statements of the dispatcher's hot paths, sent to the driver directly.

A job to 100,000 vehicles inserts 100,000 deliveries and marks as many sent. Through a Core
``executemany`` every row's parameters go through SQLAlchemy's per-row processing (about half
the cost, measured by ``benchmarks/dispatch.py``); here constant values are converted once
with the column's own bind processor and the rows go to the DB-API ``executemany`` as tuples,
in the driver's parameter style — the same SQL on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Column
from sqlalchemy.engine import Connection

from drivetrain.cloud.commands.models import DELIVERIES


def bound(connection: Connection, column: Column[Any], value: Any) -> Any:
    """``value`` as the driver receives it for ``column`` (its type's bind processing)."""
    processor = column.type.bind_processor(connection.dialect)
    return processor(value) if processor is not None else value


def executemany(
    connection: Connection, sql: str, rows: Sequence[tuple[Any, ...]]
) -> None:
    """Run ``sql`` (``?`` marks) once per row, in the driver's parameter style."""
    if not rows:
        return
    if connection.dialect.paramstyle != "qmark":
        sql = sql.replace("?", "%s")
    connection.exec_driver_sql(sql, list(rows))


def table_name(connection: Connection) -> str:
    """The deliveries table's name, quoted as the dialect wants."""
    return connection.dialect.identifier_preparer.format_table(DELIVERIES)
