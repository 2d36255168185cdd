"""The ingest domain's writes to the state database: dead letters, counters, events, ledger.

Internal to ``drivetrain.cloud.ingest``: the pipeline calls these inside its one transaction per
micro-batch. Re-deliveries are harmless: dead letters are keyed by ``dedup_key``, events by
(batch id, position), ledger rows by batch id, and counters are only bumped for work that was
new.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, cast

from sqlalchemy import Table, delete, insert, literal_column, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from drivetrain.cloud.ingest import regional
from drivetrain.cloud.ingest.models import (
    DEAD_LETTERS,
    MAX_TOPIC,
    SEEN_BATCHES,
    CounterRow,
    DeadLetterRow,
    SeenBatchRow,
    VehicleEventRow,
)
from drivetrain.core.wire import VehicleEvent

_CHUNK = 500  # parameters per IN (...) query, well under every engine's limit
# The counters, written a micro-batch at a time as a Core table (plain executemany).
COUNTERS: Final = cast(Table, CounterRow.__table__)
#: Longest detail kept in a dead letter (the cause is in its first sentence).
MAX_DETAIL: Final = 4000
# A new dead letter is open and not yet replayed: those columns are written by the statement
# itself (replayed_at and replay_outcome left null), not bound and converted row by row.
_INSERT_OPEN: Final = insert(DEAD_LETTERS).values(
    status=literal_column("'open'"), replay_attempts=literal_column("0")
)
#: Refusals of messages whose signature could not be checked yet that are kept whole anyway:
#: an ``unknown_session`` envelope is replayed once its session is stored (its size is already
#: capped by ``ingest_max_message_bytes``, its count by the dead-letter rate limit).
KEPT_WHOLE: Final = frozenset({"unknown_session"})


@dataclass(frozen=True)
class DeadLetterDraft:
    """A dead letter about to be written (see ``DeadLetterRow`` for the fields)."""

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
    payload: bytes
    replay_of: int | None = None
    #: True when the payload came from a message whose signature verified.
    verified: bool = False
    #: The vehicle's region where the caller already has its registry entry (an
    #: authentic batch's vehicle); None: looked up when the dead letter is written.
    region: str | None = None

    @property
    def dedup_key(self) -> str:
        """Same refused data, same key: a message by its bytes, samples by (batch, reason)."""
        if self.level == "message":
            digest = hashlib.sha256(self.payload).hexdigest()
            return hashlib.sha256(f"message:{self.reason}:{digest}".encode()).hexdigest()
        return hashlib.sha256(f"samples:{self.reason}:{self.batch_id}".encode()).hexdigest()


def seen_batches(session: Session, batch_ids: Collection[str]) -> set[str]:
    """The batch ids among ``batch_ids`` already in the ledger."""
    wanted = list(batch_ids)
    found: set[str] = set()
    for start in range(0, len(wanted), _CHUNK):
        chunk = wanted[start : start + _CHUNK]
        found.update(
            session.scalars(select(SeenBatchRow.batch_id).where(SeenBatchRow.batch_id.in_(chunk)))
        )
    return found


def mark_seen(session: Session, batches: Iterable[tuple[str, str, str]], now: datetime) -> None:
    """Add ``(batch_id, vin, kind)`` rows to the ledger."""
    rows = [
        {"batch_id": b, "vin": vin, "kind": kind, "received_at": now} for b, vin, kind in batches
    ]
    if rows:
        session.connection().execute(insert(SEEN_BATCHES), rows)


def forget_seen_before(session: Session, before: datetime) -> int:
    """Delete ledger rows received before ``before``; returns how many."""
    result = session.execute(delete(SeenBatchRow).where(SeenBatchRow.received_at < before))
    return int(getattr(result, "rowcount", 0) or 0)


def storable(text: str, limit: int) -> str:
    """``text`` as a database can hold it: lone surrogates and NUL escaped, cut to ``limit``
    characters (untrusted senders choose topics and claimed VINs)."""
    if len(text) <= limit and text.isascii() and "\x00" not in text:
        return text  # the usual case: nothing to escape or cut
    safe = text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")
    return safe if len(safe) <= limit else safe[: limit - 3] + "..."


def add_dead_letters(
    session: Session, drafts: Sequence[DeadLetterDraft], *, unverified_max_bytes: int | None = None
) -> list[DeadLetterDraft]:
    """Insert the drafts whose dedup key is new; returns those inserted.

    The payload of a draft that is not ``verified`` is cut to ``unverified_max_bytes`` (None:
    kept whole), unless its reason is in :data:`KEPT_WHOLE`; ``payload_size`` keeps its size
    as received.
    """
    if not drafts:
        return []
    keyed = {d.dedup_key: d for d in drafts}
    existing: set[str] = set()
    keys = list(keyed)
    for start in range(0, len(keys), _CHUNK):
        chunk = keys[start : start + _CHUNK]
        existing.update(
            session.scalars(
                select(DeadLetterRow.dedup_key).where(DeadLetterRow.dedup_key.in_(chunk))
            )
        )
    fresh = [d for k, d in keyed.items() if k not in existing]
    if not fresh:
        return []
    # What a dead letter holds of a known vehicle goes to its region store (regional.py);
    # the row here lists it with those columns empty.
    known = {d.vin: d.region for d in fresh if d.tenant is not None and d.region is not None}
    regions = known | regional.vehicle_regions(
        session, {d.vin for d in fresh if d.tenant is not None and d.vin not in known}
    )
    rows: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    for key, d in keyed.items():
        if key in existing:
            continue
        detail = storable(d.detail, MAX_DETAIL)
        payload = (
            d.payload
            if d.verified or unverified_max_bytes is None or d.reason in KEPT_WHOLE
            else d.payload[:unverified_max_bytes]
        )
        region = regions.get(d.vin) if d.tenant is not None else None
        if region is not None:
            contents.append(
                {
                    "dedup_key": key,
                    "vin": d.vin,
                    "detail": detail,
                    "payload": payload,
                    "replay_outcome": None,
                }
            )
            detail, payload = "", b""
        rows.append(
            {
                "received_at": d.received_at,
                "vin": storable(d.vin, 64),
                "tenant_id": d.tenant,
                "topic": storable(d.topic, MAX_TOPIC),
                "kind": d.kind,
                "batch_id": d.batch_id,
                "level": d.level,
                "reason": d.reason,
                "detail": detail,
                "sample_count": d.sample_count,
                "payload_format": d.payload_format,
                "payload": payload,
                "payload_size": len(d.payload),
                "dedup_key": key,
                "replay_of": d.replay_of,
                "region": region,
            }
        )
    # One executemany of plain rows on the connection: an ORM object per dead letter, or
    # the ORM's bulk path, cost more than the database's own work at a few hundred dead
    # letters per micro-batch.
    session.connection().execute(_INSERT_OPEN, rows)
    regional.write_dead_letter_contents(session, contents, regions)
    return fresh


def bump_counters(
    session: Session, increments: Mapping[tuple[str, str, str], tuple[int, int]], now: datetime
) -> None:
    """Add ``(messages, samples)`` to the counter of each ``(tenant, vin, outcome)``.

    One upsert per counter (``INSERT … ON CONFLICT DO UPDATE``), atomic on both engines, so
    concurrent workers never lose an increment.
    """
    rows = [
        {"tenant_id": t, "vin": v, "outcome": o, "messages": m, "samples": s, "last_at": now}
        for (t, v, o), (m, s) in sorted(increments.items())
        if m or s
    ]
    if not rows:
        return
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    statement = insert(COUNTERS)
    statement = statement.on_conflict_do_update(
        index_elements=["tenant_id", "vin", "outcome"],
        set_={
            "messages": COUNTERS.c.messages + statement.excluded.messages,
            "samples": COUNTERS.c.samples + statement.excluded.samples,
            "last_at": statement.excluded.last_at,
        },
    )
    session.connection().execute(statement, rows)


def add_events(
    session: Session,
    *,
    tenant: str,
    vin: str,
    region: str | None = None,
    batch_id: str,
    events: Sequence[tuple[int, VehicleEvent]],
    now: datetime,
) -> None:
    """Store a batch's events, each with its position in the batch: the listed row here,
    its data in the store of the vehicle's ``region`` (regional.py; None: the registry's,
    and for a vehicle it does not know, in the row itself)."""
    if region is None:
        region = regional.vehicle_regions(session, [vin]).get(vin)
    data = [(p, json.dumps(dict(e.data), sort_keys=True, separators=(",", ":"))) for p, e in events]
    session.add_all(
        VehicleEventRow(
            tenant_id=tenant,
            vin=vin,
            batch_id=batch_id,
            position=position,
            type=event.type,
            severity=event.severity,
            ts_ns=event.ts_ns,
            data="" if region is not None else text,
            received_at=now,
            region=region,
        )
        for (position, event), (_, text) in zip(events, data, strict=True)
    )
    if region is not None:
        regional.write_event_data(session, region, vin, batch_id, data)


def events_json(events: Sequence[tuple[int, VehicleEvent]]) -> bytes:
    """Refused events as kept in a dead letter: ``{"events": [{position, ...event}]}``."""
    body: dict[str, Any] = {
        "events": [{"position": p, **e.to_dict()} for p, e in events],
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
