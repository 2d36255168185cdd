"""twins: twins, reported values, desired items, ECU inventory

Revision ID: twins_0001
Revises:
Create Date: 2026-11-23 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "twins_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("twins",)
depends_on: str | Sequence[str] | None = "infra_0001"


# The value tables are WITHOUT ROWID on SQLite (rows live in the primary-key b-tree; see
# models.py). A later batch migration of them must pass
# table_kwargs={"sqlite_with_rowid": False} to keep that.


def _vin_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["vin"], ["twins.vin"], name=op.f(f"fk_{table}_vin_twins"), ondelete="CASCADE"
    )


def upgrade() -> None:
    op.create_table(
        "twins",
        sa.Column("vin", sa.String(17), nullable=False),
        sa.Column("tenant_id", sa.String(63), nullable=False),
        sa.Column("model", sa.String(80), nullable=False),
        sa.Column("region", sa.String(8), nullable=False),
        sa.Column("owner", sa.String(200), nullable=True),
        sa.Column("desired_version", sa.Integer(), nullable=False),
        sa.Column("desired_updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("send_pending", sa.Boolean(), nullable=False),
        sa.Column("sent_version", sa.Integer(), nullable=True),
        sa.Column("sent_message_id", sa.String(32), nullable=True),
        sa.Column("sent_seq", sa.Integer(), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("acked_version", sa.Integer(), nullable=True),
        sa.Column("acked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("vin", name=op.f("pk_twins")),
    )
    op.create_index("ix_twins_tenant_id_vin", "twins", ["tenant_id", "vin"])
    op.create_index("ix_twins_tenant_id_region_vin", "twins", ["tenant_id", "region", "vin"])
    op.create_index(op.f("ix_twins_send_pending"), "twins", ["send_pending"])

    op.create_table(
        "twin_reported",
        sa.Column("vin", sa.String(17), nullable=False),
        sa.Column("path", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(1), nullable=False),
        sa.Column("num", sa.Float(), nullable=True),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("ts_ns", sa.BigInteger(), nullable=False),
        sa.Column("updated_ns", sa.BigInteger(), nullable=False),
        _vin_fk("twin_reported"),
        sa.PrimaryKeyConstraint("vin", "path", name=op.f("pk_twin_reported")),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_twin_reported_path_num", "twin_reported", ["path", "num"])

    op.create_table(
        "twin_desired",
        sa.Column("vin", sa.String(17), nullable=False),
        sa.Column("path", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(1), nullable=False),
        sa.Column("num", sa.Float(), nullable=True),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("set_version", sa.Integer(), nullable=False),
        sa.Column("set_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("set_by", sa.String(120), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("status_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        _vin_fk("twin_desired"),
        sa.PrimaryKeyConstraint("vin", "path", name=op.f("pk_twin_desired")),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_twin_desired_path_num", "twin_desired", ["path", "num"])
    op.create_index("ix_twin_desired_status", "twin_desired", ["status"])

    op.create_table(
        "twin_ecus",
        sa.Column("vin", sa.String(17), nullable=False),
        sa.Column("ecu", sa.String(64), nullable=False),
        sa.Column("hardware_id", sa.String(120), nullable=True),
        sa.Column("software_version", sa.String(64), nullable=True),
        sa.Column("software_key", sa.String(200), nullable=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        _vin_fk("twin_ecus"),
        sa.PrimaryKeyConstraint("vin", "ecu", name=op.f("pk_twin_ecus")),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_twin_ecus_ecu_software_key", "twin_ecus", ["ecu", "software_key"])


def downgrade() -> None:
    op.drop_table("twin_ecus")
    op.drop_table("twin_desired")
    op.drop_table("twin_reported")
    op.drop_table("twins")
