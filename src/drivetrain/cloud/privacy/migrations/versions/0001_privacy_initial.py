"""privacy: pseudonym keys per tenant, consent per vehicle

Revision ID: privacy_0001
Revises:
Create Date: 2026-11-23 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "privacy_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("privacy",)
depends_on: str | Sequence[str] | None = "infra_0001"

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "privacy_pseudonym_keys",
        sa.Column("tenant_id", sa.String(63), nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.tenant_id"],
            name=op.f("fk_privacy_pseudonym_keys_tenant_id_tenants"), ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_privacy_pseudonym_keys")),
    )
    op.create_table(
        "privacy_consent",
        sa.Column("vin", sa.String(17), nullable=False),
        sa.Column("tenant_id", sa.String(63), nullable=False),
        sa.Column("categories", sa.Text(), nullable=False),
        sa.Column("source", sa.String(80), nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.tenant_id"],
            name=op.f("fk_privacy_consent_tenant_id_tenants"), ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("vin", name=op.f("pk_privacy_consent")),
    )
    op.create_index(op.f("ix_privacy_consent_tenant_id"), "privacy_consent", ["tenant_id"])


def downgrade() -> None:
    op.drop_table("privacy_consent")
    op.drop_table("privacy_pseudonym_keys")
