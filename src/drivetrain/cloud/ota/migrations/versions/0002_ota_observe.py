"""ota: each rollout's observation time before its health gate judges a wave

Revision ID: ota_0002_observe
Revises: ota_0001
Create Date: 2026-12-07 07:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "ota_0002_observe"
down_revision: str | Sequence[str] | None = "ota_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("ota_rollouts") as batch:
        batch.add_column(sa.Column("observe_s", sa.Float(), nullable=False,
                                   server_default="3600"))


def downgrade() -> None:
    with op.batch_alter_table("ota_rollouts") as batch:
        batch.drop_column("observe_s")
