"""twins: the vehicle's reasons for rejecting desired items (kept per region)

Revision ID: twins_0007
Revises: twins_0006
Create Date: 2026-12-07 17:00:00

When a vehicle rejects a desired message, its words (which may quote a personal value of any
item the message carried) live in the vehicle's region store; each item in ``twin_desired`` says only that the
reason is kept there. This table is that store's where the region has no store of its own
(the state database itself); a dedicated store creates it itself. Reasons written before are
moved by ``drivetrain db upgrade`` (``desired_personal.relocate_personal_desired``).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "twins_0007"
down_revision: str | Sequence[str] | None = "twins_0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "twin_desired_reasons",
        sa.Column("vin", sa.String(17), primary_key=True),
        sa.Column("path", sa.String(200), primary_key=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sqlite_with_rowid=False,
    )


def downgrade() -> None:
    op.drop_table("twin_desired_reasons")
