"""ingest: dead letters, per-vehicle counters, vehicle events, ingested-batch ledger

Revision ID: ingest_0001
Revises:
Create Date: 2026-11-23 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "ingest_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("ingest",)
depends_on: str | Sequence[str] | None = "infra_0001"

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "ingest_dead_letters",
        sa.Column("dead_letter_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("received_at", _TS, nullable=False),
        sa.Column("vin", sa.String(64), nullable=False),
        sa.Column("tenant_id", sa.String(63), nullable=True),
        sa.Column("topic", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("batch_id", sa.String(32), nullable=True),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("sample_count", sa.Integer(), nullable=False),
        sa.Column("payload_format", sa.String(16), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("dedup_key", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("replayed_at", _TS, nullable=True),
        sa.Column("replay_outcome", sa.Text(), nullable=True),
        sa.Column("replay_attempts", sa.Integer(), nullable=False),
        sa.Column("replay_of", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.tenant_id"],
            name=op.f("fk_ingest_dead_letters_tenant_id_tenants"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("dead_letter_id", name=op.f("pk_ingest_dead_letters")),
        sa.UniqueConstraint("dedup_key", name=op.f("uq_ingest_dead_letters_dedup_key")),
    )
    op.create_index(
        op.f("ix_ingest_dead_letters_received_at"), "ingest_dead_letters", ["received_at"]
    )
    op.create_index(op.f("ix_ingest_dead_letters_vin"), "ingest_dead_letters", ["vin"])
    op.create_index(op.f("ix_ingest_dead_letters_reason"), "ingest_dead_letters", ["reason"])
    op.create_index(
        "ix_ingest_dead_letters_tenant_status", "ingest_dead_letters", ["tenant_id", "status"]
    )
    op.create_table(
        "ingest_counters",
        sa.Column("tenant_id", sa.String(63), nullable=False),
        sa.Column("vin", sa.String(64), nullable=False),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("messages", sa.BigInteger(), nullable=False),
        sa.Column("samples", sa.BigInteger(), nullable=False),
        sa.Column("last_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "vin", "outcome", name=op.f("pk_ingest_counters")),
    )
    op.create_table(
        "ingest_vehicle_events",
        sa.Column("event_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(63), nullable=False),
        sa.Column("vin", sa.String(17), nullable=False),
        sa.Column("batch_id", sa.String(32), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(120), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("ts_ns", sa.BigInteger(), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("received_at", _TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.tenant_id"],
            name=op.f("fk_ingest_vehicle_events_tenant_id_tenants"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_ingest_vehicle_events")),
        sa.UniqueConstraint(
            "batch_id", "position", name=op.f("uq_ingest_vehicle_events_batch_id_position")
        ),
    )
    op.create_index(
        "ix_ingest_vehicle_events_tenant_vin_ts",
        "ingest_vehicle_events",
        ["tenant_id", "vin", "ts_ns"],
    )
    op.create_index(
        op.f("ix_ingest_vehicle_events_severity"), "ingest_vehicle_events", ["severity"]
    )
    op.create_table(
        "ingest_seen_batches",
        sa.Column("batch_id", sa.String(32), nullable=False),
        sa.Column("vin", sa.String(17), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("received_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("batch_id", name=op.f("pk_ingest_seen_batches")),
    )
    op.create_index(
        op.f("ix_ingest_seen_batches_received_at"), "ingest_seen_batches", ["received_at"]
    )


def downgrade() -> None:
    op.drop_table("ingest_seen_batches")
    op.drop_table("ingest_vehicle_events")
    op.drop_table("ingest_counters")
    op.drop_table("ingest_dead_letters")
