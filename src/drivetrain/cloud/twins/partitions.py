"""The twins tables hash-partitioned by VIN on PostgreSQL, reached without a long lock.

``twins``, ``twin_reported``, ``twin_desired`` and ``twin_ecus`` are each declared
``PARTITION BY HASH (vin)`` with N partitions (``state_twin_partitions``, default 16), named
``<table>_p00`` ... A twin and all its rows share a partition number, every primary key
starts with ``vin``, so a VIN lookup or upsert touches one partition of each table (pruned at
plan time for a literal VIN, at run time for a correlated one), each partition's indexes stay
1/N of the size, and autovacuum works on partitions, not on one huge heap. SQLite (the
embedded default) is not partitioned.

Migration ``twins_0003`` gets there without rewriting a table under an exclusive lock:

1. It creates the partitioned *shadow* tables ``<table>_part`` (same columns, primary keys,
   foreign keys among themselves, indexes; names suffixed ``_part``).
2. If the twins tables are empty (a new installation) it swaps at once (step 5).
3. Otherwise it installs statement-level mirror triggers on the old tables (transition
   tables: one extra statement per write statement, not per row), which upsert every
   inserted or updated row into the shadow and delete deleted ones; the platform keeps
   running on the old tables. The migration's transaction only takes the brief SHARE ROW
   EXCLUSIVE lock that ``CREATE TRIGGER`` needs.
4. :func:`copy_online` (``drivetrain db partition-twins``) copies the old rows in primary-key
   order, ``batch_rows`` per transaction, each batch read ``FOR SHARE`` (a concurrent update
   or delete of those rows waits for that one short transaction, then reaches the shadow
   through its trigger) and inserted ``ON CONFLICT DO NOTHING`` (a row a trigger mirrored
   first is newer). Parents (``twins``) go first; a child mirrored before its twin was
   copied brings the twin along.
5. The swap, in one short transaction under ``lock_timeout`` (retried): ``ACCESS EXCLUSIVE``
   on the four old tables, drop them, rename the shadows, their constraints and indexes to
   the real names. Its cost does not grow with the data.

Keys are never updated by the platform (a twin keeps its VIN, a value its path); the mirror
relies on it. Downgrading (``twins_0002``) copies back into plain tables inside the migration
(offline: the tables are locked while it runs).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from sqlalchemy import Connection

from drivetrain.cloud.infra import Database
from drivetrain.cloud.twins.models import VALUE_FILLFACTOR
from drivetrain.core.errors import ConflictError, StorageError

#: The partitioned tables, parent first (copy order; children reference ``twins``).
TABLES: Final = ("twins", "twin_reported", "twin_desired", "twin_ecus")
#: Suffix of the shadow tables and their constraints and indexes while they are built.
SHADOW: Final = "_part"
#: Suffix of the plain tables a downgrade builds.
PLAIN: Final = "_plain"
DEFAULT_PARTITIONS: Final = 16
#: Free space left in each page of a partition when it is filled: room for the next version of
#: a row on its own page makes the update of a reported value heap-only (HOT: no new index
#: entry). Measured on the benchmark's realistic fleet: with full pages (PostgreSQL's default)
#: almost no update of a stocked twin was HOT; at 80 % about half were, and the server's CPU
#: per update fell by about a quarter.
FILLFACTOR: Final = {"twin_reported": VALUE_FILLFACTOR}
MAX_PARTITIONS: Final = 1024

PartitionState = Literal["partitioned", "copying", "unpartitioned", "not-postgresql"]


def partition_name(table: str, index: int, count: int) -> str:
    """Name of partition ``index`` of ``count`` of ``table``: ``twins_p00`` ... (at least two
    digits)."""
    return f"{table}_p{index:0{max(2, len(str(count - 1)))}d}"


def is_partition_name(name: str) -> bool:
    """True for the name of a partition of a twins table (not declared in the models:
    schema comparisons skip them)."""
    return re.fullmatch(rf"(?:{'|'.join(TABLES)})(?:{SHADOW})?_p\d{{2,4}}", name) is not None


def _check_count(partitions: object) -> int:
    if isinstance(partitions, bool) or not isinstance(partitions, int | str):
        raise TypeError(f"twin partitions {partitions!r}: expected an integer, 1 to {MAX_PARTITIONS}")
    try:
        count = int(partitions)
    except ValueError:
        raise ValueError(f"twin partitions {partitions!r}: expected 1 to {MAX_PARTITIONS}") from None
    if not 1 <= count <= MAX_PARTITIONS:
        raise ValueError(f"twin partitions {partitions!r}: expected 1 to {MAX_PARTITIONS}")
    return count


def _exists(connection: Connection, name: str) -> bool:
    found = connection.exec_driver_sql("SELECT to_regclass(%s) IS NOT NULL", (name,)).scalar()
    return found is True


def _columns(connection: Connection, table: str) -> list[str]:
    rows = connection.exec_driver_sql(
        "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 "
        "AND NOT attisdropped ORDER BY attnum", (table,),
    )  # fmt: skip
    return [r[0] for r in rows]


def _primary_key(connection: Connection, table: str) -> list[str]:
    rows = connection.exec_driver_sql(
        "SELECT a.attname FROM pg_constraint c "
        "JOIN LATERAL unnest(c.conkey) WITH ORDINALITY AS k(attnum, n) ON true "
        "JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum "
        "WHERE c.conrelid = %s::regclass AND c.contype = 'p' ORDER BY k.n", (table,),
    )  # fmt: skip
    return [r[0] for r in rows]


def state(connection: Connection) -> PartitionState:
    """Where the twins tables stand: partitioned, copying (shadow tables exist), or not."""
    if connection.dialect.name != "postgresql":
        return "not-postgresql"
    if _exists(connection, TABLES[0] + SHADOW):
        return "copying"
    kind = connection.exec_driver_sql(
        "SELECT relkind FROM pg_class WHERE oid = to_regclass('twins')"
    ).scalar()
    return "partitioned" if kind == "p" else "unpartitioned"


def partition_count(connection: Connection, table: str = "twins") -> int:
    """How many partitions ``table`` has (0: not partitioned)."""
    return int(connection.exec_driver_sql(
        "SELECT count(*) FROM pg_inherits WHERE inhparent = %s::regclass", (table,)
    ).scalar() or 0)  # fmt: skip


# --- building a copy of the tables with another layout ------------------------------------------


def _rename_table_refs(definition: str, table: str, target: str) -> str:
    """``definition`` (an index or constraint) pointing at ``target`` instead of ``table``."""
    definition = re.sub(rf"\bON (?:ONLY )?(?:\w+\.)?{table} USING", f"ON {target} USING", definition)
    return re.sub(r"REFERENCES (?:\w+\.)?twins\(", f"REFERENCES twins{target[len(table):]}(",
                  definition)


def _clone(connection: Connection, table: str, suffix: str, partitions: int | None) -> None:
    """Create ``table + suffix`` with ``table``'s columns, keys and indexes (names + suffix),
    hash-partitioned by VIN into ``partitions`` (None: a plain table)."""
    target = table + suffix
    layout = " PARTITION BY HASH (vin)" if partitions else ""
    connection.exec_driver_sql(f"CREATE TABLE {target} (LIKE {table} INCLUDING DEFAULTS){layout}")
    for index in range(partitions or 0):
        assert partitions is not None
        connection.exec_driver_sql(
            f"CREATE TABLE {partition_name(table, index, partitions)} "
            f"PARTITION OF {target} FOR VALUES WITH (MODULUS {partitions}, REMAINDER {index})"
            + (f" WITH (fillfactor = {FILLFACTOR[table]})" if table in FILLFACTOR else "")
        )
    constraints = connection.exec_driver_sql(
        "SELECT conname, contype, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = %s::regclass AND contype IN ('p', 'u', 'f') AND conparentid = 0 "
        "ORDER BY contype DESC",
        (table,),
    ).all()
    for name, _kind, definition in constraints:
        connection.exec_driver_sql(
            f"ALTER TABLE {target} ADD CONSTRAINT {name}{suffix} "
            f"{_rename_table_refs(definition, table, target)}"
        )
    keyed = {name for name, kind, _ in constraints if kind in ("p", "u")}
    indexes = connection.exec_driver_sql(
        "SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x "
        "JOIN pg_class i ON i.oid = x.indexrelid WHERE x.indrelid = %s::regclass", (table,),
    ).all()  # fmt: skip
    for name, definition in indexes:
        if name in keyed:
            continue
        renamed = re.sub(rf"^CREATE (UNIQUE )?INDEX {name} ", rf"CREATE \g<1>INDEX {name}{suffix} ",
                         _rename_table_refs(definition, table, target))
        connection.exec_driver_sql(renamed)


def _swap(connection: Connection, suffix: str, lock_timeout_ms: int | None) -> None:
    """Replace the four tables by their ``suffix`` copies (in the caller's transaction)."""
    if lock_timeout_ms is not None:
        connection.exec_driver_sql(f"SET LOCAL lock_timeout = {int(lock_timeout_ms)}")
    connection.exec_driver_sql(f"LOCK TABLE {', '.join(TABLES)} IN ACCESS EXCLUSIVE MODE")
    connection.exec_driver_sql(f"DROP TABLE {', '.join(reversed(TABLES))}")
    for table in TABLES:
        connection.exec_driver_sql(f"DROP FUNCTION IF EXISTS dt_mirror_{table}()")
    for table in TABLES:
        target = table + suffix
        connection.exec_driver_sql(f"ALTER TABLE {target} RENAME TO {table}")
        names = connection.exec_driver_sql(
            "SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass", (table,)
        ).scalars().all()  # fmt: skip
        for name in names:
            if name.endswith(suffix):
                connection.exec_driver_sql(
                    f"ALTER TABLE {table} RENAME CONSTRAINT {name} TO {name[: -len(suffix)]}"
                )
        indexes = connection.exec_driver_sql(
            "SELECT i.relname FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
            "WHERE x.indrelid = %s::regclass", (table,),
        ).scalars().all()  # fmt: skip
        for name in indexes:
            if name.endswith(suffix):
                connection.exec_driver_sql(f"ALTER INDEX {name} RENAME TO {name[: -len(suffix)]}")


def _mirror(connection: Connection, table: str) -> None:
    """Statement-level triggers on ``table`` that keep ``table`` + SHADOW equal to it."""
    shadow = table + SHADOW
    columns = _columns(connection, table)
    key = _primary_key(connection, table)
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in key)
    matches = " AND ".join(f"s.{c} = o.{c}" for c in key)
    parent = "" if table == TABLES[0] else (
        f"INSERT INTO twins{SHADOW} SELECT p.* FROM twins p "
        f"WHERE p.vin IN (SELECT vin FROM dt_new) ON CONFLICT (vin) DO NOTHING;"
    )
    connection.exec_driver_sql(f"""
        CREATE FUNCTION dt_mirror_{table}() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF TG_OP = 'DELETE' THEN
            DELETE FROM {shadow} s USING dt_old o WHERE {matches};
          ELSE
            {parent}
            INSERT INTO {shadow} SELECT * FROM dt_new
              ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates};
          END IF;
          RETURN NULL;
        END $$""")
    for event, transition in (("INSERT", "NEW TABLE AS dt_new"), ("UPDATE", "NEW TABLE AS dt_new"),
                              ("DELETE", "OLD TABLE AS dt_old")):  # fmt: skip
        connection.exec_driver_sql(
            f"CREATE TRIGGER dt_mirror_{table}_{event.lower()} AFTER {event} ON {table} "
            f"REFERENCING {transition} FOR EACH STATEMENT EXECUTE FUNCTION dt_mirror_{table}()"
        )


def begin_partitioning(connection: Connection, partitions: object = DEFAULT_PARTITIONS) -> PartitionState:
    """Migration step (``twins_0003``): shadow tables with ``partitions`` hash partitions;
    swapped in at once when the twins tables are empty, else mirrored until
    :func:`copy_online` finishes. Returns the resulting state. No-op off PostgreSQL or when
    already partitioned."""
    count = _check_count(partitions)
    current = state(connection)
    if current != "unpartitioned":
        return current
    for table in TABLES:
        _clone(connection, table, SHADOW, count)
    if connection.exec_driver_sql("SELECT NOT EXISTS (SELECT 1 FROM twins)").scalar():
        _swap(connection, SHADOW, lock_timeout_ms=None)
        return "partitioned"
    for table in TABLES:
        _mirror(connection, table)
    return "copying"


def unpartition(connection: Connection) -> None:
    """Downgrade: plain tables again, rows copied in the migration's transaction (offline)."""
    current = state(connection)
    if current == "copying":  # drop the half-built shadow and its triggers
        connection.exec_driver_sql(f"DROP TABLE {', '.join(t + SHADOW for t in reversed(TABLES))}")
        for table in TABLES:
            connection.exec_driver_sql(f"DROP FUNCTION dt_mirror_{table}() CASCADE")
        return
    if current != "partitioned":
        return
    for table in TABLES:
        _clone(connection, table, PLAIN, None)
        connection.exec_driver_sql(f"INSERT INTO {table}{PLAIN} SELECT * FROM {table}")
    _swap(connection, PLAIN, lock_timeout_ms=None)


# --- the online copy ----------------------------------------------------------------------------


@dataclass
class CopyReport:
    """What :func:`copy_online` did: rows copied per table, swap attempts, final state."""

    copied: dict[str, int] = field(default_factory=dict)
    swap_attempts: int = 0
    state: PartitionState = "unpartitioned"


def _copy_batch(
    connection: Connection, table: str, key: Sequence[str], after: tuple[Any, ...] | None,
    batch_rows: int,
) -> tuple[int, tuple[Any, ...] | None]:
    keys = ", ".join(key)
    where = f"WHERE ({keys}) > ({', '.join(['%s'] * len(key))})" if after is not None else ""
    descending = ", ".join(f"{c} DESC" for c in key)
    row = connection.exec_driver_sql(
        f"WITH batch AS (SELECT * FROM {table} {where} ORDER BY {keys} LIMIT {int(batch_rows)} "
        f"FOR SHARE), copied AS (INSERT INTO {table}{SHADOW} SELECT * FROM batch "
        f"ON CONFLICT DO NOTHING) "
        f"SELECT (SELECT count(*) FROM batch), {keys} FROM batch ORDER BY {descending} LIMIT 1",
        after or (),
    ).first()
    if row is None:
        return 0, None
    return int(row[0]), tuple(row[1:])


def copy_online(
    database: Database, *, batch_rows: int = 5_000, lock_timeout_ms: int = 2_000,
    swap_attempts: int = 20, progress: Callable[[str, int], None] | None = None,
) -> CopyReport:
    """Finish the partitioning that migration ``twins_0003`` began on a non-empty database:
    copy the rows in batches (one short transaction each) while the platform runs, then
    swap (see the module docstring). Idempotent: on a partitioned database it does nothing.

    Raises:
        StorageError: not PostgreSQL, the schema is older than ``twins_0003``, or the swap
            could not take its locks within ``swap_attempts`` tries.
    """
    if batch_rows < 1:
        raise ValueError(f"batch_rows {batch_rows!r}: expected at least 1")
    if database.dialect != "postgresql":
        raise StorageError("the twins are partitioned on PostgreSQL only; this state "
                           f"database is {database.dialect}")
    report = CopyReport()
    with database.engine.connect() as connection:
        report.state = state(connection)
    if report.state != "copying":
        return report
    for table in TABLES:
        with database.engine.connect() as connection:
            key = _primary_key(connection, table)
        after: tuple[Any, ...] | None = None
        report.copied[table] = 0
        while True:
            with database.session() as session:
                copied, after = _copy_batch(session.connection(), table, key, after, batch_rows)
            report.copied[table] += copied
            if progress is not None:
                progress(table, report.copied[table])
            if copied < batch_rows:
                break
    for attempt in range(1, swap_attempts + 1):
        report.swap_attempts = attempt
        try:
            with database.session() as session:
                _swap(session.connection(), SHADOW, lock_timeout_ms)
        except (StorageError, ConflictError):
            if attempt == swap_attempts:
                raise
            time.sleep(min(2.0, 0.05 * 2**attempt))
            continue
        break
    report.state = "partitioned"
    return report
