"""Throw-away state databases for test suites (every domain's tests use the same helper).

:func:`postgres_test_database` creates a uniquely named database on the real server named by
``$DRIVETRAIN_TEST_POSTGRES_URL`` (the role needs ``CREATEDB``) and drops it afterwards — one
per pytest-xdist worker; :func:`temporary_postgres_schema` then gives each test an empty schema
inside it. Names carry the worker id, the pid and a random part, so parallel workers and
concurrent runs never share state.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Literal

from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import SQLAlchemyError

from drivetrain.core.errors import ConfigurationError, StorageError

_SAFE_NAME = re.compile(r"^[a-z0-9_]{1,63}$")


def unique_database_name(prefix: str = "dt_test") -> str:
    """A database name unique across processes and pytest-xdist workers (<= 63 characters)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    name = f"{prefix}_{worker}_{os.getpid()}_{uuid.uuid4().hex[:12]}".lower()
    name = re.sub(r"[^a-z0-9_]", "_", name)[:63]
    return name


@contextmanager
def temporary_postgres_database(server_url: str, prefix: str = "dt_test") -> Iterator[str]:
    """Create a fresh database on the server at ``server_url``, yield its URL, then drop it.

    ``server_url`` is a SQLAlchemy URL of any database on the server the role may connect to
    (e.g. ``.../postgres``). Raises :class:`StorageError` when the server cannot be reached
    or the role may not create databases.
    """
    server = make_url(server_url)
    name = _safe_name(prefix)
    with _created(
        server,
        f'CREATE DATABASE "{name}"',
        f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)',
        f"a test database on {server.render_as_string(hide_password=True)}",
    ):
        yield server.set(database=name).render_as_string(hide_password=False)


def _safe_name(prefix: str) -> str:
    name = unique_database_name(prefix)
    if not _SAFE_NAME.match(name):  # never interpolate anything unexpected into DDL
        raise ValueError(f"unsafe database or schema name {name!r}")
    return name


@contextmanager
def _created(url: URL, create_ddl: str, drop_ddl: str, what: str) -> Iterator[None]:
    """Run ``create_ddl`` on ``url`` (autocommit), and ``drop_ddl`` when the block ends.

    Raises :class:`StorageError` naming ``what`` when the create statement fails.
    """
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        try:
            with admin.connect() as connection:
                connection.execute(text(create_ddl))
        except SQLAlchemyError as e:
            raise StorageError(
                f"cannot create {what}: {str(getattr(e, 'orig', e)).strip()}"
            ) from e
        try:
            yield
        finally:
            with admin.connect() as connection:
                connection.execute(text(drop_ddl))
    finally:
        admin.dispose()


POSTGRES_URL_ENV = "DRIVETRAIN_TEST_POSTGRES_URL"
Backend = Literal["sqlite", "postgresql"]
BACKENDS: tuple[Backend, ...] = ("sqlite", "postgresql")


def postgres_server_url() -> str:
    """The test server URL from ``$DRIVETRAIN_TEST_POSTGRES_URL``.

    Raises :class:`ConfigurationError` when it is unset, saying to run ``scripts/test``
    (which starts PostgreSQL and exports the URL).
    """
    server = os.environ.get(POSTGRES_URL_ENV)
    if not server:
        raise ConfigurationError(
            f"{POSTGRES_URL_ENV} is not set: the PostgreSQL half of the suite needs a real "
            "server. Run the suite with scripts/test (it starts PostgreSQL and exports the URL)."
        )
    return server


@contextmanager
def postgres_test_database(prefix: str = "dt_test") -> Iterator[str]:
    """A uniquely named database on the test server (see :func:`postgres_server_url`).

    Raises :class:`ConfigurationError` when no server is configured and
    :class:`StorageError` (saying to run ``scripts/test``) when it cannot be used.
    """
    manager = temporary_postgres_database(postgres_server_url(), prefix)
    try:
        url = manager.__enter__()
    except StorageError as e:
        raise StorageError(
            f"{e}. Is PostgreSQL running? Run the suite with scripts/test (it starts the server)."
        ) from e
    try:
        yield url
    finally:
        manager.__exit__(None, None, None)


@contextmanager
def temporary_postgres_schema(database_url: str, prefix: str = "t") -> Iterator[str]:
    """A fresh schema in the database at ``database_url``; yields a URL that uses it.

    The URL sets ``search_path`` to the new schema, so tables, the Alembic version table and
    trigger functions all land there: each test gets an empty database in ~20 ms instead of
    the ~300 ms of ``CREATE DATABASE``. The schema is dropped (CASCADE) afterwards. Raises
    :class:`StorageError` when the server cannot be used.
    """
    url = make_url(database_url)
    name = _safe_name(prefix)
    with _created(
        url,
        f'CREATE SCHEMA "{name}"',
        f'DROP SCHEMA IF EXISTS "{name}" CASCADE',
        f"a test schema in {url.render_as_string(hide_password=True)}",
    ):
        scoped = url.update_query_dict({"options": f"-csearch_path={name}"})
        yield scoped.render_as_string(hide_password=False)


def schema_of(url: str) -> str:
    """The schema a :func:`temporary_postgres_schema` URL puts first on the search path."""
    options = str(make_url(url).query.get("options", ""))
    found = re.search(r"search_path=(\w+)", options)
    if found is None:
        raise ValueError(f"{url!r} names no schema (expected options=-csearch_path=<schema>)")
    return found.group(1)


def copy_rows(source_url: str, target_url: str, tables: list[str]) -> None:
    """Copy every row of ``tables`` (in order: parents first) from the schema of
    ``source_url`` into the same tables in the schema of ``target_url`` (same database, both
    migrated): a snapshot standing in for a read replica in tests — not replication."""
    source, target = schema_of(source_url), schema_of(target_url)
    engine = create_engine(make_url(source_url))
    try:
        with engine.begin() as connection:
            for table in tables:
                connection.execute(text(f'INSERT INTO "{target}".{table} SELECT * FROM "{source}".{table}'))
    finally:
        engine.dispose()


# --- migrated copies of a SQLite template ----------------------------------------------------
# Running every migration costs ~0.2 s per SQLite database; a copy of a migrated file costs
# milliseconds. (On PostgreSQL a copied database is no gain: CREATE DATABASE ... TEMPLATE is
# fast, but dropping a database waits for a checkpoint, seconds on a busy server.)


def migrate_sqlite_template(path: Path) -> Path:
    """Create a migrated SQLite state database at ``path`` to copy from; returns ``path``."""
    from drivetrain.cloud.infra.database import Database

    template = Database(f"sqlite:///{path}")
    try:
        template.upgrade()
    finally:
        template.dispose()
    for suffix in ("-wal", "-shm", "-journal"):  # closed cleanly: everything is in the file
        if path.with_name(path.name + suffix).exists():
            raise StorageError(f"the template {path} was not checkpointed ({suffix} remains)")
    return path


def copy_sqlite_template(template: Path, target: Path) -> str:
    """Copy the migrated ``template`` to ``target`` (owner-only, like the platform's own
    files); returns its URL."""
    shutil.copyfile(template, target)
    target.chmod(0o600)
    return f"sqlite:///{target}"


# --- migrated PostgreSQL schemas, emptied and reused -------------------------------------------
# Migrating a fresh schema costs 2-3 s on PostgreSQL and dropping it ~1 s (hundreds of tables
# and partitions); a test leaves a handful of rows. So a schema a test is done with is emptied
# (DELETE from the tables that hold rows, children before parents; sequences restarted) and
# handed to the next test — unless the test changed the schema itself (a migration, a table of
# its own), in which case it is dropped.

_SIGNATURE = """
SELECT md5(coalesce(string_agg(item, ',' ORDER BY item), ''))
FROM (
    SELECT c.relname || ':' || c.relkind::text || ':' || coalesce(a.attname, '') || ':'
           || coalesce(a.atttypid::text, '') || ':' || coalesce(a.attnotnull::text, '') AS item
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
    WHERE n.nspname = current_schema()
    UNION ALL
    SELECT 'proc:' || p.proname || ':' || md5(p.prosrc) FROM pg_proc p
    JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = current_schema()
    UNION ALL
    SELECT 'trigger:' || t.tgname || ':' || t.tgenabled::text FROM pg_trigger t
    JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = current_schema() AND NOT t.tgisinternal
    UNION ALL
    SELECT 'version:' || version_num FROM alembic_version
) AS items
"""

# Tables (not partitions) of the schema, and the foreign keys between them.
_TABLES = """
SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND NOT c.relispartition
  AND c.relname <> 'alembic_version'
"""
_FOREIGN_KEYS = """
SELECT child.relname, parent.relname FROM pg_constraint k
JOIN pg_class child ON child.oid = k.conrelid JOIN pg_class parent ON parent.oid = k.confrelid
JOIN pg_namespace n ON n.oid = child.relnamespace
WHERE k.contype = 'f' AND n.nspname = current_schema() AND k.conparentid = 0
"""
_USED_SEQUENCES = """
SELECT sequencename FROM pg_sequences
WHERE schemaname = current_schema() AND last_value IS NOT NULL
"""
# Tables whose user triggers refuse deletes (the append-only audit log).
_GUARDED = """
SELECT DISTINCT c.relname FROM pg_trigger t
JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = current_schema() AND NOT t.tgisinternal
"""


class PostgresSchemaPool:
    """Migrated schemas in one test database, each handed to one test at a time.

    :meth:`acquire` returns a URL of an empty, migrated schema; :meth:`release` empties it for
    the next test, or drops it when the test changed its structure or it cannot be emptied.
    """

    def __init__(self, database_url: str) -> None:
        self._database_url = database_url
        self._free: list[str] = []
        self._open: dict[str, AbstractContextManager[str]] = {}
        self._signature: str | None = None
        self._delete_order: list[str] = []
        self._guarded: set[str] = set()

    def acquire(self) -> str:
        if self._free:
            return self._free.pop()
        from drivetrain.cloud.infra.database import Database

        manager = temporary_postgres_schema(self._database_url)
        url = manager.__enter__()
        self._open[url] = manager
        database = Database(url)
        try:
            database.upgrade()
            if self._signature is None:
                with database.engine.connect() as connection:
                    self._learn(connection)
        except BaseException:
            database.dispose()
            self._drop(url)
            raise
        database.dispose()
        return url

    def release(self, url: str) -> None:
        """Empty the schema at ``url`` for reuse, or drop it."""
        if self._emptied(url):
            self._free.append(url)
        else:
            self._drop(url)

    def close(self) -> None:
        for url in list(self._open):
            self._drop(url)
        self._free.clear()

    def _learn(self, connection: Connection) -> None:
        """Remember the pristine schema's signature and an order to empty its tables in."""
        self._signature = connection.execute(text(_SIGNATURE)).scalar_one()
        tables = [name for (name,) in connection.execute(text(_TABLES))]
        parents: dict[str, set[str]] = {name: set() for name in tables}
        for child, parent in connection.execute(text(_FOREIGN_KEYS)):
            if child != parent and child in parents:
                parents[child].add(parent)
        self._delete_order = _children_first(parents)
        self._guarded = {name for (name,) in connection.execute(text(_GUARDED))}

    def _emptied(self, url: str) -> bool:
        engine = create_engine(make_url(url))
        try:
            with engine.begin() as connection:
                connection.execute(text("SET LOCAL lock_timeout = '5s'"))
                if connection.execute(text(_SIGNATURE)).scalar_one() != self._signature:
                    return False  # the test migrated or added something: start over
                holding = _tables_with_rows(connection, self._delete_order)
                for table in (t for t in self._delete_order if t in holding):
                    guarded = table in self._guarded
                    if guarded:
                        connection.execute(text(f'ALTER TABLE "{table}" DISABLE TRIGGER USER'))
                    connection.execute(text(f'DELETE FROM "{table}"'))
                    if guarded:
                        connection.execute(text(f'ALTER TABLE "{table}" ENABLE TRIGGER USER'))
                for (sequence,) in connection.execute(text(_USED_SEQUENCES)).all():
                    connection.execute(text(f'ALTER SEQUENCE "{sequence}" RESTART'))
            return True
        except SQLAlchemyError:
            return False
        finally:
            engine.dispose()

    def _drop(self, url: str) -> None:
        manager = self._open.pop(url, None)
        if manager is not None:
            manager.__exit__(None, None, None)


def _tables_with_rows(connection: Connection, tables: list[str]) -> set[str]:
    if not tables:
        return set()
    probe = " UNION ALL ".join(
        f"SELECT '{name}' WHERE EXISTS (SELECT 1 FROM \"{name}\")" for name in tables
    )
    return {name for (name,) in connection.execute(text(probe))}


def _children_first(parents: dict[str, set[str]]) -> list[str]:
    """Tables ordered so that each comes before every table it references."""
    order: list[str] = []
    placed: set[str] = set()
    children: dict[str, set[str]] = {name: set() for name in parents}
    for child, referenced in parents.items():
        for parent in referenced:
            children.setdefault(parent, set()).add(child)

    def place(name: str, path: frozenset[str]) -> None:
        if name in placed or name in path:
            return
        for child in sorted(children.get(name, ())):
            place(child, path | {name})
        placed.add(name)
        order.append(name)

    for name in sorted(parents):
        place(name, frozenset())
    return order
