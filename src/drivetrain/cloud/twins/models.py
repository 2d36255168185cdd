"""The twins domain's tables: one row per twin, its reported values, desired items and ECUs.

Metadata (tenant, model, region, owner) is a copy of the fleet registry's record, taken through
``drivetrain.cloud.fleet``'s functions when a twin is first touched or synced — never by
reading the registry's table — so fleet queries filter on it inside this domain's tables.

Reported values are written in bulk on the ingestion hot path, so they are stored compactly:
timestamps as integer nanoseconds since the Unix epoch (UTC), and the value in typed columns —
``num`` (double) for booleans, integers and floats, ``text`` for strings — with ``kind`` saying
which (``b``, ``i``, ``f``, ``s``). Desired items store their value the same way so the query
language compares both alike; their timestamps are ordinary UTC datetimes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, cast

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from drivetrain.cloud.infra.models import Base, UTCDateTime
from drivetrain.cloud.infra.region_stores import register_regional_table, register_relocation

#: Longest VSS path stored (the standard's deepest paths are well below this).
PATH_LENGTH = 200
#: PostgreSQL ``fillfactor`` of the reported-value tables (``twin_reported``'s partitions,
#: ``twin_reported_personal``): room on each page for the next version of its rows, so that
#: rewriting a value is a heap-only update (no new primary-key entry; ``partitions.py``).
VALUE_FILLFACTOR = 80


class TwinRow(Base):
    """A vehicle's twin: copied metadata, the desired-state version and its delivery record."""

    __tablename__ = "twins"
    # Both indexes end in vin: a tenant's twins (of a region) come in VIN order, so a query
    # page (ORDER BY vin LIMIT n) stops after n matches, and the correlated value lookups of
    # the query language read vin from the index alone.
    __table_args__ = (
        Index("ix_twins_tenant_id_vin", "tenant_id", "vin"),
        Index("ix_twins_tenant_id_region_vin", "tenant_id", "region", "vin"),
    )

    vin: Mapped[str] = mapped_column(String(17), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(63))
    model: Mapped[str] = mapped_column(String(80))
    region: Mapped[str] = mapped_column(String(8))
    owner: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # Optimistic concurrency: the ETag of the desired document; +1 on every change.
    desired_version: Mapped[int] = mapped_column(Integer, default=0)
    desired_updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # True while the latest desired version has not been published to the vehicle.
    send_pending: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    sent_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    sent_message_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # Envelope sequence number of the last desired-state message (increasing per vehicle).
    sent_seq: Mapped[int] = mapped_column(Integer, default=0)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    acked_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    acked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class StoredValue:
    """The columns of a stored reported value after its VIN (each table declares ``vin``
    first, so the primary key is (vin, path))."""

    path: Mapped[str] = mapped_column(String(PATH_LENGTH), primary_key=True)
    kind: Mapped[str] = mapped_column(String(1))
    num: Mapped[float | None] = mapped_column(Float, nullable=True)
    text: Mapped[str | None] = mapped_column(Text, nullable=True)
    # When the vehicle measured the value / when the cloud stored it: ns since the epoch, UTC.
    ts_ns: Mapped[int] = mapped_column(BigInteger)
    updated_ns: Mapped[int] = mapped_column(BigInteger)


class ReportedRow(StoredValue, Base):
    """The latest reported value of one VSS path of one vehicle (newer measurement wins)."""

    __tablename__ = "twin_reported"
    # No index beyond the primary key on PostgreSQL: the query language looks values up by
    # (vin, path), and every further index would be rewritten by each reported update
    # (migration 0002). SQLite: the rows live in the primary-key b-tree, so a lookup of the
    # query language or an upsert touches one b-tree, not an index and then the table; that
    # key is (path, vin) there (migration 0007: a fleet query's lookups of one path for
    # twin after twin read neighbouring pages), with an index on vin for a twin's own rows,
    # which a reported update never rewrites. The mapper's key stays (vin, path).
    __table_args__ = (
        Index("ix_twin_reported_vin", "vin").ddl_if(dialect="sqlite"),
        {"sqlite_with_rowid": False},
    )

    vin: Mapped[str] = mapped_column(
        String(17), ForeignKey("twins.vin", ondelete="CASCADE"), primary_key=True
    )


class PersonalReportedRow(StoredValue, Base):
    """The latest reported value of a personal path (location, driving behaviour, cabin).

    Kept in the vehicle's region store (``drivetrain.cloud.infra.region_stores``), never in
    the state database of another region: hence no foreign key to ``twins`` (a dedicated
    store has no ``twins`` table); an erasure deletes these rows by VIN in every store.
    """

    __tablename__ = "twin_reported_personal"
    __table_args__ = (
        {"sqlite_with_rowid": False, "postgresql_with": {"fillfactor": VALUE_FILLFACTOR}},
    )

    vin: Mapped[str] = mapped_column(String(17), primary_key=True)


class DesiredRow(Base):
    """One desired value of a twin and how its reconciliation stands."""

    __tablename__ = "twin_desired"
    __table_args__ = (
        Index("ix_twin_desired_path_num", "path", "num"),
        Index("ix_twin_desired_status", "status"),
        {"sqlite_with_rowid": False},
    )

    vin: Mapped[str] = mapped_column(
        String(17), ForeignKey("twins.vin", ondelete="CASCADE"), primary_key=True
    )
    path: Mapped[str] = mapped_column(String(PATH_LENGTH), primary_key=True)
    kind: Mapped[str] = mapped_column(String(1))
    num: Mapped[float | None] = mapped_column(Float, nullable=True)
    text: Mapped[str | None] = mapped_column(Text, nullable=True)
    # The desired version whose write set this value.
    set_version: Mapped[int] = mapped_column(Integer)
    set_at: Mapped[datetime] = mapped_column(UTCDateTime())
    set_by: Mapped[str] = mapped_column(String(120))
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # "pending" | "converged" | "failed"; status_at is when it became converged or failed.
    status: Mapped[str] = mapped_column(String(16))
    status_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)


class PersonalDesiredRow(Base):
    """The value of a desired item on a personal path (e.g. a cabin temperature set from an
    app), kept in the vehicle's region store. Its item (version, status, expiry) stays in
    ``twin_desired`` with ``num`` and ``text`` empty: the reconciler needs the item, not the
    value, except to publish it and to converge it (``desired_personal``)."""

    __tablename__ = "twin_desired_personal"
    __table_args__ = ({"sqlite_with_rowid": False},)

    vin: Mapped[str] = mapped_column(String(17), primary_key=True)
    path: Mapped[str] = mapped_column(String(PATH_LENGTH), primary_key=True)
    kind: Mapped[str] = mapped_column(String(1))
    num: Mapped[float | None] = mapped_column(Float, nullable=True)
    text: Mapped[str | None] = mapped_column(Text, nullable=True)


class DesiredReasonRow(Base):
    """Why the vehicle rejected a desired item, in its own words (which may quote a personal
    value), kept in the vehicle's region store. The item in ``twin_desired`` says only
    ``REJECTED_IN_REGION`` (``desired_personal``)."""

    __tablename__ = "twin_desired_reasons"
    __table_args__ = ({"sqlite_with_rowid": False},)

    vin: Mapped[str] = mapped_column(String(17), primary_key=True)
    path: Mapped[str] = mapped_column(String(PATH_LENGTH), primary_key=True)
    reason: Mapped[str] = mapped_column(Text)


class EcuRow(Base):
    """One ECU of a twin: hardware id and installed software version."""

    __tablename__ = "twin_ecus"
    __table_args__ = (
        # PostgreSQL: the VIN rides along, so a software predicate reads the index alone.
        Index("ix_twin_ecus_ecu_software_key", "ecu", "software_key", postgresql_include=["vin"]),
        # SQLite keys the rows (ecu, vin) (migration 0007, as twin_reported's (path, vin)).
        Index("ix_twin_ecus_vin", "vin").ddl_if(dialect="sqlite"),
        {"sqlite_with_rowid": False},
    )

    vin: Mapped[str] = mapped_column(
        String(17), ForeignKey("twins.vin", ondelete="CASCADE"), primary_key=True
    )
    ecu: Mapped[str] = mapped_column(String(64), primary_key=True)
    hardware_id: Mapped[str | None] = mapped_column(String(120), nullable=True)
    software_version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # software_version normalised so that string order is version order (see values.py).
    software_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # "api" (set by an operator) or "reported" (by the vehicle or an update record).
    source: Mapped[str] = mapped_column(String(16))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


# --- domain types (what the service returns) ---------------------------------------------------
ItemStatus = Literal["pending", "converged", "failed"]
ITEM_STATUSES: tuple[ItemStatus, ...] = ("pending", "converged", "failed")
Scalar = bool | int | float | str


@dataclass(frozen=True, slots=True)
class ReportedValue:
    """The latest value a vehicle reported for one path: when it was measured and stored."""

    value: Scalar | None
    ts: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class DesiredItem:
    """One desired value and its reconciliation: pending, converged or failed (with reason)."""

    path: str
    value: Scalar
    set_version: int
    set_at: datetime
    set_by: str
    expires_at: datetime | None
    status: ItemStatus
    status_at: datetime | None = None
    reason: str | None = None

    @property
    def time_to_converge_s(self) -> float | None:
        """Seconds from being set to being seen converged; None unless converged."""
        if self.status != "converged" or self.status_at is None:
            return None
        return max(0.0, (self.status_at - self.set_at).total_seconds())


@dataclass(frozen=True, slots=True)
class Ecu:
    """An ECU of a vehicle: hardware id and installed software version."""

    name: str
    hardware_id: str | None
    software_version: str | None
    source: str
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Twin:
    """A vehicle's twin: metadata, ECUs, reported state, desired items and delivery record.

    ``items`` are as stored; use ``reconcile.effective_items`` for their state at a given time
    (a pending item past its expiry reads as failed before the sweep records it).
    """

    vin: str
    tenant: str
    model: str
    region: str
    owner: str | None
    version: int
    desired_updated_at: datetime | None
    reported: Mapping[str, ReportedValue]
    items: tuple[DesiredItem, ...]
    ecus: tuple[Ecu, ...]
    sent_version: int | None
    sent_at: datetime | None
    acked_version: int | None
    acked_at: datetime | None

    @property
    def desired(self) -> dict[str, Scalar]:
        """The desired document: path → value (every item, whatever its status)."""
        return {item.path: item.value for item in self.items}

    @property
    def etag(self) -> str:
        """The HTTP entity tag of the desired document (its version, quoted)."""
        return f'"{self.version}"'


@dataclass(frozen=True, slots=True)
class TwinSummary:
    """One row of a fleet query: metadata, desired version and item counts by status."""

    vin: str
    model: str
    region: str
    owner: str | None
    version: int
    pending: int
    converged: int
    failed: int


@dataclass(frozen=True, slots=True)
class TwinPage:
    """A page of query results, the total number matched, and the cursor of the next page."""

    twins: tuple[TwinSummary, ...]
    total: int
    next_cursor: str | None


# Core-level handles on the tables, for the bulk statements of the hot paths.
TWINS = cast(Table, TwinRow.__table__)
REPORTED = cast(Table, ReportedRow.__table__)
PERSONAL_REPORTED = register_regional_table(cast(Table, PersonalReportedRow.__table__))
register_relocation("drivetrain.cloud.twins.personal:relocate_personal")
PERSONAL_DESIRED = register_regional_table(cast(Table, PersonalDesiredRow.__table__))
DESIRED_REASONS = register_regional_table(
    cast(Table, DesiredReasonRow.__table__)
)
register_relocation("drivetrain.cloud.twins.desired_personal:relocate_personal_desired")
DESIRED = cast(Table, DesiredRow.__table__)
ECUS = cast(Table, EcuRow.__table__)
