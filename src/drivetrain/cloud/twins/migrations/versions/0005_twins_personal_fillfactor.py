"""twins: room on each page of twin_reported_personal for the next version of a row (PostgreSQL)

Revision ID: twins_0005
Revises: twins_0004
Create Date: 2026-12-07 00:00:00

PostgreSQL only. ``twin_reported_personal`` is rewritten by every reported batch, like
``twin_reported``: with ``fillfactor`` 80 (as ``twin_reported``'s partitions have) the new
version of an updated row finds room on its own page, so the update is heap-only (no new
primary-key entry). The setting applies to pages written from now on; rows already stored
keep their full pages until the table is rewritten (``VACUUM FULL`` in a maintenance window).
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from drivetrain.cloud.twins.models import VALUE_FILLFACTOR

revision: str = "twins_0005"
down_revision: str | Sequence[str] | None = "twins_0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE twin_reported_personal SET (fillfactor = {VALUE_FILLFACTOR})")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE twin_reported_personal RESET (fillfactor)")
