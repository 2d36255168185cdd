"""The ingest domain's tables: dead letters, per-vehicle counters, vehicle events, and the
ledger of batches already ingested."""

from __future__ import annotations

from datetime import datetime
from typing import cast

from sqlalchemy import (
    BigInteger,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from drivetrain.cloud.infra.models import Base, UTCDateTime
from drivetrain.cloud.infra.region_stores import register_regional_table, register_relocation
from drivetrain.cloud.ingest.envelopes import MAX_EVENT_TYPE

#: Longest topic kept in a dead letter (a longer one is cut; the payload is kept whole).
MAX_TOPIC = 255


class DeadLetterRow(Base):
    """Refused data, kept with its exact reason until it is replayed.

    ``level`` is ``message`` (the whole payload refused; ``payload`` holds its raw bytes, of a
    message whose signature did not verify only the first ``ingest_dead_letter_max_bytes``) or
    ``samples`` (some samples of an authentic batch refused; ``payload`` holds those samples
    as an Arrow IPC stream, or the refused events as JSON). ``vin`` is what the message
    claimed ("" when nothing could be read); ``tenant_id`` is set only once the vehicle is
    known. ``dedup_key`` makes a re-delivered payload land once.

    ``region`` set: the vehicle is known, and what the dead letter holds of it (``detail``,
    ``payload``, ``replay_outcome``) is in that region's store (:class:`DeadLetterContentRow`);
    here those columns are empty. Null: a sender the registry does not know (no region to
    keep it in), or a row written before contents were kept per region.
    """

    __tablename__ = "ingest_dead_letters"
    __table_args__ = (Index("ix_ingest_dead_letters_tenant_status", "tenant_id", "status"),)

    dead_letter_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    vin: Mapped[str] = mapped_column(String(64), index=True)
    tenant_id: Mapped[str | None] = mapped_column(
        ForeignKey("tenants.tenant_id", ondelete="RESTRICT"), nullable=True
    )
    topic: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(16))
    batch_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    level: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(32), index=True)
    detail: Mapped[str] = mapped_column(Text)
    sample_count: Mapped[int] = mapped_column(Integer)
    payload_format: Mapped[str] = mapped_column(String(16))
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    # The payload's size as received; larger than len(payload) when only its start was kept
    # (null in rows written before payloads were capped: then len(payload)).
    payload_size: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    dedup_key: Mapped[str] = mapped_column(String(64), unique=True)
    # "open" until replayed; then "replayed" with the outcome in replay_outcome.
    status: Mapped[str] = mapped_column(String(16))
    replayed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    replay_outcome: Mapped[str | None] = mapped_column(Text, nullable=True)
    replay_attempts: Mapped[int] = mapped_column(Integer, default=0)
    replay_of: Mapped[int | None] = mapped_column(Integer, nullable=True)
    region: Mapped[str | None] = mapped_column(String(8), nullable=True)


class DeadLetterContentRow(Base):
    """What a dead letter of a known vehicle holds of it (the raw payload: telemetry with its
    location; the detail and replay outcome, which quote refused values), kept in the
    vehicle's region store (``drivetrain.cloud.infra.region_stores``) under the dead
    letter's ``dedup_key``. No foreign key: a dedicated store has no other tables."""

    __tablename__ = "ingest_dead_letter_contents"

    dedup_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    vin: Mapped[str] = mapped_column(String(64), index=True)
    detail: Mapped[str] = mapped_column(Text)
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    replay_outcome: Mapped[str | None] = mapped_column(Text, nullable=True)


class CounterRow(Base):
    """How many messages and samples of one vehicle ended in one outcome.

    ``tenant_id`` is "" for senders the registry does not know (no foreign key: the counter
    must exist before, and regardless of, any registration).
    """

    __tablename__ = "ingest_counters"

    tenant_id: Mapped[str] = mapped_column(String(63), primary_key=True)
    vin: Mapped[str] = mapped_column(String(64), primary_key=True)
    outcome: Mapped[str] = mapped_column(String(32), primary_key=True)
    messages: Mapped[int] = mapped_column(BigInteger)
    samples: Mapped[int] = mapped_column(BigInteger)
    last_at: Mapped[datetime] = mapped_column(UTCDateTime())


class VehicleEventRow(Base):
    """A security or diagnostic event a vehicle reported (read by security operations).

    ``region`` set: the event's ``data`` is in that region's store (:class:`EventDataRow`)
    and empty here; null: a row written before event data was kept per region.
    """

    __tablename__ = "ingest_vehicle_events"
    __table_args__ = (
        Index("ix_ingest_vehicle_events_tenant_vin_ts", "tenant_id", "vin", "ts_ns"),
        UniqueConstraint("batch_id", "position"),
    )

    event_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.tenant_id", ondelete="RESTRICT"))
    vin: Mapped[str] = mapped_column(String(17))
    batch_id: Mapped[str] = mapped_column(String(32))
    position: Mapped[int] = mapped_column(Integer)
    type: Mapped[str] = mapped_column(String(MAX_EVENT_TYPE))
    severity: Mapped[str] = mapped_column(String(16), index=True)
    ts_ns: Mapped[int] = mapped_column(BigInteger)
    # Canonical JSON (sorted keys) of the event's data object.
    data: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    region: Mapped[str | None] = mapped_column(String(8), nullable=True)


class EventDataRow(Base):
    """A vehicle event's data object (canonical JSON), kept in the vehicle's region store:
    events may carry positions, trips or cabin readings."""

    __tablename__ = "ingest_vehicle_event_data"

    batch_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    vin: Mapped[str] = mapped_column(String(17), index=True)
    data: Mapped[str] = mapped_column(Text)


class SeenBatchRow(Base):
    """A batch (envelope message id) already ingested: a re-delivery of it is a duplicate."""

    __tablename__ = "ingest_seen_batches"

    batch_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    vin: Mapped[str] = mapped_column(String(17))
    kind: Mapped[str] = mapped_column(String(16))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class WorkerRow(Base):
    """An ingest worker's heartbeat: who consumes the shared subscription, and when it was
    last alive. A member that stopped beating still holds a broker session for
    ``session_expiry_s``, into which the broker keeps routing its share of the messages."""

    __tablename__ = "ingest_workers"

    client_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    group_name: Mapped[str] = mapped_column(String(64))
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    broker: Mapped[str] = mapped_column(String(255))
    session_expiry_s: Mapped[int] = mapped_column(Integer)
    heartbeat_s: Mapped[float] = mapped_column(Float)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    acknowledged: Mapped[int] = mapped_column(BigInteger)
    pending: Mapped[int] = mapped_column(Integer)
    failures: Mapped[int] = mapped_column(BigInteger)


#: The tables a micro-batch inserts many plain rows into, as Core tables: an insert of the
#: mapped class takes the ORM's bulk path, with its bookkeeping per row (~10 % of the insert).
DEAD_LETTERS = cast(Table, DeadLetterRow.__table__)
SEEN_BATCHES = cast(Table, SeenBatchRow.__table__)
DEAD_LETTER_CONTENTS = register_regional_table(cast(Table, DeadLetterContentRow.__table__))
EVENT_DATA = register_regional_table(cast(Table, EventDataRow.__table__))
register_relocation("drivetrain.cloud.ingest.regional:relocate_ingest")


class SessionRow(Base):
    """A vehicle session (:mod:`drivetrain.core.wire.session`): its MAC key, sealed under a
    key derived from the platform key (AES-256-GCM, the session id and VIN as associated
    data), so that every worker sharing a subscription verifies its envelopes; and the
    highest sequence number accepted, written once per session and micro-batch."""

    __tablename__ = "ingest_sessions"

    session_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    vin: Mapped[str] = mapped_column(String(17), index=True)
    vehicle_key_id: Mapped[str] = mapped_column(String(16))
    platform_key_id: Mapped[str] = mapped_column(String(16))
    sealed_key: Mapped[bytes] = mapped_column(LargeBinary)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    highest_seq: Mapped[int] = mapped_column(BigInteger)
