"""ingest: vehicle sessions (a MAC per envelope instead of a signature)

Revision ID: ingest_session_0004
Revises: ingest_0003
Create Date: 2026-12-07 00:00:00

A session's MAC key sealed under the platform key, the vehicle and key that opened it, and the
highest sequence number accepted (``drivetrain.cloud.ingest.sessions``).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "ingest_session_0004"
down_revision: str | Sequence[str] | None = "ingest_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ingest_sessions",
        sa.Column("session_id", sa.String(32), nullable=False),
        sa.Column("vin", sa.String(17), nullable=False),
        sa.Column("vehicle_key_id", sa.String(16), nullable=False),
        sa.Column("platform_key_id", sa.String(16), nullable=False),
        sa.Column("sealed_key", sa.LargeBinary(), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("highest_seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("session_id", name=op.f("pk_ingest_sessions")),
    )
    op.create_index(op.f("ix_ingest_sessions_vin"), "ingest_sessions", ["vin"])
    op.create_index(op.f("ix_ingest_sessions_opened_at"), "ingest_sessions", ["opened_at"])


def downgrade() -> None:
    op.drop_table("ingest_sessions")
