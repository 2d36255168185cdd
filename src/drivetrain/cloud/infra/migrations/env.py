"""Alembic environment: runs every domain's revisions against the state database.

Normally driven by :meth:`drivetrain.cloud.infra.Database.upgrade`, which passes an open
connection in ``config.attributes["connection"]``. ``target_metadata`` is the one shared
metadata with every domain's tables imported, so ``alembic revision --autogenerate`` sees the
whole schema.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from alembic import context
from sqlalchemy import create_engine

from drivetrain.cloud.infra.database import schema_comparison_options
from drivetrain.cloud.infra.models import Base

_CLOUD_DIR = Path(__file__).resolve().parents[2]

# Import each domain's tables (drivetrain/cloud/<domain>/models.py) so they join Base.metadata.
for _models in sorted(_CLOUD_DIR.glob("*/models.py")):
    importlib.import_module(f"drivetrain.cloud.{_models.parent.name}.models")

target_metadata = Base.metadata


def _configure_and_run(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things in place: batch mode recreates the table.
        render_as_batch=connection.dialect.name == "sqlite",  # type: ignore[attr-defined]
        compare_type=True,
        **schema_comparison_options(connection),
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    context.configure(
        url=context.config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _configure_and_run(connection)
        return
    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no connection given and no sqlalchemy.url configured")
    engine = create_engine(url)
    try:
        with engine.begin() as own_connection:
            _configure_and_run(own_connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
