"""security: incidents, analyst actions, the correlation cursor, responses

Revision ID: security_0001
Revises:
Create Date: 2026-12-07 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "security_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("security",)
depends_on: str | Sequence[str] | None = "infra_0001"

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "security_incidents",
        sa.Column("incident_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(63), nullable=False),
        sa.Column("vin", sa.String(17), nullable=False),
        sa.Column("model", sa.String(80), nullable=False),
        sa.Column("region", sa.String(16), nullable=False),
        sa.Column("signature", sa.String(200), nullable=False),
        sa.Column("sensor", sa.String(40), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("assignee", sa.String(120), nullable=True),
        sa.Column("event_count", sa.BigInteger(), nullable=False),
        sa.Column("first_ns", sa.BigInteger(), nullable=False),
        sa.Column("last_ns", sa.BigInteger(), nullable=False),
        sa.Column("max_score", sa.Float(), nullable=False),
        sa.Column("opened_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.tenant_id"],
                                name=op.f("fk_security_incidents_tenant_id_tenants"),
                                ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("incident_id", name=op.f("pk_security_incidents")),
    )
    op.create_index("ix_security_incidents_tenant_id_signature_status", "security_incidents",
                    ["tenant_id", "signature", "status"])
    op.create_index("ix_security_incidents_tenant_id_vin", "security_incidents",
                    ["tenant_id", "vin"])
    op.create_table(
        "security_incident_actions",
        sa.Column("action_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("actor", sa.String(120), nullable=False),
        sa.Column("action", sa.String(24), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("at", _TS, nullable=False),
        sa.ForeignKeyConstraint(["incident_id"], ["security_incidents.incident_id"],
                                name=op.f("fk_security_incident_actions_incident_id_security_incidents"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("action_id", name=op.f("pk_security_incident_actions")),
    )
    op.create_index(op.f("ix_security_incident_actions_incident_id"),
                    "security_incident_actions", ["incident_id"])
    op.create_table(
        "security_cursors",
        sa.Column("tenant_id", sa.String(63), nullable=False),
        sa.Column("last_event_id", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.tenant_id"],
                                name=op.f("fk_security_cursors_tenant_id_tenants"),
                                ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_security_cursors")),
    )


    op.create_table(
        "security_responses",
        sa.Column("response_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(63), nullable=False),
        sa.Column("signature", sa.String(200), nullable=False),
        sa.Column("playbook", sa.String(40), nullable=False),
        sa.Column("args", sa.Text(), nullable=False),
        sa.Column("vins", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("requested_by", sa.String(120), nullable=False),
        sa.Column("decided_by", sa.String(120), nullable=True),
        sa.Column("job_id", sa.String(40), nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("decided_at", _TS, nullable=True),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.tenant_id"],
                                name=op.f("fk_security_responses_tenant_id_tenants"),
                                ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("response_id", name=op.f("pk_security_responses")),
    )
    op.create_index("ix_security_responses_tenant_id_status", "security_responses",
                    ["tenant_id", "status"])


def downgrade() -> None:
    op.drop_index("ix_security_responses_tenant_id_status", table_name="security_responses")
    op.drop_table("security_responses")
    op.drop_table("security_cursors")
    op.drop_index(op.f("ix_security_incident_actions_incident_id"),
                  table_name="security_incident_actions")
    op.drop_table("security_incident_actions")
    op.drop_index("ix_security_incidents_tenant_id_vin", table_name="security_incidents")
    op.drop_index("ix_security_incidents_tenant_id_signature_status",
                  table_name="security_incidents")
    op.drop_table("security_incidents")
