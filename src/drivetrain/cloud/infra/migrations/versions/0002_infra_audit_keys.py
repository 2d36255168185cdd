"""infra: audit entries say which key authenticated them (HMAC-SHA256 chains)

Revision ID: infra_0002_audit_keys
Revises: infra_0001
Create Date: 2026-12-07 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "infra_0002_audit_keys"
down_revision: str | Sequence[str] | None = "infra_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain ADD COLUMN (no batch copy): on SQLite a batch rebuild would drop the
    # append-only triggers. Entries written before have no key id: an unkeyed SHA-256 chain.
    op.add_column("audit_log", sa.Column("key_id", sa.String(16), nullable=True))


def downgrade() -> None:
    op.drop_column("audit_log", "key_id")
