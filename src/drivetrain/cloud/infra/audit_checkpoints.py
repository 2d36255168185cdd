"""Audit checkpoints: each tenant chain's head (last sequence number and entry hash) at a
moment, signed and kept outside the database, so a later verification can tell that the
chains still hold every checkpointed entry unchanged.

The chain itself cannot show a writer who drops the newest entries and moves the head back,
or deletes a tenant's chain with its head: what remains is a valid, shorter chain. A checkpoint
taken before remembers the entry that is now gone (or differs), and :func:`check_checkpoint`
names it. Checkpoints are signed with an Ed25519 key (the cloud signing key: ``drivetrain db
audit-checkpoint``, or every ``audit_checkpoint_interval_s`` by :class:`Checkpointer` in
``drivetrain serve`` when ``audit_checkpoint_dir`` is set) and belong somewhere the
database's writers cannot change.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from drivetrain.cloud.infra.database import Database
from drivetrain.cloud.infra.models import AuditEntryRow
from drivetrain.core.crypto import SigningKey, VerifyKey
from drivetrain.core.errors import BadInputError, DrivetrainError, StorageError

log = logging.getLogger(__name__)

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


def take_checkpoint(session: Session, now: datetime | None = None) -> AuditCheckpoint:
    """Every chain's head now."""
    return AuditCheckpoint(now or datetime.now(UTC), tuple(chain_heads(session)))


def sign_checkpoint(checkpoint: AuditCheckpoint, key: SigningKey) -> dict[str, Any]:
    """The signed document to store: the checkpoint, the key id and an Ed25519 signature."""
    return {"checkpoint": checkpoint.to_dict(), "key_id": key.key_id,
            "signature": base64.b64encode(key.sign(checkpoint.payload())).decode("ascii")}


def open_signed_checkpoint(document: Any, verify_key: VerifyKey) -> AuditCheckpoint:
    """The checkpoint of a signed document, once its signature verifies with ``verify_key``.

    Raises:
        BadInputError: not a signed checkpoint document.
        SignatureError: the signature does not verify (altered, or another key's).
    """
    if not isinstance(document, dict):
        raise BadInputError("not a signed audit checkpoint: expected a JSON object")
    checkpoint = AuditCheckpoint.from_dict(document.get("checkpoint"))
    try:
        signature = base64.b64decode(str(document.get("signature", "")), validate=True)
    except (binascii.Error, ValueError) as e:
        raise BadInputError("signed audit checkpoint: 'signature' is not base64") from e
    verify_key.verify(signature, checkpoint.payload())
    return checkpoint


def write_checkpoint(database: Database, key: SigningKey, directory: Path) -> Path:
    """Take, sign and write a checkpoint into ``directory`` (created if missing) as
    ``audit-checkpoint-<UTC time>.json``; returns its path.

    Raises:
        StorageError: the database or the directory failed.
    """
    with database.session() as session:
        checkpoint = take_checkpoint(session)
    stamp = checkpoint.taken_at.strftime("%Y%m%dT%H%M%S%fZ")
    path = directory / f"audit-checkpoint-{stamp}.json"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(sign_checkpoint(checkpoint, key), indent=2) + "\n",
                        encoding="utf-8")
    except OSError as e:
        raise StorageError(f"cannot write the audit checkpoint {path}: {e.strerror}") from e
    return path


class Checkpointer:
    """Writes a signed checkpoint every ``interval_s`` seconds in a background thread (the
    first one at start)."""

    def __init__(self, database: Database, key: SigningKey, directory: Path,
                 interval_s: float) -> None:
        self._database, self._key, self._directory = database, key, directory
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="audit-checkpoints", daemon=True)
        self.written: list[Path] = []

    def start(self) -> Checkpointer:
        self._thread.start()
        return self

    def _run(self) -> None:
        while True:
            try:
                self.written.append(write_checkpoint(self._database, self._key, self._directory))
            except DrivetrainError as e:  # logged and tried again next time, never fatal
                log.error("audit checkpoint not written: %s", e)
            if self._stop.wait(self._interval_s):
                return

    def stop(self) -> None:
        """Stop after the checkpoint in progress; idempotent."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
