"""privacy: owner bindings kept in the vehicle's region store

Revision ID: privacy_0007_owners_regional
Revises: privacy_0006
Create Date: 2026-12-07 20:00:00

Which owner account holds which vehicle is personal data of the vehicle's region: the
bindings live in its region store (``drivetrain.cloud.infra.region_stores``), which has no
tenants table, so the table loses its foreign key to it. This table is that store's where
the region has no store of its own; ``drivetrain db upgrade`` moves the rows of a region that
has one (``drivetrain.cloud.privacy.regional.relocate_privacy``).
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "privacy_0007_owners_regional"
down_revision: str | Sequence[str] | None = "privacy_0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_FK = "fk_privacy_vehicle_owners_tenant_id_tenants"


def upgrade() -> None:
    with op.batch_alter_table("privacy_vehicle_owners") as batch:
        batch.drop_constraint(op.f(_FK), type_="foreignkey")


def downgrade() -> None:
    with op.batch_alter_table("privacy_vehicle_owners") as batch:
        batch.create_foreign_key(op.f(_FK), "tenants", ["tenant_id"], ["tenant_id"],
                                 ondelete="RESTRICT")
