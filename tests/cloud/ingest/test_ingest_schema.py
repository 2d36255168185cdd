"""The ingest migration creates exactly the declared tables, on both engines."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

import drivetrain.cloud.ingest.models  # noqa: F401 - registers the ingest tables on Base
from drivetrain.cloud.infra import Base, Database


def test_ingest_migration_matches_the_declared_tables(database: Database) -> None:
    assert "ingest_0003" in database.current_revisions()
    with database.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert [d for d in diff if "ingest_" in str(d)] == []
