"""commands: jobs, deliveries, the dispatcher's ack cursor

Revision ID: commands_0001
Revises:
Create Date: 2026-12-01 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "commands_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("commands",)
depends_on: str | Sequence[str] | None = "infra_0001"

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "dispatch_jobs",
        sa.Column("job_id", sa.String(40), nullable=False),
        sa.Column("tenant_id", sa.String(63), nullable=False),
        sa.Column("origin", sa.String(40), nullable=False),
        sa.Column("name", sa.String(120), nullable=False),
        sa.Column("message_kind", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(40), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("query", sa.Text(), nullable=True),
        sa.Column("policy", sa.Text(), nullable=False),
        sa.Column("continuous", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_by", sa.String(120), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("start_at", _TS, nullable=False),
        sa.Column("started_at", _TS, nullable=True),
        sa.Column("ended_at", _TS, nullable=True),
        sa.Column("tokens", sa.Float(), nullable=False),
        sa.Column("tokens_at", _TS, nullable=True),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.tenant_id"],
                                name=op.f("fk_dispatch_jobs_tenant_id_tenants"),
                                ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("job_id", name=op.f("pk_dispatch_jobs")),
    )
    op.create_index("ix_dispatch_jobs_tenant_id_created_at", "dispatch_jobs",
                    ["tenant_id", "created_at"])
    op.create_index("ix_dispatch_jobs_status", "dispatch_jobs", ["status"])

    op.create_table(
        "dispatch_deliveries",
        sa.Column("delivery_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("job_id", sa.String(40), nullable=False),
        sa.Column("tenant_id", sa.String(63), nullable=False),
        sa.Column("vin", sa.String(17), nullable=False),
        sa.Column("channel", sa.String(40), nullable=False),
        sa.Column("label", sa.String(32), nullable=False),
        sa.Column("body", sa.Text(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.String(32), nullable=True),
        sa.Column("queued_at", _TS, nullable=False),
        sa.Column("not_before", _TS, nullable=True),
        sa.Column("sent_at", _TS, nullable=True),
        sa.Column("deadline_at", _TS, nullable=True),
        sa.Column("finished_at", _TS, nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("ack_event_id", sa.Integer(), nullable=True),
        sa.Column("clear_pending", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["dispatch_jobs.job_id"],
                                name=op.f("fk_dispatch_deliveries_job_id_dispatch_jobs"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("delivery_id", name=op.f("pk_dispatch_deliveries")),
    )
    op.create_index("ix_dispatch_deliveries_job_id_state", "dispatch_deliveries",
                    ["job_id", "state"])
    op.create_index("ix_dispatch_deliveries_vin_channel_state", "dispatch_deliveries",
                    ["vin", "channel", "state"])
    op.create_index("ix_dispatch_deliveries_message_id", "dispatch_deliveries",
                    ["message_id"])
    op.create_index("ix_dispatch_deliveries_state_deadline_at", "dispatch_deliveries",
                    ["state", "deadline_at"])
    op.create_index("ix_dispatch_deliveries_clear_pending", "dispatch_deliveries",
                    ["clear_pending"])

    op.create_table(
        "dispatch_cursors",
        sa.Column("name", sa.String(40), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_dispatch_cursors")),
    )


def downgrade() -> None:
    op.drop_table("dispatch_cursors")
    op.drop_table("dispatch_deliveries")
    op.drop_table("dispatch_jobs")
