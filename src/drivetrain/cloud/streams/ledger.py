"""The ledger of backbone messages each consumer group has applied.

A consumer applies a message's effect and records its id in **one** transaction: the batch
id of each ingest batch the message announces (a message carries one batch or a chunk of
many, and a retried chunk may repeat batches under another message id), the message id
otherwise (the ``Nats-Msg-Id``, or a digest of the content). A message delivered again — its acknowledgement lost, its consumer killed after
the commit, a replay from a point in time — finds its id and changes nothing. Two members
handed the same message at once both try to insert the id; the loser's transaction fails
and the message goes back to the stream, where the redelivery finds the id.

Ids older than the streams keep messages (7 days) can never come back and are pruned.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from drivetrain.cloud.streams.models import StreamAppliedRow

#: Longest message id kept (JetStream allows longer ones; ours are 32 hex digits).
MAX_MESSAGE_ID = 128


def claim_new(
    session: Session, group: str, ids: Collection[str], now: datetime
) -> set[str]:
    """Record each of ``ids`` not yet applied by ``group`` in this transaction; returns those
    (the caller applies only their effects).

    Raises:
        ValueError: an empty or over-long id.
    """
    wanted = set(ids)
    for one in wanted:
        if not one or len(one) > MAX_MESSAGE_ID:
            raise ValueError(f"message id must be 1..{MAX_MESSAGE_ID} characters")
    if not wanted:
        return set()
    known = set(
        session.scalars(
            select(StreamAppliedRow.message_id).where(
                StreamAppliedRow.group_name == group, StreamAppliedRow.message_id.in_(wanted)
            )
        )
    )
    fresh = wanted - known
    session.add_all(
        StreamAppliedRow(group_name=group, message_id=one, applied_at=now) for one in fresh
    )
    session.flush()  # a concurrent claim of the same id fails here or at commit
    return fresh


def applied_count(session: Session, group: str) -> int:
    """How many messages ``group`` has applied (and still remembers)."""
    return int(
        session.scalar(
            select(func.count())
            .select_from(StreamAppliedRow)
            .where(StreamAppliedRow.group_name == group)
        )
        or 0
    )


def prune(session: Session, before: datetime) -> int:
    """Forget the ids applied before ``before``; returns how many."""
    result = session.execute(delete(StreamAppliedRow).where(StreamAppliedRow.applied_at < before))
    return int(getattr(result, "rowcount", 0) or 0)
