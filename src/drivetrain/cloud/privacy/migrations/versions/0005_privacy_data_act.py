"""privacy: EU Data Act owners, container grants, access log, metering, recipients

Revision ID: privacy_0005
Revises: privacy_0004
Create Date: 2026-12-07 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "privacy_0005"
down_revision: str | Sequence[str] | None = "privacy_0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _tenant_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["tenant_id"], ["tenants.tenant_id"],
                                   name=op.f(f"fk_{table}_tenant_id_tenants"),
                                   ondelete="RESTRICT")


def upgrade() -> None:
    op.create_table(
        "privacy_vehicle_owners",
        sa.Column("vin", sa.String(17), nullable=False),
        sa.Column("client_id", sa.String(128), nullable=False),
        sa.Column("tenant_id", sa.String(63), nullable=False),
        sa.Column("relation", sa.String(16), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        _tenant_fk("privacy_vehicle_owners"),
        sa.PrimaryKeyConstraint("vin", "client_id", name=op.f("pk_privacy_vehicle_owners")),
    )
    op.create_index(op.f("ix_privacy_vehicle_owners_tenant_id"), "privacy_vehicle_owners",
                    ["tenant_id"])
    op.create_table(
        "privacy_data_act_grants",
        sa.Column("grant_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("tenant_id", sa.String(63), nullable=False),
        sa.Column("vin", sa.String(17), nullable=False),
        sa.Column("containers", sa.Text(), nullable=False),
        sa.Column("granted_by", sa.String(128), nullable=False),
        _tenant_fk("privacy_data_act_grants"),
        sa.PrimaryKeyConstraint("grant_id", name=op.f("pk_privacy_data_act_grants")),
    )
    op.create_index(op.f("ix_privacy_data_act_grants_tenant_id"), "privacy_data_act_grants",
                    ["tenant_id"])
    op.create_index(op.f("ix_privacy_data_act_grants_vin"), "privacy_data_act_grants", ["vin"])
    op.create_table(
        "privacy_data_act_access",
        sa.Column("access_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(63), nullable=False),
        sa.Column("vin", sa.String(17), nullable=False),
        sa.Column("client_id", sa.String(128), nullable=False),
        sa.Column("party", sa.String(16), nullable=False),
        sa.Column("grant_id", sa.Integer(), nullable=True),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("containers", sa.Text(), nullable=False),
        sa.Column("value_count", sa.Integer(), nullable=False),
        sa.Column("byte_count", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("error", sa.String(64), nullable=True),
        _tenant_fk("privacy_data_act_access"),
        sa.PrimaryKeyConstraint("access_id", name=op.f("pk_privacy_data_act_access")),
    )
    op.create_index(op.f("ix_privacy_data_act_access_tenant_id"), "privacy_data_act_access",
                    ["tenant_id"])
    op.create_index(op.f("ix_privacy_data_act_access_vin"), "privacy_data_act_access", ["vin"])
    op.create_table(
        "privacy_data_act_metering",
        sa.Column("tenant_id", sa.String(63), nullable=False),
        sa.Column("recipient", sa.String(128), nullable=False),
        sa.Column("month", sa.String(7), nullable=False),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.Column("value_count", sa.Integer(), nullable=False),
        sa.Column("byte_count", sa.Integer(), nullable=False),
        _tenant_fk("privacy_data_act_metering"),
        sa.PrimaryKeyConstraint("tenant_id", "recipient", "month",
                                name=op.f("pk_privacy_data_act_metering")),
    )
    op.create_table(
        "privacy_data_act_recipients",
        sa.Column("tenant_id", sa.String(63), nullable=False),
        sa.Column("client_id", sa.String(128), nullable=False),
        sa.Column("sme", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        _tenant_fk("privacy_data_act_recipients"),
        sa.PrimaryKeyConstraint("tenant_id", "client_id",
                                name=op.f("pk_privacy_data_act_recipients")),
    )


def downgrade() -> None:
    for table in ("privacy_data_act_recipients", "privacy_data_act_metering",
                  "privacy_data_act_access", "privacy_data_act_grants",
                  "privacy_vehicle_owners"):
        op.drop_table(table)
