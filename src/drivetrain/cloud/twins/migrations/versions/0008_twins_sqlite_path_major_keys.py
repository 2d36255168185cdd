"""twins: on SQLite, reported values keyed by (path, vin) and ECUs by (ecu, vin)

Revision ID: twins_0008
Revises: twins_0007
Create Date: 2026-12-07 00:00:00

SQLite only (PostgreSQL keeps its tables). ``twin_reported`` and ``twin_ecus`` are WITHOUT
ROWID tables: their rows live in the primary-key b-tree, in key order. Keyed (vin, path), one
twin's rows were together and one path's values were spread over the whole file, so the fleet
query — one lookup of the same path for each candidate twin — touched a different page for
every twin (25,000 pages of a 600 MB file for the benchmark's count). Keyed (path, vin), the
values of one path lie together in VIN order, as the candidates come: the same lookups read
a few hundred neighbouring pages, and the count takes about half the CPU. The same for
``twin_ecus`` (keyed (ecu, vin)). The columns and the uniqueness of (vin, path) and (vin, ecu)
are unchanged (an upsert's ``ON CONFLICT (vin, path)`` still names the key); an index on
``vin`` serves a twin's own rows and the cascade when a twin is deleted. It is not rewritten
by a reported update (neither its columns nor the key change).
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "twins_0008"
down_revision: str | Sequence[str] | None = "twins_0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_REPORTED_COLUMNS = """
    vin VARCHAR(17) NOT NULL,
    path VARCHAR(200) NOT NULL,
    kind VARCHAR(1) NOT NULL,
    num FLOAT,
    text TEXT,
    ts_ns BIGINT NOT NULL,
    updated_ns BIGINT NOT NULL,"""
_ECU_COLUMNS = """
    vin VARCHAR(17) NOT NULL,
    ecu VARCHAR(64) NOT NULL,
    hardware_id VARCHAR(120),
    software_version VARCHAR(64),
    software_key VARCHAR(200),
    source VARCHAR(16) NOT NULL,
    updated_at DATETIME NOT NULL,"""


def _rebuild(table: str, columns: str, key: tuple[str, str], indexes: dict[str, str]) -> None:
    """Recreate ``table`` (SQLite) with primary key ``key``, rows copied in key order, and
    ``indexes`` (name: columns)."""
    order = ", ".join(key)
    op.execute(
        f"CREATE TABLE {table}_rekeyed ({columns}\n"
        f"    CONSTRAINT pk_{table} PRIMARY KEY ({order}),\n"
        f"    CONSTRAINT fk_{table}_vin_twins FOREIGN KEY(vin) REFERENCES twins (vin)"
        " ON DELETE CASCADE\n) WITHOUT ROWID"
    )
    op.execute(f"INSERT INTO {table}_rekeyed SELECT * FROM {table} ORDER BY {order}")
    op.execute(f"DROP TABLE {table}")
    op.execute(f"ALTER TABLE {table}_rekeyed RENAME TO {table}")
    for name, indexed in indexes.items():
        op.execute(f"CREATE INDEX {name} ON {table} ({indexed})")


_SOFTWARE_INDEX = {"ix_twin_ecus_ecu_software_key": "ecu, software_key"}


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    _rebuild("twin_reported", _REPORTED_COLUMNS, ("path", "vin"), {"ix_twin_reported_vin": "vin"})
    _rebuild("twin_ecus", _ECU_COLUMNS, ("ecu", "vin"), {"ix_twin_ecus_vin": "vin", **_SOFTWARE_INDEX})


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    _rebuild("twin_reported", _REPORTED_COLUMNS, ("vin", "path"), {})
    _rebuild("twin_ecus", _ECU_COLUMNS, ("vin", "ecu"), _SOFTWARE_INDEX)
