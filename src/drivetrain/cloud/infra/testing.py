"""Throw-away PostgreSQL databases for test suites (every domain's tests use the same helper).

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

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from drivetrain.core.errors import StorageError

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
