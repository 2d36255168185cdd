"""Fixtures for the cloud domains: a fresh, migrated state database per test, on both engines.

``database`` is parametrized over SQLite (a file in the test's temp dir) and the real
PostgreSQL server from ``$DRIVETRAIN_TEST_POSTGRES_URL`` (a uniquely named database per test,
dropped afterwards). Without that server the PostgreSQL cases fail, saying to run scripts/test.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from drivetrain.cloud.infra import Database
from drivetrain.cloud.infra.testing import BACKENDS, Backend, database_url_for_tests
from drivetrain.core.errors import ConfigurationError, StorageError


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Backend:
    """The engine under test: "sqlite" or "postgresql"."""
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def database_url(backend: Backend, tmp_path: Path) -> Iterator[str]:
    """URL of a fresh, empty state database on ``backend``."""
    manager = database_url_for_tests(backend, tmp_path)
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
