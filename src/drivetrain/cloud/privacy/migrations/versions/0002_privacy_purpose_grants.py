"""privacy: the purpose-consent ledger, data subject requests

Revision ID: privacy_0002
Revises: privacy_0001
Create Date: 2026-12-07 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "privacy_0002"
down_revision: str | Sequence[str] | None = "privacy_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "privacy_purpose_grants",
        sa.Column("grant_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(63), nullable=False),
        sa.Column("vin", sa.String(17), nullable=False),
        sa.Column("purpose", sa.String(32), nullable=False),
        sa.Column("categories", sa.Text(), nullable=False),
        sa.Column("person", sa.String(16), nullable=False),
        sa.Column("recipient", sa.String(128), nullable=True),
        sa.Column("source", sa.String(80), nullable=False),
        sa.Column("given_at", _TS, nullable=False),
        sa.Column("expires_at", _TS, nullable=True),
        sa.Column("withdrawn_at", _TS, nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.tenant_id"],
            name=op.f("fk_privacy_purpose_grants_tenant_id_tenants"), ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("grant_id", name=op.f("pk_privacy_purpose_grants")),
    )
    op.create_index(op.f("ix_privacy_purpose_grants_tenant_id"), "privacy_purpose_grants",
                    ["tenant_id"])
    op.create_index(op.f("ix_privacy_purpose_grants_vin"), "privacy_purpose_grants", ["vin"])
    op.create_table(
        "privacy_requests",
        sa.Column("request_id", sa.String(32), nullable=False),
        sa.Column("tenant_id", sa.String(63), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("subjects", sa.Text(), nullable=False),
        sa.Column("requested_by", sa.String(128), nullable=False),
        sa.Column("received_at", _TS, nullable=False),
        sa.Column("due_at", _TS, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("completed_at", _TS, nullable=True),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.tenant_id"],
            name=op.f("fk_privacy_requests_tenant_id_tenants"), ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("request_id", name=op.f("pk_privacy_requests")),
    )
    op.create_index(op.f("ix_privacy_requests_tenant_id"), "privacy_requests", ["tenant_id"])


def downgrade() -> None:
    op.drop_table("privacy_requests")
    op.drop_table("privacy_purpose_grants")
