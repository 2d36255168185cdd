"""Fixtures for the cloud domains: a fresh, migrated state database per test, on both engines.

``database`` is parametrized over SQLite (a file in the test's temp dir) and the real
PostgreSQL server from ``$DRIVETRAIN_TEST_POSTGRES_URL`` (a uniquely named database per
pytest-xdist worker, and in it a fresh schema per test; all dropped afterwards). Without that server the PostgreSQL cases fail, saying to run scripts/test.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from drivetrain.cloud.infra import Database
from drivetrain.cloud.infra.testing import (
    BACKENDS,
    Backend,
    postgres_test_database,
    temporary_postgres_schema,
)
from drivetrain.core.errors import ConfigurationError, StorageError


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Backend:
    """The engine under test: "sqlite" or "postgresql"."""
    return request.param  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def postgres_worker_database() -> Iterator[str]:
    """A uniquely named database on the test server for this pytest-xdist worker."""
    manager = postgres_test_database()
    try:
        url = manager.__enter__()
    except (ConfigurationError, StorageError) as e:
        failure = str(e)
    else:
        failure = ""
    if failure:
        pytest.fail(failure, pytrace=False)
    try:
        yield url
    finally:
        manager.__exit__(None, None, None)


@pytest.fixture
def database_url(
    backend: Backend, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[str]:
    """URL of a fresh, empty state database on ``backend``.

    SQLite: a file in the test's temp dir. PostgreSQL: a new schema (search_path) in this
    worker's database, dropped after the test.
    """
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'state.db'}"
        return
    worker_database = request.getfixturevalue("postgres_worker_database")
    try:
        manager = temporary_postgres_schema(worker_database)
        url = manager.__enter__()
    except StorageError as e:
        failure = str(e)
    else:
        failure = ""
    if failure:
        pytest.fail(failure, pytrace=False)
    try:
        yield url
    finally:
        manager.__exit__(None, None, None)


@pytest.fixture
def empty_database(database_url: str) -> Iterator[Database]:
    """A :class:`Database` with no migrations applied."""
    database = Database(database_url)
    yield database
    database.dispose()


@pytest.fixture
def database(empty_database: Database) -> Database:
    """A migrated :class:`Database` on each engine."""
    empty_database.upgrade()
    return empty_database
