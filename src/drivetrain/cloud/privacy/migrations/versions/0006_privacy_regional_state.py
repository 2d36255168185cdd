"""privacy: consent, its history, Data Act grants and access logs kept per region

Revision ID: privacy_0006
Revises: privacy_0005
Create Date: 2026-12-07 17:00:00

A registered vehicle's consent (its categories and source) and the personal part of each
ledger grant (categories, person, source), of each Data Act grant (containers, granted by)
and of each Data Act access (who read what) are kept in the vehicle's region store
(``drivetrain.cloud.infra.region_stores``); the rows here name the region. These tables are
that store's where the region has no store of its own (the state database itself); a
dedicated store creates them itself.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "privacy_0006"
down_revision: str | Sequence[str] | None = "privacy_0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


_LISTINGS = (
    "privacy_consent", "privacy_purpose_grants", "privacy_data_act_grants",
    "privacy_data_act_access",
)


def upgrade() -> None:
    for table in _LISTINGS:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("region", sa.String(8), nullable=True))
    op.create_table(
        "privacy_consent_contents",
        sa.Column("vin", sa.String(17), nullable=False),
        sa.Column("categories", sa.Text(), nullable=False),
        sa.Column("source", sa.String(80), nullable=False),
        sa.PrimaryKeyConstraint("vin", name=op.f("pk_privacy_consent_contents")),
    )
    op.create_table(
        "privacy_purpose_grant_contents",
        sa.Column("grant_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("vin", sa.String(17), nullable=False),
        sa.Column("categories", sa.Text(), nullable=False),
        sa.Column("person", sa.String(16), nullable=False),
        sa.Column("source", sa.String(80), nullable=False),
        sa.PrimaryKeyConstraint("grant_id", name=op.f("pk_privacy_purpose_grant_contents")),
    )
    op.create_index(
        op.f("ix_privacy_purpose_grant_contents_vin"), "privacy_purpose_grant_contents", ["vin"]
    )


    op.create_table(
        "privacy_data_act_grant_contents",
        sa.Column("grant_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("vin", sa.String(17), nullable=False),
        sa.Column("containers", sa.Text(), nullable=False),
        sa.Column("granted_by", sa.String(128), nullable=False),
        sa.PrimaryKeyConstraint("grant_id", name=op.f("pk_privacy_data_act_grant_contents")),
    )
    op.create_index(
        op.f("ix_privacy_data_act_grant_contents_vin"), "privacy_data_act_grant_contents", ["vin"]
    )
    op.create_table(
        "privacy_data_act_access_contents",
        sa.Column("access_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("vin", sa.String(17), nullable=False),
        sa.Column("client_id", sa.String(128), nullable=False),
        sa.Column("party", sa.String(16), nullable=False),
        sa.Column("grant_id", sa.Integer(), nullable=True),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("containers", sa.Text(), nullable=False),
        sa.Column("value_count", sa.Integer(), nullable=False),
        sa.Column("byte_count", sa.Integer(), nullable=False),
        sa.Column("error", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("access_id", name=op.f("pk_privacy_data_act_access_contents")),
    )
    op.create_index(
        op.f("ix_privacy_data_act_access_contents_vin"), "privacy_data_act_access_contents",
        ["vin"],
    )


def downgrade() -> None:
    op.drop_table("privacy_data_act_access_contents")
    op.drop_table("privacy_data_act_grant_contents")
    op.drop_table("privacy_purpose_grant_contents")
    op.drop_table("privacy_consent_contents")
    for table in reversed(_LISTINGS):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("region")
