"""Audit checkpoints: each tenant chain's head (last sequence number and entry hash) at a
moment, signed and kept outside the database, so a later verification can tell that the
chains still hold every checkpointed entry unchanged.

The chain itself cannot show a writer who drops the newest entries and moves the head back,
or deletes a tenant's chain with its head: what remains is a valid, shorter chain. A checkpoint
taken before remembers the entry that is now gone (or differs), and :func:`check_checkpoint`
names it. Signing and storing the checkpoint is the caller's part (``drivetrain db
audit-checkpoint`` signs with the cloud key); this module builds the canonical bytes to sign
and checks a checkpoint against the database.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from drivetrain.cloud.infra.models import AuditEntryRow
from drivetrain.core.errors import BadInputError

CHECKPOINT_FORMAT: Final = "drivetrain-audit-checkpoint/1"


@dataclass(frozen=True, slots=True)
class ChainHead:
    """The last entry of one tenant's chain."""

    tenant: str
    seq: int
    entry_hash: str


@dataclass(frozen=True, slots=True)
class AuditCheckpoint:
    """Every chain's head at ``taken_at`` (aware, UTC)."""

    taken_at: datetime
    heads: tuple[ChainHead, ...]

    def payload(self) -> bytes:
        """The canonical bytes a signature covers."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":")).encode()

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "taken_at": self.taken_at.isoformat(),
            "heads": [{"tenant": h.tenant, "seq": h.seq, "entry_hash": h.entry_hash}
                      for h in self.heads],
        }

    @classmethod
    def from_dict(cls, data: Any) -> AuditCheckpoint:
        """Raises :class:`BadInputError` naming what is wrong."""
        if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
            raise BadInputError(f"not an audit checkpoint: expected format {CHECKPOINT_FORMAT!r}")
        try:
            taken_at = datetime.fromisoformat(str(data["taken_at"]))
            heads = tuple(ChainHead(str(h["tenant"]), int(h["seq"]), str(h["entry_hash"]))
                          for h in data["heads"])
        except (KeyError, TypeError, ValueError) as e:
            raise BadInputError(f"audit checkpoint field missing or malformed: {e}") from e
        return cls(taken_at, heads)


def chain_heads(session: Session) -> list[ChainHead]:
    """Each tenant's last audit entry, by tenant."""
    last = (select(AuditEntryRow.tenant_id, func.max(AuditEntryRow.seq).label("seq"))
            .group_by(AuditEntryRow.tenant_id).subquery())
    rows = session.execute(
        select(AuditEntryRow.tenant_id, AuditEntryRow.seq, AuditEntryRow.entry_hash)
        .join(last, (AuditEntryRow.tenant_id == last.c.tenant_id)
              & (AuditEntryRow.seq == last.c.seq))
        .order_by(AuditEntryRow.tenant_id)
    )
    return [ChainHead(tenant, seq, entry_hash) for tenant, seq, entry_hash in rows]


def check_checkpoint(session: Session, checkpoint: AuditCheckpoint) -> list[str]:
    """What no longer matches ``checkpoint``: one line per checkpointed entry that is gone or
    changed (an empty list when every one is in place)."""
    problems = []
    for head in checkpoint.heads:
        stored = session.scalar(select(AuditEntryRow.entry_hash).where(
            AuditEntryRow.tenant_id == head.tenant, AuditEntryRow.seq == head.seq))
        if stored is None:
            problems.append(
                f"tenant {head.tenant!r}: entry {head.seq}, present at the checkpoint of "
                f"{checkpoint.taken_at.isoformat()}, is gone (chain rolled back or dropped)")
        elif stored != head.entry_hash:
            problems.append(
                f"tenant {head.tenant!r}: entry {head.seq} differs from the checkpoint of "
                f"{checkpoint.taken_at.isoformat()} (the chain up to it was rewritten)")
    return problems
