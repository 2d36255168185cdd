"""twins: write-optimised reported values, covering software index on PostgreSQL

Revision ID: twins_0002
Revises: twins_0001
Create Date: 2026-12-06 00:00:00

``ix_twin_reported_path_num`` goes: the fleet query checks a reported value per candidate
twin by primary key (vin, path) — the plan both engines choose — so the index was never read,
while every reported update had to rewrite it (on PostgreSQL it also ruled out heap-only
updates; its upkeep was two thirds of the server's time per update). On PostgreSQL the
software-version index carries the VIN (``INCLUDE``), so a ``software."ECU" < "x"`` predicate
is answered from the index alone; SQLite's secondary indexes on a WITHOUT ROWID table carry
the primary key already.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "twins_0002"
down_revision: str | Sequence[str] | None = "twins_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_twin_reported_path_num", table_name="twin_reported")
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_twin_ecus_ecu_software_key", table_name="twin_ecus")
        op.create_index(
            "ix_twin_ecus_ecu_software_key", "twin_ecus", ["ecu", "software_key"],
            postgresql_include=["vin"],
        )  # fmt: skip


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_twin_ecus_ecu_software_key", table_name="twin_ecus")
        op.create_index("ix_twin_ecus_ecu_software_key", "twin_ecus", ["ecu", "software_key"])
    op.create_index("ix_twin_reported_path_num", "twin_reported", ["path", "num"])
