"""The state database ``benchmarks/twins.py`` runs in, holding the realistic fleet.

Stocking 100,000 realistic twins costs tens of CPU-seconds, so the stocked fleet is built once
and copied for each run (each run changes it):

- SQLite: a file under ``--cache-dir`` (default ``~/.cache/drivetrain/bench/twins/``), copied
  to a temp dir;
- PostgreSQL: a template database ``dt_bench_twins_<twins>_<hash>`` on the server, from which
  each run creates (``CREATE DATABASE ... TEMPLATE``) and afterwards drops its own database.
  Templates of older shapes of the same size are dropped when a new one is built.

The cache name hashes the fleet's shape and the schema's migration heads, so a schema change
rebuilds it. ``--database-url`` names an existing empty database instead: the fleet is then
stocked there, untimed, with no cache.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import _twins_fleet as fleet
from rich.console import Console
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from drivetrain.cloud.infra import Database

SERVER_ENV = "DRIVETRAIN_BENCH_POSTGRES_URL"
TEST_SERVER_ENV = "DRIVETRAIN_TEST_POSTGRES_URL"
DEFAULT_CACHE = Path.home() / ".cache" / "drivetrain" / "bench" / "twins"
TEMPLATE_PREFIX = "dt_bench_twins_"

err = Console(stderr=True)
Source = AbstractContextManager[tuple[Database, dict[str, Any]]]


class BenchDatabaseError(Exception):
    """The database the benchmark was asked for cannot be had (the message says why)."""


def source(args: argparse.Namespace) -> Source:
    """The database for this run (see the module docstring).

    Raises:
        BenchDatabaseError: ``--database postgresql`` without a server URL.
    """
    if args.database_url:
        return _given(args.database_url, args.fleet_twins)
    if args.database == "sqlite":
        return _sqlite(args.cache_dir, args.fleet_twins)
    server = args.postgres_url or os.environ.get(SERVER_ENV) or os.environ.get(TEST_SERVER_ENV)
    if not server:
        raise BenchDatabaseError(
            f"--database postgresql needs a server: pass --postgres-url or set ${SERVER_ENV} "
            "(a SQLAlchemy URL such as postgresql+psycopg://user@127.0.0.1:5432/postgres; the "
            "role needs CREATEDB)"
        )
    return _postgresql(server, args.fleet_twins)


def _stock(database: Database, twins: int) -> float:
    err.print(f"stocking {twins:,} realistic twins (kept for later runs)")
    started = time.perf_counter()
    fleet.stock_fleet(database, twins)
    return round(time.perf_counter() - started, 1)


@contextmanager
def _given(url: str, twins: int) -> Iterator[tuple[Database, dict[str, Any]]]:
    database = Database(url)
    try:
        database.upgrade()
        stock_s = _stock(database, twins)
        yield database, {"fleet_from_cache": False, "stock_s": stock_s}
    finally:
        database.dispose()


@contextmanager
def _sqlite(cache_dir: Path, twins: int) -> Iterator[tuple[Database, dict[str, Any]]]:
    key = fleet.cache_key(Database("sqlite://"), twins)
    cached = cache_dir / f"fleet_{key}.sqlite"
    info: dict[str, Any] = {"fleet_from_cache": cached.exists()}
    if not cached.exists():
        cache_dir.mkdir(parents=True, exist_ok=True)
        building = cache_dir / f".building-{uuid.uuid4().hex}.sqlite"
        database = Database(f"sqlite:///{building}")
        try:
            database.upgrade()
            info["stock_s"] = _stock(database, twins)
        finally:
            database.dispose()  # the last connection checkpoints the WAL into the file
        os.replace(building, cached)
    with tempfile.TemporaryDirectory(prefix="drivetrain-twins-bench-") as tmp:
        shutil.copyfile(cached, Path(tmp) / "state.db")
        database = Database(f"sqlite:///{Path(tmp) / 'state.db'}")
        try:
            database.upgrade()
            yield database, info
        finally:
            database.dispose()


def _admin(server: str) -> Any:
    return create_engine(make_url(server), isolation_level="AUTOCOMMIT")


def _database_names(admin: Any) -> set[str]:
    with admin.connect() as connection:
        return set(connection.scalars(text("SELECT datname FROM pg_database")))


@contextmanager
def _postgresql(server: str, twins: int) -> Iterator[tuple[Database, dict[str, Any]]]:
    url = make_url(server)
    template = TEMPLATE_PREFIX + fleet.cache_key(Database(url), twins)
    admin = _admin(server)
    run = f"dt_bench_twins_run_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    try:
        names = _database_names(admin)
        info: dict[str, Any] = {"fleet_from_cache": template in names}
        if template not in names:
            info["stock_s"] = _build_template(admin, url, template, twins, names)
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{run}" TEMPLATE "{template}"'))
        database = Database(url.set(database=run))
        try:
            database.upgrade()
            yield database, info
        finally:
            database.dispose()
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{run}" WITH (FORCE)'))
    finally:
        admin.dispose()


def _build_template(admin: Any, url: Any, template: str, twins: int, names: set[str]) -> float:
    building = f"dt_bench_twins_build_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{building}"'))
    database = Database(url.set(database=building))
    try:
        database.upgrade()
        stock_s = _stock(database, twins)
        with database.engine.connect() as connection:  # as autovacuum does after a bulk load
            connection.execution_options(isolation_level="AUTOCOMMIT").execute(
                text("VACUUM (ANALYZE)")
            )
    except BaseException:
        database.dispose()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{building}" WITH (FORCE)'))
        raise
    database.dispose()
    stale = re.compile(rf"^{TEMPLATE_PREFIX}{twins}_[0-9a-f]{{10}}$")
    with admin.connect() as connection:
        for name in sorted(n for n in names if stale.match(n) and n != template):
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        if template in _database_names(admin):  # another run built it meanwhile
            connection.execute(text(f'DROP DATABASE "{building}" WITH (FORCE)'))
        else:
            connection.execute(text(f'ALTER DATABASE "{building}" RENAME TO "{template}"'))
    return stock_s
