"""Replaying ``unknown_session`` dead letters once their session is stored, with no operator.

Workers sharing a subscription race: one may refuse a session's first MAC'd envelopes as
``unknown_session`` before another has committed the session's ``session_open``. Each side
checks after its own commit, which closes the race:

- a worker that committed a micro-batch opening sessions replays the open ``unknown_session``
  dead letters of those sessions;
- a worker that committed ``unknown_session`` dead letters replays those whose session is now
  stored (committed by another worker meanwhile).

If the first side's scan ran before the dead letter committed, the second side's check ran
after the session committed. Both may replay the same dead letter: a replay closes it in the
transaction that stores it and the batch-id ledger refuses a second copy, so it is stored once.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from drivetrain.cloud.ingest import regional
from drivetrain.cloud.ingest.models import DeadLetterRow, SessionRow
from drivetrain.core.errors import WireFormatError
from drivetrain.core.wire import parse

_log = logging.getLogger("drivetrain.ingest")
_REASON = "unknown_session"


@dataclass(frozen=True)
class SessionFollowUp:
    """What a committed micro-batch asks to check: the sessions it opened (id → VIN) and the
    dedup keys of the ``unknown_session`` dead letters it wrote."""

    opened: dict[str, str]
    refused: tuple[str, ...]

    def __bool__(self) -> bool:
        return bool(self.opened or self.refused)


def replayable(session: Session, follow_up: SessionFollowUp) -> list[int]:
    """Ids of the open ``unknown_session`` dead letters whose session is now stored, among
    those of the sessions ``follow_up`` opened and those it refused; oldest first."""
    found: dict[int, DeadLetterRow] = {}
    if follow_up.opened:
        rows = _open_rows(session, DeadLetterRow.vin.in_(set(follow_up.opened.values())))
        for row, session_id in _session_ids(session, rows):
            if session_id in follow_up.opened:
                found[row.dead_letter_id] = row
    if follow_up.refused:
        refused = list(_session_ids(session, _open_rows(
            session, DeadLetterRow.dedup_key.in_(follow_up.refused))))  # fmt: skip
        stored = _stored(session, {s for _, s in refused})
        found.update((row.dead_letter_id, row) for row, s in refused if s in stored)
    return sorted(found)


def _open_rows(session: Session, where: ColumnElement[bool]) -> list[DeadLetterRow]:
    query = (
        select(DeadLetterRow)
        .where(DeadLetterRow.reason == _REASON, DeadLetterRow.status == "open")
        .where(where)
        .order_by(DeadLetterRow.dead_letter_id)
    )
    return list(session.scalars(query))


def _session_ids(
    session: Session, rows: Sequence[DeadLetterRow]
) -> Iterable[tuple[DeadLetterRow, str]]:
    """Each row with the session its envelope names (rows whose bytes do not parse: left)."""
    contents = regional.dead_letter_contents(session, rows)
    for row in rows:
        try:
            session_id = parse(contents[row.dedup_key].payload).session_id
        except (WireFormatError, KeyError):
            continue
        if session_id is not None:
            yield row, session_id


def _stored(session: Session, session_ids: Collection[str]) -> set[str]:
    if not session_ids:
        return set()
    query = select(SessionRow.session_id).where(SessionRow.session_id.in_(session_ids))
    return set(session.scalars(query))
