"""twins: desired values of personal paths in their own table (kept per region)

Revision ID: twins_0006
Revises: twins_0005
Create Date: 2026-12-07 00:00:00

The value of a desired item on a location, driving behaviour or cabin path lives in the
vehicle's region store; its item stays in ``twin_desired`` with ``num`` and ``text`` empty.
This table is that store's where the region has no store of its own (the state database
itself); a dedicated store creates it itself. Values written before are moved by
``drivetrain db upgrade`` (``desired_personal.relocate_personal_desired``).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "twins_0006"
down_revision: str | Sequence[str] | None = "twins_0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "twin_desired_personal",
        sa.Column("vin", sa.String(17), primary_key=True),
        sa.Column("path", sa.String(200), primary_key=True),
        sa.Column("kind", sa.String(1), nullable=False),
        sa.Column("num", sa.Float(), nullable=True),
        sa.Column("text", sa.Text(), nullable=True),
        sqlite_with_rowid=False,
    )


def downgrade() -> None:
    op.drop_table("twin_desired_personal")
