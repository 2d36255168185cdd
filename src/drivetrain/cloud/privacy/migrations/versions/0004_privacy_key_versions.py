"""privacy: versioned pseudonym keys (rotation keeps every earlier key)

Revision ID: privacy_0004
Revises: privacy_0003
Create Date: 2026-12-07 08:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "privacy_0004"
down_revision: str | Sequence[str] | None = "privacy_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The key each tenant has today becomes its version 1.
    with op.batch_alter_table("privacy_pseudonym_keys") as batch:
        batch.add_column(sa.Column("version", sa.Integer(), nullable=False, server_default="1"))
        batch.drop_constraint("pk_privacy_pseudonym_keys", type_="primary")
        batch.create_primary_key("pk_privacy_pseudonym_keys", ["tenant_id", "version"])


def downgrade() -> None:
    # Back to one key per tenant: the first one (what data before any rotation was written
    # under); later keys are dropped, so data written under them is no longer linkable.
    op.execute("DELETE FROM privacy_pseudonym_keys WHERE version <> 1")
    with op.batch_alter_table("privacy_pseudonym_keys") as batch:
        batch.drop_constraint("pk_privacy_pseudonym_keys", type_="primary")
        batch.create_primary_key("pk_privacy_pseudonym_keys", ["tenant_id"])
        batch.drop_column("version")
