"""Throw-away state databases for test suites (every domain's tests use the same helper).

``temporary_postgres_database(server_url)`` creates a uniquely named database on a real
server (the role needs ``CREATEDB``), yields its URL and drops it afterwards, so parallel test
workers never share state.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
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
    name = unique_database_name(prefix)
    if not _SAFE_NAME.match(name):  # never interpolate anything unexpected into DDL
        raise ValueError(f"unsafe database name {name!r}")
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        try:
            with admin.connect() as connection:
                connection.execute(text(f'CREATE DATABASE "{name}"'))
        except SQLAlchemyError as e:
            raise StorageError(
                f"cannot create a test database on {server.render_as_string(hide_password=True)}"
                f": {str(getattr(e, 'orig', e)).strip()}"
            ) from e
        try:
            yield server.set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


POSTGRES_URL_ENV = "DRIVETRAIN_TEST_POSTGRES_URL"
Backend = Literal["sqlite", "postgresql"]
BACKENDS: tuple[Backend, ...] = ("sqlite", "postgresql")


@contextmanager
def database_url_for_tests(backend: Backend, directory: Path) -> Iterator[str]:
    """A fresh, empty state database URL for one test, removed afterwards.

    ``sqlite``: a file in ``directory``. ``postgresql``: a new database on the server named
    by ``$DRIVETRAIN_TEST_POSTGRES_URL``. Raises :class:`ConfigurationError` when that
    variable is unset and :class:`StorageError` when the server cannot be used; both messages
    say to run ``scripts/test``, which starts the server and sets the variable.
    """
    if backend == "sqlite":
        yield f"sqlite:///{directory / 'state.db'}"
        return
    server = os.environ.get(POSTGRES_URL_ENV)
    if not server:
        raise ConfigurationError(
            f"{POSTGRES_URL_ENV} is not set: the PostgreSQL half of the suite needs a real "
            "server. Run the suite with scripts/test (it starts PostgreSQL and exports the URL)."
        )
    manager = temporary_postgres_database(server)
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
