"""The ingest domain's public read functions: dead letters, counters, vehicle events.

Visibility: every function takes ``tenant``. A tenant id limits the answer to that tenant's
vehicles; ``None`` means the platform operator's view — every tenant, plus what came from
senders the registry does not know (dead letters and counters without a tenant). Callers
(the API, the CLI) decide who gets ``None``: operator admins only.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import pyarrow as pa
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from drivetrain.cloud.ingest import records, regional
from drivetrain.cloud.ingest.assembly import read_refused_samples
from drivetrain.cloud.ingest.models import CounterRow, DeadLetterRow, VehicleEventRow
from drivetrain.cloud.ingest.reasons import OUTCOMES, Outcome, is_dead_letter_reason
from drivetrain.core.errors import BadInputError, NotFoundError

MAX_PAGE: Final = 1000
DeadLetterStatus = str  # "open" | "replayed"
_STATUSES: Final = ("open", "replayed")
SEVERITIES: Final = ("info", "low", "medium", "high", "critical")


@dataclass(frozen=True)
class DeadLetter:
    """A dead letter as listed (the payload itself via :func:`dead_letter_payload`).

    ``vin`` is what the message claimed ("" if nothing could be read); ``tenant`` is None for a
    sender the registry did not know.
    """

    dead_letter_id: int
    received_at: datetime
    vin: str
    tenant: str | None
    topic: str
    kind: str
    batch_id: str | None
    level: str
    reason: str
    detail: str
    sample_count: int
    payload_format: str
    payload_bytes: int
    #: The payload's size as received (more than payload_bytes when only its start was kept).
    payload_size: int
    status: DeadLetterStatus
    replayed_at: datetime | None
    replay_outcome: str | None
    replay_of: int | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (times as ISO 8601)."""
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["received_at"] = self.received_at.isoformat()
        out["replayed_at"] = self.replayed_at.isoformat() if self.replayed_at else None
        return out


def _dead_letters(session: Session, rows: Sequence[DeadLetterRow]) -> list[DeadLetter]:
    """``rows`` as listed, their contents read from the region stores (regional.py)."""
    contents = regional.dead_letter_contents(session, rows)
    return [_dead_letter(row, contents[row.dedup_key]) for row in rows]


def _dead_letter(row: DeadLetterRow, content: regional.DeadLetterContent) -> DeadLetter:
    return DeadLetter(
        dead_letter_id=row.dead_letter_id,
        received_at=row.received_at,
        vin=row.vin,
        tenant=row.tenant_id,
        topic=row.topic,
        kind=row.kind,
        batch_id=row.batch_id,
        level=row.level,
        reason=row.reason,
        detail=content.detail,
        sample_count=row.sample_count,
        payload_format=row.payload_format,
        payload_bytes=len(content.payload),
        payload_size=len(content.payload) if row.payload_size is None else row.payload_size,
        status=row.status,
        replayed_at=row.replayed_at,
        replay_outcome=content.replay_outcome,
        replay_of=row.replay_of,
    )


def _check_limit(limit: int) -> None:
    if not 1 <= limit <= MAX_PAGE:
        raise BadInputError(f"limit {limit} is out of range; expected 1 to {MAX_PAGE}")


def _visible(query: Select[Any], tenant: str | None) -> Select[Any]:
    return query if tenant is None else query.where(DeadLetterRow.tenant_id == tenant)


def dead_letter_query(
    *,
    tenant: str | None,
    vin: str | None = None,
    reason: str | None = None,
    status: str | None = "open",
    since: datetime | None = None,
    until: datetime | None = None,
) -> Select[Any]:
    """The filtered dead-letter query shared by listing and replay-by-filter.

    Raises:
        BadInputError: an unknown reason or status.
    """
    if reason is not None and not is_dead_letter_reason(reason):
        raise BadInputError(f"reason {reason!r} is not a dead-letter reason")
    if status is not None and status not in _STATUSES:
        raise BadInputError(f"status {status!r} is not known; expected one of {_STATUSES}")
    query = _visible(select(DeadLetterRow), tenant)
    if vin is not None:
        query = query.where(DeadLetterRow.vin == vin)
    if reason is not None:
        query = query.where(DeadLetterRow.reason == reason)
    if status is not None:
        query = query.where(DeadLetterRow.status == status)
    if since is not None:
        query = query.where(DeadLetterRow.received_at >= since)
    if until is not None:
        query = query.where(DeadLetterRow.received_at < until)
    return query.order_by(DeadLetterRow.dead_letter_id)


def list_dead_letters(
    session: Session,
    *,
    tenant: str | None,
    vin: str | None = None,
    reason: str | None = None,
    status: str | None = "open",
    since: datetime | None = None,
    until: datetime | None = None,
    after_id: int = 0,
    limit: int = 100,
) -> list[DeadLetter]:
    """Dead letters oldest first, filtered, paged by id (pass the last id as ``after_id``).

    ``status`` None lists every status. Raises ``BadInputError`` for an unknown reason or
    status, or a limit outside 1..1000.
    """
    _check_limit(limit)
    query = dead_letter_query(
        tenant=tenant, vin=vin, reason=reason, status=status, since=since, until=until
    )
    query = query.where(DeadLetterRow.dead_letter_id > after_id).limit(limit)
    return _dead_letters(session, list(session.scalars(query)))


def _row(session: Session, dead_letter_id: int, tenant: str | None) -> DeadLetterRow:
    row = session.get(DeadLetterRow, dead_letter_id)
    if row is None or (tenant is not None and row.tenant_id != tenant):
        raise NotFoundError(f"dead letter {dead_letter_id} does not exist")
    return row


def get_dead_letter(session: Session, dead_letter_id: int, *, tenant: str | None) -> DeadLetter:
    """One dead letter. Raises ``NotFoundError`` if absent or not visible to ``tenant``."""
    return _dead_letters(session, [_row(session, dead_letter_id, tenant)])[0]


def dead_letter_payload(session: Session, dead_letter_id: int, *, tenant: str | None) -> bytes:
    """The stored bytes: the raw envelope (message level) or the refused samples/events.

    Raises ``NotFoundError`` if absent or not visible to ``tenant``.
    """
    row = _row(session, dead_letter_id, tenant)
    return regional.dead_letter_contents(session, [row])[row.dedup_key].payload


def refused_items(
    session: Session, dead_letter_id: int, *, tenant: str | None, limit: int = 100
) -> list[dict[str, Any]]:
    """The refused samples (or events) of a sample-level dead letter, as JSON-ready rows.

    Samples: ``{"path", "ts", "value", "text"}`` (ts ISO 8601). Message-level dead letters
    hold a raw envelope, not items: the answer is empty.
    """
    _check_limit(limit)
    row = _row(session, dead_letter_id, tenant)
    if row.payload_format not in ("json", "arrow-ipc"):
        return []
    payload = regional.dead_letter_contents(session, [row])[row.dedup_key].payload
    if row.payload_format == "json":
        return list(json.loads(payload)["events"][:limit])
    table = read_refused_samples(payload).slice(0, limit)
    stamps = table.column("ts").cast(pa.int64()).to_pylist()
    items = []
    for item, ns in zip(table.drop_columns(["ts"]).to_pylist(), stamps, strict=True):
        items.append(
            {"path": item["path"], "ts": iso_ns(ns), "value": item["value"], "text": item["text"]}
        )
    return items


def iso_ns(ns: int | None) -> str | None:
    """ns since the epoch as ISO 8601 UTC with all nine fraction digits (None stays None)."""
    if ns is None:
        return None
    seconds, fraction = divmod(ns, 1_000_000_000)
    try:
        whole = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    except (OverflowError, OSError, ValueError):
        return f"{ns} ns"
    return f"{whole}.{fraction:09d}Z"


@dataclass(frozen=True)
class OutcomeCount:
    """Messages and samples of one vehicle (or all) that ended in one outcome."""

    outcome: Outcome
    messages: int
    samples: int


@dataclass(frozen=True)
class VehicleStats:
    """One vehicle's counters (``tenant`` "" for an unregistered sender)."""

    tenant: str
    vin: str
    outcomes: tuple[OutcomeCount, ...]
    last_at: datetime


@dataclass(frozen=True)
class IngestStats:
    """Totals per outcome, and per vehicle (the busiest first, up to the limit asked)."""

    totals: tuple[OutcomeCount, ...]
    vehicles: tuple[VehicleStats, ...]


def ingest_stats(
    session: Session, *, tenant: str | None, vin: str | None = None, vehicles_limit: int = 100
) -> IngestStats:
    """Counters of what ingestion did with each vehicle's data, per outcome.

    Sample-level outcomes count samples (and the batches that held any); message-level
    outcomes and ``duplicate`` count messages. Replays are not counted here.
    """
    _check_limit(vehicles_limit)
    base = select(CounterRow)
    if tenant is not None:
        base = base.where(CounterRow.tenant_id == tenant)
    if vin is not None:
        base = base.where(CounterRow.vin == vin)
    sub = base.subquery()
    totals_query = select(
        sub.c.outcome, func.sum(sub.c.messages), func.sum(sub.c.samples)
    ).group_by(sub.c.outcome)
    totals = {o: (int(m or 0), int(s or 0)) for o, m, s in session.execute(totals_query)}
    busiest = (
        select(sub.c.tenant_id, sub.c.vin, func.sum(sub.c.messages).label("m"))
        .group_by(sub.c.tenant_id, sub.c.vin)
        .order_by(func.sum(sub.c.messages).desc(), sub.c.vin)
        .limit(vehicles_limit)
    )
    keys = [(t, v) for t, v, _ in session.execute(busiest)]
    per_vehicle: dict[tuple[str, str], list[CounterRow]] = {k: [] for k in keys}
    vins = sorted({v for _, v in keys})
    for start in range(0, len(vins), 500):
        query = base.where(CounterRow.vin.in_(vins[start : start + 500]))
        for row in session.scalars(query):
            if (row.tenant_id, row.vin) in per_vehicle:
                per_vehicle[(row.tenant_id, row.vin)].append(row)
    return IngestStats(
        totals=tuple(OutcomeCount(o, *totals[o]) for o in OUTCOMES if o in totals),
        vehicles=tuple(
            VehicleStats(
                tenant=t,
                vin=v,
                outcomes=tuple(
                    OutcomeCount(r.outcome, r.messages, r.samples)  # type: ignore[arg-type]
                    for r in sorted(rows, key=lambda r: OUTCOMES.index(r.outcome))
                ),
                last_at=max(r.last_at for r in rows),
            )
            for (t, v), rows in per_vehicle.items()
            if rows
        ),
    )


def open_dead_letter_counts(session: Session) -> dict[str, int]:
    """Dead letters not yet replayed, by reason, across every tenant (for monitoring)."""
    query = (
        select(DeadLetterRow.reason, func.count())
        .where(DeadLetterRow.status == "open")
        .group_by(DeadLetterRow.reason)
    )
    return {reason: int(count) for reason, count in session.execute(query)}


def outcome_totals(session: Session) -> dict[str, tuple[int, int]]:
    """Messages and samples of every vehicle by outcome since counting began, across every
    tenant (for monitoring: one aggregate, no per-vehicle rows)."""
    query = select(
        CounterRow.outcome, func.sum(CounterRow.messages), func.sum(CounterRow.samples)
    ).group_by(CounterRow.outcome)
    return {o: (int(m or 0), int(n or 0)) for o, m, n in session.execute(query)}


def last_accepted_at(session: Session) -> datetime | None:
    """When ingestion last stored data of any vehicle (None: never) — a fleet that stops
    arriving shows as this falling behind the clock."""
    # max() keeps the column's type, so the value comes back as an aware UTC datetime
    value: datetime | None = session.scalar(
        select(func.max(CounterRow.last_at)).where(CounterRow.outcome == "accepted")
    )
    return value


@dataclass(frozen=True)
class VehicleEventRecord:
    """A security or diagnostic event a vehicle reported, as stored at ingest."""

    event_id: int
    tenant: str
    vin: str
    batch_id: str
    position: int
    type: str
    severity: str
    ts_ns: int
    data: dict[str, Any]
    received_at: datetime


def list_vehicle_events(
    session: Session,
    *,
    tenant: str | None,
    vin: str | None = None,
    since_ns: int | None = None,
    until_ns: int | None = None,
    min_severity: str | None = None,
    types: Sequence[str] | None = None,
    after_id: int = 0,
    limit: int = 100,
) -> list[VehicleEventRecord]:
    """Events vehicles reported (IDS alerts, DTCs…), oldest stored first, paged by id.

    The security-operations domain reads vehicle events through this function. Filters:
    one vehicle, a measurement-time range in ns (``since_ns`` inclusive, ``until_ns``
    exclusive), a minimum severity (``info`` < ``low`` < ``medium`` < ``high`` <
    ``critical``), event types.

    Raises:
        BadInputError: an unknown severity or a limit outside 1..1000.
    """
    _check_limit(limit)
    query = select(VehicleEventRow).where(VehicleEventRow.event_id > after_id)
    if tenant is not None:
        query = query.where(VehicleEventRow.tenant_id == tenant)
    if vin is not None:
        query = query.where(VehicleEventRow.vin == vin)
    if since_ns is not None:
        query = query.where(VehicleEventRow.ts_ns >= since_ns)
    if until_ns is not None:
        query = query.where(VehicleEventRow.ts_ns < until_ns)
    if min_severity is not None:
        if min_severity not in SEVERITIES:
            raise BadInputError(
                f"severity {min_severity!r} is not known; expected one of {SEVERITIES}"
            )
        query = query.where(
            VehicleEventRow.severity.in_(SEVERITIES[SEVERITIES.index(min_severity) :])
        )
    if types:
        query = query.where(VehicleEventRow.type.in_(list(types)))
    query = query.order_by(VehicleEventRow.event_id).limit(limit)
    rows = list(session.scalars(query))
    data = regional.event_data(session, rows)
    return [
        VehicleEventRecord(
            event_id=r.event_id,
            tenant=r.tenant_id,
            vin=r.vin,
            batch_id=r.batch_id,
            position=r.position,
            type=r.type,
            severity=r.severity,
            ts_ns=r.ts_ns,
            data=json.loads(data[(r.batch_id, r.position)]),
            received_at=r.received_at,
        )
        for r in rows
    ]


def prune_ingest_ledger(session: Session, *, older_than: timedelta, now: datetime) -> int:
    """Forget ingested batch ids received more than ``older_than`` before ``now``.

    The ledger only has to outlive the broker's redelivery window (and the lake's own batch
    index keeps samples exactly-once regardless). Returns how many were forgotten.
    """
    return records.forget_seen_before(session, now - older_than)


def refused_samples_table(payload: bytes) -> pa.Table:
    """A sample-level dead letter's payload as an Arrow table (path, ts, value, text)."""
    return read_refused_samples(payload)
