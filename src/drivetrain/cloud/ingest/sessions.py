"""Vehicle sessions on the platform's side: their MAC keys and replay windows.

A SESSION_OPEN envelope, once its signature verifies, gives the session's MAC key
(:func:`drivetrain.core.wire.platform_session_key`). The key is stored in ``ingest_sessions``
sealed with AES-256-GCM under a key derived from the platform key, so that every worker
sharing the subscription can verify the session's envelopes, and cached per worker.

Replay (RFC 4303 §3.4.3): each worker keeps per session the highest sequence number accepted
and a bitmap of the :data:`REPLAY_WINDOW` below it. A MAC'd envelope whose ``seq`` is below the
window or already in it is ``replayed_seq`` — unless its batch id is in the ledger, which makes
a re-delivery a ``duplicate`` first. Workers sharing a subscription each see part of a session,
so a worker that loads a session starts from the highest sequence number stored, written once
per session and micro-batch; an exact replay another worker accepted is a duplicate batch id.
The window advances only once the micro-batch committed, so a re-delivery of a micro-batch that
failed is not mistaken for a replay.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import BigInteger, bindparam, case, delete, exists, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, aliased

from drivetrain.cloud.fleet import Vehicle
from drivetrain.cloud.ingest.models import SessionRow
from drivetrain.core.crypto import SigningKey
from drivetrain.core.errors import WireFormatError
from drivetrain.core.wire import REPLAY_WINDOW, SessionOpen, platform_session_key

#: What the key that seals stored session keys is derived for.
STORE_PURPOSE: Final = b"drivetrain/session-store/v1"
_NONCE_BYTES: Final = 12
_WINDOW_MASK: Final = (1 << REPLAY_WINDOW) - 1


@dataclass
class SessionEntry:
    """One session as a worker knows it. ``highest`` is -1 before any envelope; bit i of
    ``seen`` is sequence number ``highest - i``."""

    session_id: str
    vin: str
    vehicle_key_id: str
    mac_key: bytes = field(repr=False)
    highest: int = -1
    seen: int = 0

    def replayed(self, seq: int) -> str | None:
        """Why ``seq`` is a replay (None: it is not)."""
        if seq > self.highest:
            return None
        if self.highest - seq >= REPLAY_WINDOW:
            return (
                f"seq {seq} of session {self.session_id} is below its replay window "
                f"(highest accepted {self.highest}, window {REPLAY_WINDOW})"
            )
        if self.seen >> (self.highest - seq) & 1:
            return f"seq {seq} of session {self.session_id} was already accepted"
        return None

    def accept(self, seq: int) -> None:
        """Mark ``seq`` seen (after ``replayed`` said it is not)."""
        if seq > self.highest:
            shift = seq - self.highest
            self.seen = ((self.seen << shift) | 1) & _WINDOW_MASK if shift < REPLAY_WINDOW else 1
            self.highest = seq
        else:
            self.seen |= 1 << (self.highest - seq)


class SessionKeys:
    """The sessions a worker knows (see the module docstring); ``platform`` None: this worker
    has no platform key, so it opens no session and knows none (their envelopes are
    ``unknown_session``)."""

    def __init__(self, platform: SigningKey | None, *, max_entries: int = 200_000) -> None:
        self.platform = platform
        self._seal_key = AESGCM(platform.derive_secret(STORE_PURPOSE)) if platform else None
        self._cache: dict[str, SessionEntry] = {}
        self._max_entries = max_entries

    def book(self, session: Session) -> SessionBook:
        """The sessions as one micro-batch (its database transaction ``session``) sees them."""
        return SessionBook(self, session)

    def get(self, session: Session, session_id: str) -> SessionEntry | None:
        """The session ``session_id``: cached, or read from the database (None: unknown, or
        sealed under another platform key)."""
        entry = self._cache.get(session_id)
        if entry is not None or self._seal_key is None or self.platform is None:
            return entry
        row = session.get(SessionRow, session_id)
        if row is None or row.platform_key_id != self.platform.key_id:
            return None
        try:
            key = self._seal_key.decrypt(
                row.sealed_key[:_NONCE_BYTES], row.sealed_key[_NONCE_BYTES:], _aad(row.session_id, row.vin)
            )
        except InvalidTag:
            return None
        entry = SessionEntry(row.session_id, row.vin, row.vehicle_key_id, key, row.highest_seq)
        self.remember(entry)
        return entry

    def seal(self, entry: SessionEntry) -> bytes:
        """``entry``'s MAC key sealed for the database (nonce ‖ ciphertext ‖ tag)."""
        assert self._seal_key is not None  # only opened sessions are sealed
        nonce = os.urandom(_NONCE_BYTES)
        return nonce + self._seal_key.encrypt(nonce, entry.mac_key, _aad(entry.session_id, entry.vin))

    def commit(self, accepted: Mapping[str, Iterable[int]]) -> None:
        """Advance the windows once the micro-batch that accepted these committed."""
        for session_id, seqs in accepted.items():
            entry = self._cache.get(session_id)
            if entry is not None:
                for seq in sorted(seqs):
                    entry.accept(seq)

    def remember(self, entry: SessionEntry) -> None:
        if len(self._cache) >= self._max_entries:
            self._cache.clear()  # re-read from the database as needed
        self._cache[entry.session_id] = entry


def forget_superseded_sessions(session: Session, *, superseded_before: datetime) -> int:
    """Delete the sessions a later session of the same vehicle replaced before
    ``superseded_before``; returns how many.

    Pass the start of the samples' acceptance window (now minus the maximum sample age): a
    vehicle seals with its newest session only, so every envelope of a session that a later
    one replaced then holds samples older than the window, which ingestion refuses anyway
    (``timestamp_too_old``). Keeping the session any longer would only grow the table; the
    newest session of each vehicle is never deleted, however old.
    """
    newer = aliased(SessionRow)
    replaced = exists(
        select(newer.session_id).where(
            newer.vin == SessionRow.vin,
            newer.opened_at > SessionRow.opened_at,
            newer.opened_at < superseded_before,
        )
    )
    result = session.execute(delete(SessionRow).where(replaced))
    return int(getattr(result, "rowcount", 0) or 0)


def _aad(session_id: str, vin: str) -> bytes:
    return f"{session_id}:{vin}".encode()


class SessionBook:
    """What one micro-batch does with sessions: look them up, open new ones, and check and
    record sequence numbers, all in its database transaction."""

    def __init__(self, keys: SessionKeys, session: Session) -> None:
        self._keys = keys
        self._session = session
        self._opened: dict[str, SessionEntry] = {}
        self._accepted: dict[str, set[int]] = {}

    def get(self, session_id: str) -> SessionEntry | None:
        """The session ``session_id`` (opened in this micro-batch or before), or None."""
        return self._opened.get(session_id) or self._keys.get(self._session, session_id)

    def open(self, vehicle: Vehicle, opened: SessionOpen) -> SessionEntry:
        """A session a vehicle opened (its signature verified), known to this micro-batch
        at once and stored by :meth:`write`.

        Raises:
            WireFormatError: this worker has no platform key, the session names another
                one, its ephemeral key is unusable, or its id is already taken.
        """
        platform = self._keys.platform
        if platform is None:
            raise WireFormatError("this platform has no key to open sessions with")
        key = platform_session_key(platform, opened, vehicle.vin)
        known = self.get(opened.session_id)
        if known is not None:  # a re-delivery of its session_open is harmless
            if known.vin == vehicle.vin and hmac.compare_digest(known.mac_key, key):
                return known
            raise WireFormatError(f"session {opened.session_id} is already open")
        entry = SessionEntry(opened.session_id, vehicle.vin, vehicle.verify_key.key_id, key)
        self._opened[opened.session_id] = entry
        return entry

    def replayed(self, session_id: str, seq: int) -> str | None:
        """Why ``seq`` of an authentic envelope of ``session_id`` is a replay (None: it is
        not, and it counts as seen for the rest of this micro-batch)."""
        entry = self.get(session_id)
        if entry is None:  # verified a moment ago: cannot happen
            return f"session {session_id} is unknown"
        accepted = self._accepted.setdefault(session_id, set())
        if seq in accepted:
            return f"seq {seq} of session {session_id} was already accepted"
        why = entry.replayed(seq)
        if why is None:
            accepted.add(seq)
        return why

    def write(self, opened: Sequence[str], now: datetime) -> None:
        """Store the sessions ``opened`` (ids of those whose session_open was fresh) and the
        highest sequence number this micro-batch accepted per session."""
        platform_key_id = self._keys.platform.key_id if self._keys.platform else ""
        rows = [
            {"session_id": e.session_id, "vin": e.vin, "vehicle_key_id": e.vehicle_key_id,
             "platform_key_id": platform_key_id, "sealed_key": self._keys.seal(e),
             "opened_at": now, "highest_seq": -1}
            for e in (self._opened[i] for i in opened if i in self._opened)
        ]  # fmt: skip
        if rows:
            dialect = self._session.get_bind().dialect.name
            insert = pg_insert if dialect == "postgresql" else sqlite_insert
            self._session.execute(insert(SessionRow).values(rows).on_conflict_do_nothing())
        highest_of = [{"sid": s, "highest": max(q)} for s, q in self._accepted.items() if q]
        if highest_of:
            column = SessionRow.highest_seq
            highest = bindparam("highest", type_=BigInteger)
            self._session.execute(
                update(SessionRow.__table__)  # type: ignore[arg-type]  # a Table
                .where(SessionRow.__table__.c.session_id == bindparam("sid"))
                .values(highest_seq=case((column < highest, highest), else_=column)),
                highest_of,
            )  # fmt: skip

    def committed(self, opened: Sequence[str]) -> None:
        """After the commit: cache the sessions opened and advance the windows."""
        for session_id in opened:
            if session_id in self._opened:
                self._keys.remember(self._opened[session_id])
        self._keys.commit(self._accepted)

