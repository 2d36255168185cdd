"""infra: which regions a state store serves (residency of personal state)

Revision ID: infra_0003_store_regions
Revises: infra_0002_audit_keys
Create Date: 2026-12-07 00:00:00

A dedicated region store records its one region on first use and refuses another from then
on (``drivetrain.cloud.infra.region_stores``); the state database has the table too, so the
schema is the same everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "infra_0003_store_regions"
down_revision: str | Sequence[str] | None = "infra_0002_audit_keys"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "state_store_regions",
        sa.Column("region", sa.String(8), primary_key=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("state_store_regions")
