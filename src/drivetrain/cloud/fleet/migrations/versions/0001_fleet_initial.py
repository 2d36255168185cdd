"""fleet: vehicle registry

Revision ID: fleet_0001
Revises:
Create Date: 2026-11-23 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "fleet_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("fleet",)
depends_on: str | Sequence[str] | None = "infra_0001"


def upgrade() -> None:
    op.create_table(
        "fleet_vehicles",
        sa.Column("vin", sa.String(17), nullable=False),
        sa.Column("tenant_id", sa.String(63), nullable=False),
        sa.Column("model", sa.String(80), nullable=False),
        sa.Column("region", sa.String(8), nullable=False),
        sa.Column("owner", sa.String(200), nullable=True),
        sa.Column("public_key", sa.String(64), nullable=False),
        sa.Column("key_id", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.tenant_id"],
            name=op.f("fk_fleet_vehicles_tenant_id_tenants"), ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("vin", name=op.f("pk_fleet_vehicles")),
    )
    op.create_index(op.f("ix_fleet_vehicles_tenant_id"), "fleet_vehicles", ["tenant_id"])
    op.create_index(op.f("ix_fleet_vehicles_region"), "fleet_vehicles", ["region"])


def downgrade() -> None:
    op.drop_table("fleet_vehicles")
