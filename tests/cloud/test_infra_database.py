"""The state database on SQLite and PostgreSQL: migrations, transactions, error translation."""

from __future__ import annotations

import gc
import warnings
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from drivetrain.cloud.infra import Base, Database, open_database
from drivetrain.cloud.infra.database import (
    SQLITE_MMAP_BYTES,
    migration_version_locations,
    schema_comparison_options,
)
from drivetrain.cloud.infra.models import TenantRow
from drivetrain.core.errors import ConfigurationError, ConflictError, StorageError
from drivetrain.core.settings import Settings


def _tenant(tenant_id: str) -> TenantRow:
    return TenantRow(tenant_id=tenant_id, display_name=tenant_id, created_at=datetime.now(UTC))


def test_upgrade_brings_an_empty_database_to_the_shipped_heads_and_is_idempotent(
    empty_database: Database,
) -> None:
    assert empty_database.current_revisions() == ()
    empty_database.upgrade()
    assert empty_database.current_revisions() == empty_database.head_revisions()
    assert any(r.startswith("infra_") for r in empty_database.current_revisions())
    empty_database.upgrade()
    assert empty_database.current_revisions() == empty_database.head_revisions()


def test_migrated_schema_matches_the_declared_tables(database: Database) -> None:
    with database.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts=schema_comparison_options(connection))
        diff = compare_metadata(context, Base.metadata)
    assert diff == []


def test_session_commits_on_success_and_rolls_back_on_error(database: Database) -> None:
    with database.session() as session:
        session.add(_tenant("kept"))
    with pytest.raises(RuntimeError, match="boom"), database.session() as session:
        session.add(_tenant("dropped"))
        session.flush()
        raise RuntimeError("boom")
    with database.session() as session:
        names = set(session.scalars(text("SELECT tenant_id FROM tenants")))
    assert names == {"kept"}


def test_duplicate_key_becomes_a_conflict_error_with_the_cause_chained(database: Database) -> None:
    with database.session() as session:
        session.add(_tenant("acme"))
    with pytest.raises(ConflictError, match="conflicts with existing data") as info:
        with database.session() as session:
            session.add(_tenant("acme"))
    assert info.value.__cause__ is not None


def test_broken_foreign_key_is_refused_on_both_engines(database: Database) -> None:
    with pytest.raises(ConflictError), database.session() as session:
        session.execute(
            text(
                "INSERT INTO clients (client_id, tenant_id, name, role, scopes, secret_hash,"
                " disabled, created_at) VALUES ('c', 'no-such-tenant', 'n', 'admin', 'admin',"
                " 'h', false, CURRENT_TIMESTAMP)"
            )
        )


def test_bad_sql_becomes_a_storage_error(database: Database) -> None:
    with pytest.raises(StorageError, match="state database failed"):
        with database.session() as session:
            session.execute(text("SELECT * FROM no_such_table"))


def test_timestamps_come_back_timezone_aware_in_utc(database: Database) -> None:
    written = datetime(2025, 6, 1, 12, 30, 15, 123456, tzinfo=UTC)
    with database.session() as session:
        session.add(TenantRow(tenant_id="t", display_name="t", created_at=written))
    with database.session() as session:
        row = session.get(TenantRow, "t")
        assert row is not None
        assert row.created_at == written
        assert row.created_at.tzinfo is not None


def test_health_reports_ok_and_the_applied_revisions(database: Database) -> None:
    health = database.health()
    assert health.ok
    assert health.revisions == database.head_revisions()


def test_sqlite_runs_in_wal_mode_with_foreign_keys_enforced_and_memory_mapped(
    tmp_path: Path,
) -> None:
    database = Database(f"sqlite:///{tmp_path / 'sub' / 'state.db'}")
    try:
        with database.engine.connect() as connection:
            assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
            assert connection.execute(text("PRAGMA mmap_size")).scalar() == SQLITE_MMAP_BYTES
    finally:
        database.dispose()


def test_unreachable_postgres_server_is_a_storage_error_not_a_driver_error() -> None:
    database = Database("postgresql+psycopg://nobody:pw@127.0.0.1:1/nothing?connect_timeout=2")
    with pytest.raises(StorageError, match="127.0.0.1:1/nothing"):
        database.upgrade()
    health = database.health()
    assert not health.ok and "state database failed" in health.detail
    assert "pw@" not in database.display_url


@pytest.mark.parametrize("url", ["not a url", "nosuchdialect://x/y"])
def test_unusable_database_url_is_a_configuration_error(url: str) -> None:
    with pytest.raises(ConfigurationError, match="state database"):
        Database(url)


@pytest.mark.embedded_only(reason="the SQLite default itself (the fleet profile names PostgreSQL)")
def test_open_database_defaults_to_sqlite_in_the_data_dir(settings: Settings) -> None:
    database = open_database(settings)
    try:
        assert database.dialect == "sqlite"
        assert str(settings.data_dir.resolve() / "state.db") in database.display_url
    finally:
        database.dispose()


def test_infra_revisions_are_shipped_inside_the_package() -> None:
    infra = migration_version_locations()[0]
    assert infra.parts[-3:] == ("infra", "migrations", "versions")
    assert any(p.name.startswith("0001_") for p in infra.glob("*.py"))
    assert (infra.parent / "env.py").is_file() and (infra.parent / "script.py.mako").is_file()


def _resource_warnings_on_collection() -> list[str]:
    """What the garbage collector warns about now (an unclosed driver connection is a
    ResourceWarning raised from its finalizer)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gc.collect()
    return [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]


def test_a_database_dropped_without_dispose_closes_its_connections(database_url: str) -> None:
    database = Database(database_url)
    with database.engine.connect() as connection:
        connection.execute(text("SELECT 1"))
    del database, connection
    assert _resource_warnings_on_collection() == []


def test_a_connection_returned_after_dispose_is_closed_and_the_pool_lives_on(
    database_url: str,
) -> None:
    database = Database(database_url)
    straggler = database.engine.connect()  # a request or worker thread still finishing
    straggler.execute(text("SELECT 1"))
    database.dispose()
    straggler.close()  # back to the retired pool, which nothing uses again
    assert straggler.closed
    # the database reopens connections and keeps them pooled as before
    for _ in range(2):
        with database.engine.connect() as connection:
            assert connection.execute(text("SELECT 1")).scalar() == 1
    assert database.engine.pool.checkedin() == 1  # type: ignore[attr-defined]
    database.dispose()
    del database, straggler, connection
    assert _resource_warnings_on_collection() == []
