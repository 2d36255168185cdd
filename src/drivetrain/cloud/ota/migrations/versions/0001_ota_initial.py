"""ota: rollouts, their vehicles, UN R156 update records, version-report keys

Revision ID: ota_0001
Revises:
Create Date: 2026-12-07 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "ota_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("ota",)
depends_on: str | Sequence[str] | None = "infra_0001"

_TS = sa.DateTime(timezone=True)


def _tenant_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["tenant_id"], ["tenants.tenant_id"],
                                   name=op.f(f"fk_{table}_tenant_id_tenants"),
                                   ondelete="RESTRICT")


def upgrade() -> None:
    op.create_table(
        "ota_rollouts",
        sa.Column("rollout_id", sa.String(40), nullable=False),
        sa.Column("tenant_id", sa.String(63), nullable=False),
        sa.Column("name", sa.String(120), nullable=False),
        sa.Column("ecu", sa.String(64), nullable=False),
        sa.Column("images", sa.Text(), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("rxswin", sa.String(120), nullable=False),
        sa.Column("query", sa.Text(), nullable=False),
        sa.Column("waves", sa.Text(), nullable=False),
        sa.Column("success_threshold", sa.Float(), nullable=False),
        sa.Column("error_threshold", sa.Float(), nullable=False),
        sa.Column("health_margin", sa.Float(), nullable=False),
        sa.Column("min_control", sa.Integer(), nullable=False),
        sa.Column("maintenance_windows", sa.Text(), nullable=False),
        sa.Column("optional", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("wave", sa.Integer(), nullable=False),
        sa.Column("wave_ends", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("evidence", sa.Text(), nullable=False),
        sa.Column("job_id", sa.String(40), nullable=True),
        sa.Column("manifest_cursor", sa.BigInteger(), nullable=False),
        sa.Column("created_by", sa.String(120), nullable=False),
        sa.Column("approved_by", sa.String(120), nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        _tenant_fk("ota_rollouts"),
        sa.PrimaryKeyConstraint("rollout_id", name=op.f("pk_ota_rollouts")),
    )
    op.create_index("ix_ota_rollouts_tenant_id_created_at", "ota_rollouts",
                    ["tenant_id", "created_at"])
    op.create_table(
        "ota_rollout_vehicles",
        sa.Column("rollout_id", sa.String(40), nullable=False),
        sa.Column("vin", sa.String(17), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("wave", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("software_before", sa.String(64), nullable=False),
        sa.Column("started_at", _TS, nullable=True),
        sa.Column("updated_at", _TS, nullable=False),
        sa.ForeignKeyConstraint(["rollout_id"], ["ota_rollouts.rollout_id"],
                                name=op.f("fk_ota_rollout_vehicles_rollout_id_ota_rollouts"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("rollout_id", "vin", name=op.f("pk_ota_rollout_vehicles")),
    )
    op.create_index("ix_ota_rollout_vehicles_vin", "ota_rollout_vehicles", ["vin"])
    op.create_table(
        "ota_update_records",
        sa.Column("record_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(63), nullable=False),
        sa.Column("rollout_id", sa.String(40), nullable=False),
        sa.Column("vin", sa.String(17), nullable=False),
        sa.Column("campaign", sa.String(120), nullable=False),
        sa.Column("software_before", sa.String(64), nullable=False),
        sa.Column("software_after", sa.String(64), nullable=False),
        sa.Column("rxswin", sa.String(120), nullable=False),
        sa.Column("preconditions", sa.Text(), nullable=False),
        sa.Column("result", sa.String(16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("started_at", _TS, nullable=False),
        sa.Column("ended_at", _TS, nullable=False),
        _tenant_fk("ota_update_records"),
        sa.PrimaryKeyConstraint("record_id", name=op.f("pk_ota_update_records")),
    )
    op.create_index("ix_ota_update_records_tenant_id_vin", "ota_update_records",
                    ["tenant_id", "vin"])
    op.create_index("ix_ota_update_records_rollout_id", "ota_update_records", ["rollout_id"])
    op.create_table(
        "ota_vehicle_keys",
        sa.Column("vin", sa.String(17), nullable=False),
        sa.Column("ecu_serial", sa.String(64), nullable=False),
        sa.Column("tenant_id", sa.String(63), nullable=False),
        sa.Column("primary", sa.Boolean(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("last_counter", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        _tenant_fk("ota_vehicle_keys"),
        sa.PrimaryKeyConstraint("vin", "ecu_serial", name=op.f("pk_ota_vehicle_keys")),
    )


def downgrade() -> None:
    op.drop_table("ota_vehicle_keys")
    op.drop_table("ota_update_records")
    op.drop_table("ota_rollout_vehicles")
    op.drop_table("ota_rollouts")
