"""campaigns: campaigns and versions, approval policy, signal catalogs, vehicle models,
decoder manifests

Revision ID: campaigns_0001
Revises:
Create Date: 2026-12-01 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "campaigns_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("campaigns",)
depends_on: str | Sequence[str] | None = "infra_0001"

_TS = sa.DateTime(timezone=True)


def _tenant_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["tenant_id"], ["tenants.tenant_id"],
                                   name=op.f(f"fk_{table}_tenant_id_tenants"),
                                   ondelete="RESTRICT")


def upgrade() -> None:
    op.create_table(
        "campaign_policies",
        sa.Column("tenant_id", sa.String(63), nullable=False),
        sa.Column("require_second_approver", sa.Boolean(), nullable=False),
        sa.Column("updated_by", sa.String(120), nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        _tenant_fk("campaign_policies"),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_campaign_policies")),
    )
    op.create_table(
        "campaigns",
        sa.Column("tenant_id", sa.String(63), nullable=False),
        sa.Column("campaign_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column("latest_version", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.String(40), nullable=True),
        sa.Column("content_version", sa.Integer(), nullable=False),
        sa.Column("install_version", sa.Integer(), nullable=False),
        sa.Column("wire_counter", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(120), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.Column("started_at", _TS, nullable=True),
        sa.Column("ended_at", _TS, nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        _tenant_fk("campaigns"),
        sa.PrimaryKeyConstraint("tenant_id", "campaign_id", name=op.f("pk_campaigns")),
    )
    op.create_index(op.f("ix_campaigns_status"), "campaigns", ["status"])
    op.create_table(
        "campaign_versions",
        sa.Column("tenant_id", sa.String(63), nullable=False),
        sa.Column("campaign_id", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("definition", sa.Text(), nullable=False),
        sa.Column("catalog_version", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("author", sa.String(120), nullable=False),
        sa.Column("written_at", _TS, nullable=False),
        sa.Column("approved_by", sa.String(120), nullable=True),
        sa.Column("approved_at", _TS, nullable=True),
        sa.PrimaryKeyConstraint("tenant_id", "campaign_id", "version",
                                name=op.f("pk_campaign_versions")),
    )
    op.create_table(
        "signal_catalogs",
        sa.Column("tenant_id", sa.String(63), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("signals", sa.Integer(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(120), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        _tenant_fk("signal_catalogs"),
        sa.PrimaryKeyConstraint("tenant_id", "version", name=op.f("pk_signal_catalogs")),
    )
    op.create_table(
        "vehicle_models",
        sa.Column("tenant_id", sa.String(63), nullable=False),
        sa.Column("model_id", sa.String(80), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("latest_manifest", sa.Integer(), nullable=False),
        sa.Column("published_manifest", sa.Integer(), nullable=True),
        sa.Column("created_by", sa.String(120), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        _tenant_fk("vehicle_models"),
        sa.PrimaryKeyConstraint("tenant_id", "model_id", name=op.f("pk_vehicle_models")),
    )
    op.create_table(
        "decoder_manifests",
        sa.Column("tenant_id", sa.String(63), nullable=False),
        sa.Column("model_id", sa.String(80), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("signature", sa.Text(), nullable=False),
        sa.Column("key_id", sa.String(16), nullable=False),
        sa.Column("job_id", sa.String(40), nullable=True),
        sa.Column("created_by", sa.String(120), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("published_at", _TS, nullable=True),
        sa.PrimaryKeyConstraint("tenant_id", "model_id", "version",
                                name=op.f("pk_decoder_manifests")),
    )


def downgrade() -> None:
    for table in ("decoder_manifests", "vehicle_models", "signal_catalogs", "campaign_versions",
                  "campaigns", "campaign_policies"):
        op.drop_table(table)
