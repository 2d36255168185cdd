"""The ingest migrations create exactly the declared tables, on both engines, and the latest
goes down and up again."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

import drivetrain.cloud.ingest.models  # noqa: F401 - registers the ingest tables on Base
from drivetrain.cloud.infra import Base, Database


def test_ingest_migration_matches_the_declared_tables(database: Database) -> None:
    assert "ingest_session_0004" in database.current_revisions()
    with database.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert [d for d in diff if "ingest_" in str(d)] == []


def test_the_sessions_migration_goes_down_and_up_again(database: Database) -> None:
    with database.engine.begin() as connection:
        command.downgrade(database._alembic_config(connection), "ingest_0003")
    assert "ingest_sessions" not in inspect(database.engine).get_table_names()
    assert "ingest_0003" in database.current_revisions()
    database.upgrade()
    assert "ingest_sessions" in inspect(database.engine).get_table_names()
    assert "ingest_session_0004" in database.current_revisions()
