"""insights: per-vehicle estimates of the energy and battery models

Revision ID: insights_0002
Revises: insights_0001
Create Date: 2026-12-07 03:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "insights_0002"
down_revision: str | Sequence[str] | None = "insights_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "insight_estimates",
        sa.Column("estimate_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(40), nullable=False),
        sa.Column("tenant_id", sa.String(63), nullable=False),
        sa.Column("vehicle", sa.String(64), nullable=False),
        sa.Column("vin", sa.String(17), nullable=True),
        sa.Column("quantity", sa.String(32), nullable=False),
        sa.Column("unit", sa.String(16), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("low", sa.Float(), nullable=False),
        sa.Column("high", sa.Float(), nullable=False),
        sa.Column("coverage", sa.Float(), nullable=False),
        sa.Column("observed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["insight_score_runs.run_id"],
                                name=op.f("fk_insight_estimates_run_id_insight_score_runs"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("estimate_id", name=op.f("pk_insight_estimates")),
    )
    op.create_index("ix_insight_estimates_run_id_vin", "insight_estimates", ["run_id", "vin"])
    op.create_index("ix_insight_estimates_tenant_id_vin", "insight_estimates", ["tenant_id", "vin"])


def downgrade() -> None:
    op.drop_table("insight_estimates")
