"""Confinement of a tenant's raw SQL: what a statement may name, and a connection that can
reach nothing else.

Three layers, each enough on its own for the files it covers:

1. **What the statement names.** Before it runs, the statement's syntax tree (DuckDB's own
   ``json_serialize_sql``) is walked: the only table it may read is the view ``telemetry``
   (or a CTE it defines), and the only table functions are generators (``range``,
   ``unnest``, ...). ``read_blob``, ``read_text``, ``glob``, ``read_csv``, ``query`` and every
   other file or catalog function are refused by name, whatever their arguments, as are
   file names used as tables (``FROM 'x.csv'``).
2. **What the connection may open.** ``allowed_paths`` lists the tenant's own Parquet files;
   external access, extension loading and Python replacement scans are off; the
   configuration is locked.
3. **Where it spills.** DuckDB lets a connection read its own temporary directory even with
   external access off, and by default that directory (``.tmp`` in the working directory) is
   shared by every query of the process — where another tenant's query spills its rows. Each
   query gets a fresh private directory (mode 0700) that is removed when it ends, so the only
   spill files it could read are its own.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Final

import duckdb

from drivetrain.core.errors import QueryError

#: Table functions a statement may call: generators that read no file and no catalog.
ALLOWED_TABLE_FUNCTIONS: Final = frozenset({
    "range", "generate_series", "unnest", "json_each", "json_tree",
})
#: The one table a statement may read.
VIEW: Final = "telemetry"


@contextmanager
def private_temp_directory() -> Iterator[str]:
    """A fresh directory only this process's user can enter (0700), removed afterwards."""
    path = tempfile.mkdtemp(prefix="drivetrain-sql-")  # mkdtemp creates it 0700
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def check_references(con: duckdb.DuckDBPyConnection, statement: str) -> None:
    """Refuse a SELECT that names a table other than ``telemetry`` (or its own CTEs) or a
    table function outside :data:`ALLOWED_TABLE_FUNCTIONS`.

    Raises:
        QueryError: the statement does not parse, or names something it may not read.
    """
    rows = con.execute("SELECT json_serialize_sql($q)", {"q": statement}).fetchall()
    tree = json.loads(rows[0][0])
    if tree.get("error"):
        raise QueryError(f"SQL does not parse: {tree.get('error_message', 'unknown error')}")
    ctes: set[str] = set()
    tables: list[tuple[str, str, str]] = []
    functions: list[str] = []
    _walk(tree, ctes, tables, functions)
    for name in functions:
        if name.lower() not in ALLOWED_TABLE_FUNCTIONS:
            raise QueryError(
                f"table function {name}() is not allowed; a query reads the view '{VIEW}' "
                f"(table functions allowed: {', '.join(sorted(ALLOWED_TABLE_FUNCTIONS))})"
            )
    for catalog, schema, table in tables:
        local = catalog in ("", "memory") and schema in ("", "main")
        if not (local and (table.lower() == VIEW or (not schema and table.lower() in ctes))):
            shown = ".".join(p for p in (catalog, schema, table) if p)
            raise QueryError(f"table {shown!r} is not readable; a query reads the view '{VIEW}'")


def _walk(node: Any, ctes: set[str], tables: list[tuple[str, str, str]],
          functions: list[str]) -> None:
    if isinstance(node, dict):
        kind = node.get("type")
        if kind == "TABLE_FUNCTION":
            function = node.get("function") or {}
            functions.append(str(function.get("function_name", "")))
        elif kind == "BASE_TABLE":
            tables.append((str(node.get("catalog_name") or ""), str(node.get("schema_name") or ""),
                           str(node.get("table_name") or "")))
        cte_map = node.get("cte_map")
        if isinstance(cte_map, dict):
            ctes.update(str(entry.get("key", "")).lower() for entry in cte_map.get("map", []))
        for value in node.values():
            _walk(value, ctes, tables, functions)
    elif isinstance(node, list):
        for value in node:
            _walk(value, ctes, tables, functions)


def lock_down(
    con: duckdb.DuckDBPyConnection, paths: Sequence[str], memory_limit: str, temp_directory: str
) -> None:
    """Confine ``con`` to ``paths`` (files it may open), spill into ``temp_directory``, and
    lock its configuration."""
    if paths:
        con.execute(f"SET allowed_paths = {list_literal(paths)}")
    con.execute(f"SET temp_directory = {literal(temp_directory)}")
    con.execute(f"SET memory_limit = {literal(memory_limit)}")
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET autoload_known_extensions = false")
    con.execute("SET enable_external_access = false")
    con.execute("SET python_enable_replacements = false")
    con.execute("SET lock_configuration = true")


def literal(text: str) -> str:
    """``text`` as a SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def list_literal(items: Sequence[str]) -> str:
    """``items`` as a SQL list of string literals."""
    return "[" + ", ".join(literal(i) for i in items) + "]"
