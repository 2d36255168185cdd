"""twins: hash partitions by VIN on PostgreSQL (online for a non-empty database)

Revision ID: twins_0003
Revises: twins_0002
Create Date: 2026-12-07 00:00:00

PostgreSQL only (SQLite is unchanged). The four twins tables become ``PARTITION BY HASH
(vin)`` with N partitions: ``Database(migration_options={"twin_partitions": N})`` (from the
``state_twin_partitions`` setting) or ``alembic -x twin_partitions=N``; default 16. An empty
database is partitioned here and now. A database holding twins gets partitioned shadow tables
kept current by triggers, and ``drivetrain db partition-twins`` copies the rows in short
batches and swaps them in (``drivetrain/cloud/twins/partitions.py`` has the protocol): no
table is rewritten under a lock in this transaction.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import context, op

from drivetrain.cloud.twins import partitions

revision: str = "twins_0003"
down_revision: str | Sequence[str] | None = "twins_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _partitions() -> object:
    given = context.get_x_argument(as_dictionary=True).get("twin_partitions")
    if given is None:
        given = context.config.attributes.get("twin_partitions", partitions.DEFAULT_PARTITIONS)
    return given


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        partitions.begin_partitioning(bind, _partitions())


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        partitions.unpartition(bind)
