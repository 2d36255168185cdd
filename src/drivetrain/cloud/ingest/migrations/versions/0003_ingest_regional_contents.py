"""ingest: dead letters' contents and events' data kept per region

Revision ID: ingest_0003
Revises: ingest_0002
Create Date: 2026-12-07 00:00:00

A dead letter of a known vehicle keeps its payload, detail and replay outcome, and a vehicle
event its data, in the vehicle's region store (``drivetrain.cloud.infra.region_stores``);
the rows here name the region. These tables are that store's where the region has no store
of its own (the state database itself); a dedicated store creates them itself.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "ingest_0003"
down_revision: str | Sequence[str] | None = "ingest_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("ingest_dead_letters") as batch:
        batch.add_column(sa.Column("region", sa.String(8), nullable=True))
    with op.batch_alter_table("ingest_vehicle_events") as batch:
        batch.add_column(sa.Column("region", sa.String(8), nullable=True))
    op.create_table(
        "ingest_dead_letter_contents",
        sa.Column("dedup_key", sa.String(64), nullable=False),
        sa.Column("vin", sa.String(64), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("replay_outcome", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("dedup_key", name=op.f("pk_ingest_dead_letter_contents")),
    )
    op.create_index(
        op.f("ix_ingest_dead_letter_contents_vin"), "ingest_dead_letter_contents", ["vin"]
    )
    op.create_table(
        "ingest_vehicle_event_data",
        sa.Column("batch_id", sa.String(32), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("vin", sa.String(17), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("batch_id", "position", name=op.f("pk_ingest_vehicle_event_data")),
    )
    op.create_index(op.f("ix_ingest_vehicle_event_data_vin"), "ingest_vehicle_event_data", ["vin"])


def downgrade() -> None:
    op.drop_table("ingest_vehicle_event_data")
    op.drop_table("ingest_dead_letter_contents")
    with op.batch_alter_table("ingest_vehicle_events") as batch:
        batch.drop_column("region")
    with op.batch_alter_table("ingest_dead_letters") as batch:
        batch.drop_column("region")
