"""The state database's declarative base and the infra domain's tables.

Every domain maps its tables on :class:`Base`, so all tables share one ``MetaData`` (foreign
keys across domains resolve, Alembic autogenerate sees the whole schema) and one constraint
naming convention (migrations can name, alter and drop constraints on SQLite and PostgreSQL
alike). A domain never queries another domain's tables; sharing the metadata is only about
schema bookkeeping.

Timestamps are stored with :class:`UTCDateTime`, which always hands back timezone-aware UTC
values (SQLite keeps no zone; PostgreSQL ``timestamptz`` does), so what is written compares
equal to what is read on both engines.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    Boolean,
    DateTime,
    Dialect,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

# One convention for every constraint name (Alembic "naming conventions" recipe): generated
# names are deterministic, so a later revision can refer to them on both engines.
NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base shared by every domain's tables (one metadata, one naming convention)."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp column that accepts only aware datetimes and returns them in UTC.

    Raises ``ValueError`` when given a naive datetime (a programming error: a time without a
    zone is ambiguous).
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} given; expected a timezone-aware value")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:  # SQLite stores no zone; we only ever write UTC
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class TenantRow(Base):
    """A tenant: the isolation boundary for every resource and every token."""

    __tablename__ = "tenants"

    tenant_id: Mapped[str] = mapped_column(String(63), primary_key=True)
    display_name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ClientRow(Base):
    """An API client (principal): credentials, tenant, role and the scopes it may request."""

    __tablename__ = "clients"

    client_id: Mapped[str] = mapped_column(String(80), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(
        ForeignKey("tenants.tenant_id", ondelete="RESTRICT"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(40))
    # Space-separated, sorted scope names: a subset of the role's scopes.
    scopes: Mapped[str] = mapped_column(Text)
    # "scrypt$n$r$p$salt_b64$hash_b64": never the secret itself.
    secret_hash: Mapped[str] = mapped_column(String(300))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AuditChainRow(Base):
    """The head of one tenant's audit hash chain: last sequence number and entry hash.

    Appending updates this row first, which serialises concurrent appenders of one tenant on
    both engines (row lock on PostgreSQL, the write lock on SQLite).
    """

    __tablename__ = "audit_chains"

    tenant_id: Mapped[str] = mapped_column(String(63), primary_key=True)
    last_seq: Mapped[int] = mapped_column(Integer)
    last_hash: Mapped[str] = mapped_column(String(64))


class AuditEntryRow(Base):
    """One audit entry. Rows are only ever inserted (database triggers refuse edits)."""

    __tablename__ = "audit_log"
    __table_args__ = (UniqueConstraint("tenant_id", "seq"),)

    entry_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(63), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(String(120))
    action: Mapped[str] = mapped_column(String(120))
    target: Mapped[str] = mapped_column(String(300))
    # Canonical JSON text (sorted keys, compact): hashed exactly as stored.
    details: Mapped[str] = mapped_column(Text)
    request_id: Mapped[str | None] = mapped_column(String(80), nullable=True)
    prev_hash: Mapped[str] = mapped_column(String(64))
    entry_hash: Mapped[str] = mapped_column(String(64))
    # Id of the key whose HMAC-SHA256 ``entry_hash`` is; None: a plain SHA-256 (unkeyed).
    key_id: Mapped[str | None] = mapped_column(String(16), nullable=True)
