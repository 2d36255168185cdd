"""The state database: engine, transactional sessions, migrations, error translation.

SQLite (a file under ``data_dir``) is the embedded default; PostgreSQL is chosen by URL
(``postgresql+psycopg://user:password@host/db``). Both run the same code and the same Alembic
revisions. No SQLAlchemy or driver exception leaves this module's callers: every session and
migration translates them (``IntegrityError`` → :class:`ConflictError`, anything else from
the database → :class:`StorageError`), chaining the original with ``raise ... from``.
"""

from __future__ import annotations

import itertools
import os
import threading
import weakref
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry, StaticPool

from drivetrain.cloud.infra.audit import AUDIT_KEY_INFO
from drivetrain.cloud.infra.database_pool import READ_ONLY_INFO, PoolOptions
from drivetrain.cloud.infra.region_stores import (
    REGIONAL_INFO,
    RegionSessions,
    RegionStores,
    default_store_dir,
    relocate,
)
from drivetrain.core.errors import ConfigurationError, ConflictError, StorageError
from drivetrain.core.private_files import make_private_dir, make_private_file
from drivetrain.core.settings import Settings

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_CLOUD_DIR = Path(__file__).resolve().parents[1]
SQLITE_BUSY_TIMEOUT_MS = 5000
#: Bytes of a SQLite state database read through a memory map rather than SQLite's own page
#: cache (2 MB by default): a fleet query over 100,000 twins touches tens of thousands of
#: pages of a 600 MB file, and each one missing from the page cache was a ``pread`` and a copy
#: (measured: the realistic query's CPU 85 -> 53 ms). Address space only; the OS pages it.
SQLITE_MMAP_BYTES = 1 << 30


def migration_version_locations() -> list[Path]:
    """Every domain's Alembic ``versions`` directory, infra first.

    A domain ``drivetrain.cloud.<name>`` contributes revisions by shipping
    ``migrations/versions/`` inside its package (see docs/api.md); they are found here, so
    adding a domain never edits infra code.
    """
    infra = MIGRATIONS_DIR / "versions"
    others = sorted(
        p for p in _CLOUD_DIR.glob("*/migrations/versions") if p.is_dir() and p != infra
    )
    return [infra, *others]


def schema_comparison_options(connection: Any) -> dict[str, Any]:
    """Alembic ``include_name``/``include_object`` hooks that leave out the partitions of
    partitioned tables (PostgreSQL: ``twin_reported_p00`` ...) and the foreign keys that
    PostgreSQL derives for each of them: the models declare only the parent tables; and the
    indexes a model declares for another engine only (``Index(...).ddl_if(dialect=...)``). For
    ``compare_metadata`` and ``alembic revision --autogenerate``."""
    partitions: set[str] = set()
    dialect = connection.dialect.name
    if dialect == "postgresql":
        partitions = set(connection.exec_driver_sql(
            "SELECT relname FROM pg_class WHERE relispartition "
            "AND relnamespace = current_schema()::regnamespace"
        ).scalars())  # fmt: skip

    def include_name(name: str | None, type_: str, _parent: Any) -> bool:
        return not (type_ == "table" and name in partitions)

    def include_object(item: Any, _name: Any, type_: str, reflected: bool, _other: Any) -> bool:
        if type_ == "foreign_key_constraint" and reflected:
            return str(item.referred_table.name) not in partitions
        if type_ == "index" and not reflected:  # declared for one engine only (``ddl_if``)
            only = getattr(item, "_ddl_if", None)
            return only is None or only.dialect in (None, dialect)
        return True

    return {"include_name": include_name, "include_object": include_object}


def _first_line(error: BaseException) -> str:
    orig = getattr(error, "orig", None) or error
    return str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__


@contextmanager
def translate_errors(operation: str) -> Iterator[None]:
    """Re-raise SQLAlchemy/driver errors raised inside the block as Drivetrain errors.

    ``operation`` names what was being done, for the message. Raises :class:`ConflictError`
    for integrity violations (duplicate key, broken foreign key) and :class:`StorageError`
    for everything else the database reports (unreachable server, locked file, bad SQL).
    """
    try:
        yield
    except IntegrityError as e:
        raise ConflictError(f"{operation}: conflicts with existing data ({_first_line(e)})") from e
    except SQLAlchemyError as e:
        raise StorageError(f"{operation}: state database failed ({_first_line(e)})") from e


@dataclass(frozen=True, slots=True)
class DatabaseHealth:
    """Result of a liveness probe: ``ok``, the applied revisions, and the failure if any."""

    ok: bool
    revisions: tuple[str, ...]
    detail: str


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers proceed while one writer commits; SQLite leaves foreign keys off
    # unless asked, per connection. The memory map: see SQLITE_MMAP_BYTES.
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute(f"PRAGMA mmap_size={SQLITE_MMAP_BYTES}")
    finally:
        cursor.close()


class Database:
    """One state database: an engine plus transactional sessions and migrations.

    ``url`` is a SQLAlchemy URL (``sqlite:///path/state.db`` or
    ``postgresql+psycopg://...``). On PostgreSQL, ``pool`` sizes each engine's connection
    pool, ``replica_urls`` name read replicas that :meth:`read_session` lends sessions on, and
    ``migration_options`` reach the Alembic revisions (``twin_partitions``; see
    ``docs/scale.md``). ``region_urls`` name the stores of regions' personal state
    (``region_stores.py``; ``region_stores=False`` for a store itself, which has none). Raises
    :class:`ConfigurationError` when a URL cannot be parsed, its
    driver is not installed, or replicas are given for a SQLite primary. Connecting is lazy:
    an unreachable server shows up as :class:`StorageError` on first use.
    """

    def __init__(
        self,
        url: str | URL,
        *,
        echo: bool = False,
        audit_key: bytes | None = None,
        pool: PoolOptions | None = None,
        replica_urls: Sequence[str | URL] = (),
        migration_options: Mapping[str, object] | None = None,
        region_urls: Mapping[str, str] | None = None,
        region_stores: bool = True,
    ) -> None:
        parsed = _parse_url(url)
        self._url = parsed
        self._pool = pool or PoolOptions()
        self._migration_options = dict(migration_options or {})
        # Authenticates audit entries (HMAC); kept here, never in the database.
        self._audit_key = audit_key
        kwargs: dict[str, Any] = {"echo": echo}
        if parsed.get_backend_name() == "sqlite":
            database = parsed.database or ""
            if database in ("", ":memory:"):
                kwargs["poolclass"] = StaticPool  # one shared in-memory database
                kwargs["connect_args"] = {"check_same_thread": False}
            else:
                # The file holds the per-tenant pseudonym keys: owner-only from its creation
                # (SQLite gives its -wal and -shm files the database file's mode).
                try:
                    make_private_dir(Path(database).parent)
                    make_private_file(Path(database))
                except OSError as e:
                    raise StorageError(f"cannot create the state database {database}: "
                                       f"{e.strerror}") from e
        else:
            kwargs.update(self._pool.engine_kwargs())
        self._engine = _engine(parsed, kwargs)
        if self.dialect == "sqlite":
            event.listen(self._engine, "connect", _sqlite_pragmas)
        self._sessions = sessionmaker(self._engine, expire_on_commit=False)
        replicas = [_parse_url(u) for u in replica_urls]
        if replicas and self.dialect != "postgresql":
            raise ConfigurationError(
                "read replicas need a PostgreSQL primary; the state database is "
                f"{self.display_url!r}"
            )
        # Replica sessions run in read-only transactions (psycopg: BEGIN READ ONLY), so a
        # write that strays onto a replica session fails at once, even on a writable server.
        self._replicas = [
            _engine(r, {"echo": echo, **self._pool.engine_kwargs()}).execution_options(
                postgresql_readonly=True
            )
            for r in replicas
        ]
        self._replica_sessions = [sessionmaker(e, expire_on_commit=False) for e in self._replicas]
        self._next_replica = itertools.cycle(range(len(self._replicas)))
        self._replica_lock = threading.Lock()
        # Where each region's personal state lives (region_stores.py); a region store is a
        # Database of its own without stores of its own.
        self._regions = (
            RegionStores(region_urls or {}, default_store_dir(parsed), self._pool)
            if region_stores
            else None
        )
        # A Database dropped without dispose() closes its pooled connections when collected
        # (left to the garbage collector, each one would be dropped unclosed, with a warning).
        weakref.finalize(self, _dispose_engines, [self._engine, *self._replicas])

    @property
    def region_stores(self) -> RegionStores | None:
        """Region → store of the personal state (None: this is a region store itself)."""
        return self._regions

    @property
    def audit_key(self) -> bytes | None:
        """The key authenticating this database's audit entries (None: unkeyed)."""
        return self._audit_key

    def use_audit_key(self, key: bytes | None) -> None:
        """Authenticate audit entries written and verified from now on with ``key``."""
        self._audit_key = key

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (for domains that need Core queries)."""
        return self._engine

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self._url.get_backend_name()

    @property
    def display_url(self) -> str:
        """The URL with any password masked, safe to log."""
        return self._url.render_as_string(hide_password=True)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in one transaction: committed when the block ends, rolled back on error.

        Raises :class:`ConflictError`/:class:`StorageError` for database failures inside the
        block or at commit; other exceptions propagate unchanged after the rollback.
        """
        with translate_errors("state database transaction"), self._sessions() as session:
            session.info[AUDIT_KEY_INFO] = self._audit_key
            regional = session.info[REGIONAL_INFO] = RegionSessions(self._regions, session)
            try:
                yield session
                regional.commit()
                session.commit()
            except BaseException:
                regional.close(rollback=True)
                session.rollback()
                raise
            finally:
                regional.close(rollback=False)

    @property
    def replica_engines(self) -> tuple[Engine, ...]:
        """The read replicas' engines, in configuration order (empty: none configured)."""
        return tuple(self._replicas)

    @contextmanager
    def read_session(self) -> Iterator[Session]:
        """A session for reads that tolerate replication lag (fleet queries, twin reads,
        listings): on the next read replica in turn, in a read-only transaction, or on the
        primary when no replica is configured. Never write in it; code that reads in order to
        write uses :meth:`session`. ``session.info[READ_ONLY_INFO]`` is True on a replica.

        Raises :class:`ConflictError`/:class:`StorageError` as :meth:`session` does (a write
        attempted on a replica is a :class:`StorageError`).
        """
        if not self._replica_sessions:
            with self.session() as session:
                yield session
            return
        with self._replica_lock:
            index = next(self._next_replica)
        with translate_errors("state database read (replica)"), \
                self._replica_sessions[index]() as session:
            session.info[AUDIT_KEY_INFO] = self._audit_key
            session.info[READ_ONLY_INFO] = True
            regional = session.info[REGIONAL_INFO] = RegionSessions(self._regions, session)
            try:
                yield session
            finally:
                regional.close(rollback=True)
                session.rollback()  # nothing to keep: end the read-only transaction

    def _alembic_config(self, connection: Any) -> Config:
        config = Config()
        # configparser interpolation: a literal '%' in a path must be doubled.
        config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
        config.set_main_option("path_separator", "os")
        config.set_main_option(
            "version_locations",
            os.pathsep.join(str(p) for p in migration_version_locations()).replace("%", "%%"),
        )
        config.attributes["connection"] = connection
        config.attributes.update(self._migration_options)
        return config

    def upgrade(self, revision: str = "heads") -> None:
        """Apply every pending migration of every domain (up to ``revision``; default all).

        Idempotent. Raises :class:`StorageError` when the database cannot be reached or a
        migration fails.
        """
        with translate_errors(f"migrating {self.display_url} to {revision!r}"):
            with self._engine.begin() as connection:
                command.upgrade(self._alembic_config(connection), revision)
        if self._regions is not None and revision == "heads":
            self._regions.upgrade()
            with self.session() as session:  # personal rows written before: to their stores
                relocate(session)

    def current_revisions(self) -> tuple[str, ...]:
        """The applied Alembic revisions (one per domain branch); empty for a new database.

        Raises :class:`StorageError` when the database cannot be reached.
        """
        with translate_errors(f"reading the schema revision of {self.display_url}"):
            with self._engine.connect() as connection:
                heads = set(MigrationContext.configure(connection).get_current_heads())
        if not heads:
            return ()
        # Alembic drops a branch's head from the version table once another branch that
        # ``depends_on`` it is applied; report it anyway, so there is one revision per domain.
        from alembic.script import ScriptDirectory

        script = ScriptDirectory.from_config(self._alembic_config(None))
        branch_heads = set(script.get_heads())
        for head in list(heads):
            heads |= {
                rev.revision
                for rev in script.revision_map.iterate_revisions(head, "base")
                if rev.revision in branch_heads
            }
        return tuple(sorted(heads))

    def head_revisions(self) -> tuple[str, ...]:
        """The newest revision of every branch shipped with the code (what upgrade reaches)."""
        from alembic.script import ScriptDirectory

        script = ScriptDirectory.from_config(self._alembic_config(None))
        return tuple(sorted(script.get_heads()))

    def health(self) -> DatabaseHealth:
        """Probe the database with a trivial query; never raises."""
        try:
            with translate_errors(f"probing {self.display_url}"):
                with self._engine.connect() as connection:
                    connection.execute(text("SELECT 1"))
            revisions = self.current_revisions()
        except StorageError as e:
            return DatabaseHealth(ok=False, revisions=(), detail=str(e))
        return DatabaseHealth(ok=True, revisions=revisions, detail="ok")

    def dispose(self) -> None:
        """Close every pooled connection (the primary's and the replicas'). The object stays
        usable (connections reopen)."""
        _dispose_engines([self._engine, *self._replicas])
        if self._regions is not None:
            self._regions.dispose()


def _dispose_engines(engines: Sequence[Engine]) -> None:
    """Close each engine's pooled connections. One checked out at this moment (a request or
    worker thread still finishing) goes back to the retired pool later, where nothing would
    ever close it: it is closed on that return instead."""
    for engine in engines:
        retired = engine.pool
        engine.dispose()
        if not event.contains(retired, "checkin", _close_on_return):
            event.listen(retired, "checkin", _close_on_return)


def _close_on_return(_dbapi_connection: object, record: ConnectionPoolEntry) -> None:
    """A connection returned to a retired pool: closed (the pool is never used again)."""
    record.invalidate()


def _parse_url(url: str | URL) -> URL:
    try:
        return make_url(url)
    except ArgumentError as e:
        raise ConfigurationError(
            f"state database URL {str(url)!r} is not a SQLAlchemy URL "
            "(expected e.g. sqlite:///path/state.db or postgresql+psycopg://user@host/db)"
        ) from e


def _engine(url: URL, kwargs: dict[str, Any]) -> Engine:
    try:
        return create_engine(url, **kwargs)
    except (NoSuchModuleError, ModuleNotFoundError, ArgumentError) as e:
        raise ConfigurationError(
            f"cannot open state database {url.render_as_string(hide_password=True)!r}: {e} "
            "(PostgreSQL needs the 'postgres' extra: pip install 'drivetrain[postgres]')"
        ) from e


def open_database(settings: Settings) -> Database:
    """The state database named by ``settings.state_database_url`` (SQLite in data_dir by default).

    Does not migrate: call :meth:`Database.upgrade`. Raises :class:`ConfigurationError` for an
    unusable URL, :class:`StorageError` when the data directory cannot be created. Creates
    the data directory 0700 (and narrows an existing one to its owner).
    """
    try:
        make_private_dir(settings.data_dir, tighten=True)
    except OSError as e:
        raise StorageError(f"cannot create the data directory {settings.data_dir}: "
                           f"{e.strerror}") from e
    from drivetrain.cloud.infra.bootstrap import resolve_audit_key

    return Database(
        settings.state_database_url,
        audit_key=resolve_audit_key(settings),
        pool=PoolOptions.from_settings(settings),
        replica_urls=settings.state_replica_urls,
        migration_options={"twin_partitions": settings.state_twin_partitions},
        region_urls=settings.state_region_urls,
    )
