"""streams: the consumer groups' ledger of applied messages, per-vehicle activity

Revision ID: streams_0001
Revises:
Create Date: 2026-12-07 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "streams_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("streams",)
depends_on: str | Sequence[str] | None = "infra_0001"

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "stream_applied",
        sa.Column("group_name", sa.String(80), nullable=False),
        sa.Column("message_id", sa.String(128), nullable=False),
        sa.Column("applied_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("group_name", "message_id"),
    )
    op.create_index("ix_stream_applied_applied_at", "stream_applied", ["applied_at"])
    op.create_table(
        "vehicle_activity",
        sa.Column("tenant_id", sa.String(63), nullable=False),
        sa.Column("vin", sa.String(17), nullable=False),
        sa.Column("lake_batches", sa.BigInteger(), nullable=False),
        sa.Column("lake_samples", sa.BigInteger(), nullable=False),
        sa.Column("last_lake_at", _TS, nullable=True),
        sa.Column("twin_changes", sa.BigInteger(), nullable=False),
        sa.Column("last_twin_at", _TS, nullable=True),
        sa.PrimaryKeyConstraint("tenant_id", "vin"),
    )


def downgrade() -> None:
    op.drop_table("vehicle_activity")
    op.drop_index("ix_stream_applied_applied_at", table_name="stream_applied")
    op.drop_table("stream_applied")
