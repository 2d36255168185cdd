"""Replaying dead letters: run the pipeline again over what was refused.

Typical causes: a vehicle registered after it started sending (``unknown_vehicle``), a catalog
update that adds a signal (``unknown_path``) or widens a range, a consent granted later.

- A **message-level** dead letter holds the raw envelope: it goes through the whole pipeline
  again (signature included), judged against the receiver's clock as it was when it arrived.
- A **sample-level** dead letter holds samples (or events) of a batch that was authentic when
  it arrived: they are judged again and routed as a batch of their own, with a batch id derived
  from the dead letter and its attempt number, so a replay that crashes half-way and is run
  again never stores a sample twice.

Outcomes: ``replayed`` (the dead letter is closed; what is still refused becomes new dead
letters pointing at it with ``replay_of``), ``still_refused`` (nothing changed: it stays open
with the latest cause), ``duplicate`` (its batch was ingested meanwhile: closed). Replays do
not change the per-vehicle counters, which count what vehicles sent.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Literal

import numpy as np
import pyarrow as pa
from sqlalchemy.orm import Session

from drivetrain.cloud.fleet import Vehicle, get_vehicle
from drivetrain.cloud.ingest import regional
from drivetrain.cloud.ingest.assembly import read_refused_samples
from drivetrain.cloud.ingest.envelopes import RawMessage, TelemetryBody
from drivetrain.cloud.ingest.isolation import is_transient
from drivetrain.cloud.ingest.models import DeadLetterRow
from drivetrain.cloud.ingest.pipeline import IngestPipeline
from drivetrain.cloud.ingest.results import AuthenticBatch, IngestReport, MessageResult
from drivetrain.cloud.ingest.service import dead_letter_query
from drivetrain.core.errors import BadInputError, NotFoundError, WireFormatError
from drivetrain.core.wire import VehicleEvent

ReplayOutcome = Literal["replayed", "still_refused", "duplicate", "not_open"]
#: Most dead letters one replay call handles.
MAX_REPLAY: Final = 1000
_NAMESPACE: Final = uuid.UUID("6f1d2f4e-51a3-4c55-9a43-0b7c3f0e2a11")


@dataclass(frozen=True)
class ReplayResult:
    """What replaying one dead letter did."""

    dead_letter_id: int
    outcome: ReplayOutcome
    detail: str
    accepted: int = 0
    refused: int = 0
    not_consented: int = 0
    new_dead_letters: int = 0


@dataclass(frozen=True)
class _Target:
    dead_letter_id: int
    level: str
    payload_format: str
    payload: bytes
    topic: str
    vin: str
    kind: str
    batch_id: str | None
    reason: str
    received_ns: int
    attempts: int


def select_for_replay(
    session: Session,
    *,
    tenant: str | None,
    ids: Sequence[int] | None = None,
    vin: str | None = None,
    reason: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
) -> list[int]:
    """Ids of open dead letters visible to ``tenant``: the given ``ids`` (each must exist
    and be visible) or those matching the filters, oldest first.

    Raises:
        NotFoundError: an id that does not exist or is not visible to ``tenant``.
        BadInputError: a limit outside 1..1000, an unknown reason.
    """
    if not 1 <= limit <= MAX_REPLAY:
        raise BadInputError(f"limit {limit} is out of range; expected 1 to {MAX_REPLAY}")
    if ids is not None:
        if len(ids) > MAX_REPLAY:
            raise BadInputError(f"{len(ids)} ids given; expected at most {MAX_REPLAY}")
        for dead_letter_id in ids:
            row = session.get(DeadLetterRow, dead_letter_id)
            if row is None or (tenant is not None and row.tenant_id != tenant):
                raise NotFoundError(f"dead letter {dead_letter_id} does not exist")
        return list(dict.fromkeys(ids))
    query = dead_letter_query(
        tenant=tenant, vin=vin, reason=reason, status="open", since=since, until=until
    ).limit(limit)
    return [row.dead_letter_id for row in session.scalars(query)]


def replay_dead_letters(pipeline: IngestPipeline, ids: Sequence[int]) -> list[ReplayResult]:
    """Replay each dead letter in ``ids`` (one transaction each; see the module docstring).

    Check visibility first (:func:`select_for_replay`). Raises ``StorageError`` when the
    database or the lake fails (the dead letter being replayed stays as it was).
    """
    pipeline.vehicles.forget()  # a late registration must be seen now
    return [_replay_guarded(pipeline, dead_letter_id) for dead_letter_id in ids]


def _replay_guarded(pipeline: IngestPipeline, dead_letter_id: int) -> ReplayResult:
    """Replay one; a failure of the pipeline on it (a ``processing_error`` not fixed yet)
    leaves it open with the cause, instead of failing the whole replay. An unavailable
    database or lake still raises."""
    try:
        return _replay_one(pipeline, dead_letter_id)
    except Exception as e:  # judged just below: transient or not
        if is_transient(e) or isinstance(e, NotFoundError):
            raise
        target = _load(pipeline, dead_letter_id)
        if target is None:
            return ReplayResult(dead_letter_id, "not_open", "already replayed")
        decided = ReplayResult(
            dead_letter_id, "still_refused", f"processing_error: {type(e).__name__}: {e}"
        )
        with pipeline.database.session() as session:
            _mark(session, target, decided)
        return decided


def _load(pipeline: IngestPipeline, dead_letter_id: int) -> _Target | None:
    with pipeline.database.session() as session:
        row = session.get(DeadLetterRow, dead_letter_id)
        if row is None:
            raise NotFoundError(f"dead letter {dead_letter_id} does not exist")
        if row.status != "open":
            return None
        return _Target(
            dead_letter_id=row.dead_letter_id,
            level=row.level,
            payload_format=row.payload_format,
            payload=regional.dead_letter_contents(session, [row])[row.dedup_key].payload,
            topic=row.topic,
            vin=row.vin,
            kind=row.kind,
            batch_id=row.batch_id,
            reason=row.reason,
            received_ns=int(row.received_at.timestamp() * 1e9),
            attempts=row.replay_attempts,
        )


def _replay_one(pipeline: IngestPipeline, dead_letter_id: int) -> ReplayResult:
    target = _load(pipeline, dead_letter_id)
    if target is None:
        return ReplayResult(dead_letter_id, "not_open", "already replayed")
    outcome: list[ReplayResult] = []

    def settle(session: Session, report: IngestReport, pending: int) -> bool:
        result = report.results[0] if report.results else MessageResult("refused", target.vin, None)
        decided = _decide(target, result, pending)
        _mark(session, target, decided)
        outcome.append(decided)
        return decided.outcome == "replayed"

    if target.level == "message":
        pipeline.run(
            [RawMessage(target.topic, target.payload)],
            now_ns=target.received_ns,
            replay_of=target.dead_letter_id,
            on_routed=settle,
        )
    else:
        unit = _sample_unit(pipeline, target)
        if isinstance(unit, str):
            with pipeline.database.session() as session:
                decided = ReplayResult(dead_letter_id, "still_refused", unit)
                _mark(session, target, decided)
            return decided
        pipeline.run(
            [],
            now_ns=target.received_ns,
            replay_of=target.dead_letter_id,
            extra_batches=[unit],
            on_routed=settle,
        )
    return outcome[0]


def _decide(target: _Target, result: MessageResult, pending: int) -> ReplayResult:
    refused = sum(result.refused.values())
    if result.status == "refused":
        return ReplayResult(
            target.dead_letter_id, "still_refused", f"{result.reason}: {result.detail}"
        )
    if result.status == "duplicate":
        return ReplayResult(
            target.dead_letter_id, "duplicate", f"batch {result.batch_id} was ingested meanwhile"
        )
    unchanged = (
        target.level == "samples"
        and result.accepted == 0
        and result.not_consented == 0
        and set(result.refused) == {target.reason}
    )
    if unchanged:
        return ReplayResult(
            target.dead_letter_id,
            "still_refused",
            f"{target.reason}: all {refused} item(s) still refused",
            refused=refused,
        )
    detail = (
        f"accepted {result.accepted}, refused {refused}"
        f"{' ' + json.dumps(result.refused, sort_keys=True) if refused else ''}, "
        f"not consented {result.not_consented}"
    )
    return ReplayResult(
        target.dead_letter_id,
        "replayed",
        detail,
        result.accepted,
        refused,
        result.not_consented,
        pending,
    )


def _mark(session: Session, target: _Target, result: ReplayResult) -> None:
    row = session.get(DeadLetterRow, target.dead_letter_id)
    if row is None:  # pragma: no cover - deleted concurrently
        return
    now = datetime.now(UTC)
    row.replay_attempts = target.attempts + 1
    kept_detail: str | None = None
    if result.outcome in ("replayed", "duplicate"):
        row.status, row.replayed_at = "replayed", now
    elif target.level == "message":  # keep the latest exact cause
        row.reason, _, kept_detail = result.detail.partition(": ")
    # The outcome and detail quote refused values: kept with the content (regional.py).
    regional.record_replay(
        session,
        row,
        detail=kept_detail,
        replay_outcome=f"{now.isoformat()} {result.outcome}: {result.detail}",
    )


def _derived_batch_id(target: _Target) -> str:
    name = f"{target.batch_id}:{target.dead_letter_id}:{target.attempts}"
    return uuid.uuid5(_NAMESPACE, name).hex


def _sample_unit(pipeline: IngestPipeline, target: _Target) -> AuthenticBatch | str:
    """The refused items as a batch of their own, or why they cannot be replayed."""
    with pipeline.database.session() as session:
        try:
            vehicle: Vehicle = get_vehicle(session, target.vin)
        except (NotFoundError, BadInputError):
            return f"vehicle {target.vin} is no longer registered"
    batch_id = _derived_batch_id(target)
    if target.payload_format == "json":
        events = tuple(
            VehicleEvent.from_dict(e) for e in json.loads(target.payload).get("events", [])
        )
        return AuthenticBatch(0, vehicle, batch_id, "events", target.topic, events=events)
    try:
        table = read_refused_samples(target.payload)
    except (pa.ArrowInvalid, WireFormatError) as e:
        return f"stored samples cannot be read: {e}"
    return AuthenticBatch(
        0, vehicle, batch_id, "telemetry", target.topic, telemetry=_body(table, pipeline)
    )


def _body(table: pa.Table, pipeline: IngestPipeline) -> TelemetryBody:
    encoded = table.column("path").combine_chunks().dictionary_encode()
    lookup = pipeline.paths.ids_for(encoded.dictionary.to_pylist())
    value = table.column("value").combine_chunks()
    text = table.column("text").combine_chunks()
    return TelemetryBody(
        path_id=lookup[encoded.indices.to_numpy(zero_copy_only=False)].astype(np.int32),
        ts_ns=table.column("ts").combine_chunks().view(pa.int64()).to_numpy(zero_copy_only=False),
        value=value.to_numpy(zero_copy_only=False).astype(np.float64),
        value_valid=np.asarray(value.is_valid()),
        text=text,
        text_valid=np.asarray(text.is_valid()),
    )
