"""privacy: the per-tenant differential-privacy budget ledger

Revision ID: privacy_0003
Revises: privacy_0002
Create Date: 2026-12-07 07:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "privacy_0003"
down_revision: str | Sequence[str] | None = "privacy_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "privacy_budget_spends",
        sa.Column("spend_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(63), nullable=False),
        sa.Column("epsilon", sa.Float(), nullable=False),
        sa.Column("spent_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("query", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.tenant_id"],
            name=op.f("fk_privacy_budget_spends_tenant_id_tenants"), ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("spend_id", name=op.f("pk_privacy_budget_spends")),
    )
    op.create_index(op.f("ix_privacy_budget_spends_tenant_id"), "privacy_budget_spends",
                    ["tenant_id"])


def downgrade() -> None:
    op.drop_table("privacy_budget_spends")
