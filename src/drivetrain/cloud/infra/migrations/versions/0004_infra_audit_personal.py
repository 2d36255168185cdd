"""infra: the personal part of audit entries about a vehicle, kept per region

Revision ID: infra_0004_audit_personal
Revises: infra_0003_store_regions
Create Date: 2026-12-07 20:00:00

An audit entry about a registered vehicle keeps its actor, target and details in the
vehicle's region store (``drivetrain.cloud.infra.audit_regional``); the chain keeps a pointer.
This table is that store's where the region has no store of its own (the state database
itself); a dedicated store creates it itself. Entries written before stay whole: the log is
append-only and hash-chained.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "infra_0004_audit_personal"
down_revision: str | Sequence[str] | None = "infra_0003_store_regions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_personal",
        sa.Column("tenant_id", sa.String(63), nullable=False),
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("vin", sa.String(17), nullable=False),
        sa.Column("actor", sa.String(120), nullable=False),
        sa.Column("target", sa.String(300), nullable=False),
        sa.Column("details", sa.Text(), nullable=False),
        sa.Column("salt", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "seq", name=op.f("pk_audit_personal")),
    )
    op.create_index(op.f("ix_audit_personal_vin"), "audit_personal", ["vin"])


def downgrade() -> None:
    op.drop_index(op.f("ix_audit_personal_vin"), table_name="audit_personal")
    op.drop_table("audit_personal")
