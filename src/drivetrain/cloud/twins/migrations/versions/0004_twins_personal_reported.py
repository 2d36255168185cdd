"""twins: reported values of personal paths in their own table (kept per region)

Revision ID: twins_0004
Revises: twins_0003
Create Date: 2026-12-07 00:00:00

Location, driving behaviour and cabin values live in the vehicle's region store
(``drivetrain.cloud.infra.region_stores``). This table is that store's where the region has
no store of its own (the state database itself); a dedicated store creates it itself. No
foreign key to ``twins``: a dedicated store has no ``twins`` table.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "twins_0004"
down_revision: str | Sequence[str] | None = "twins_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "twin_reported_personal",
        sa.Column("vin", sa.String(17), primary_key=True),
        sa.Column("path", sa.String(200), primary_key=True),
        sa.Column("kind", sa.String(1), nullable=False),
        sa.Column("num", sa.Float(), nullable=True),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("ts_ns", sa.BigInteger(), nullable=False),
        sa.Column("updated_ns", sa.BigInteger(), nullable=False),
        sqlite_with_rowid=False,
    )


def downgrade() -> None:
    op.drop_table("twin_reported_personal")
