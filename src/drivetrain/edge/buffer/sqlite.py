"""``SqliteBuffer``: the vehicle's store-and-forward buffer in one SQLite file.

The guarantees (durable on return, bounded with eviction by priority then age, ordered) are in
``base.py``. The file layout, ``PRAGMA user_version``:

* **2** — ``messages``, ``meta`` (sequence numbers, eviction counters) and ``agent_state``
  (one row per typed state record, ``edge.state``);
* **1** — the same, with the agent state as free key/value strings in ``state``. Opening a
  version 1 file migrates it to version 2 in one transaction (``records_from_legacy``), so a
  vehicle updated in the field keeps its campaigns, its applied desired-state version and its
  replay memory.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Final, Literal

from drivetrain.core.errors import StorageError
from drivetrain.core.wire import MessageKind
from drivetrain.edge.buffer.base import (
    MESSAGE_COLUMNS,
    AppendResult,
    BufferedMessage,
    BufferStats,
    Eviction,
    KindSummary,
    OutgoingMessage,
    check_message,
    message_from_row,
    select_evictions,
)
from drivetrain.edge.state import (
    AgentState,
    StateRecord,
    encode_records,
    records_from_legacy,
)

SCHEMA_VERSION: Final = 2
Synchronous = Literal["FULL", "NORMAL"]

_CREATE_MESSAGES: Final = (
    """CREATE TABLE messages(
        position INTEGER PRIMARY KEY AUTOINCREMENT,
        message_id TEXT NOT NULL UNIQUE,
        kind INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        topic TEXT NOT NULL,
        priority INTEGER NOT NULL,
        created_ns INTEGER NOT NULL,
        size INTEGER NOT NULL,
        payload BLOB NOT NULL
    )""",
    "CREATE INDEX messages_eviction ON messages(priority, position)",
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL)",
)
_CREATE_AGENT_STATE: Final = "CREATE TABLE agent_state(record TEXT PRIMARY KEY, body TEXT NOT NULL)"
_PUT_STATE: Final = "INSERT OR REPLACE INTO agent_state(record, body) VALUES (?, ?)"


def upgrade_schema(
    db: sqlite3.Connection,
    version: int,
    upgrades: Mapping[int, Callable[[sqlite3.Connection], None]],
    *,
    what: str,
    reader: str,
) -> None:
    """Bring ``db`` (its ``PRAGMA user_version``; 0 for a new file) to ``version`` in one
    transaction: ``upgrades[v]`` takes a file of version ``v`` straight to ``version``.

    The version is read again under the write lock, so two processes opening one new file do
    not both create it.

    Raises:
        StorageError: a version with no upgrade (``what`` and ``reader`` name the file and the
            program in the message).
        sqlite3.Error: the database failed (nothing changed).
    """
    if db.execute("PRAGMA user_version").fetchone()[0] == version:
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        found = db.execute("PRAGMA user_version").fetchone()[0]
        if found != version:
            upgrade = upgrades.get(found)
            if upgrade is None:
                known = ", ".join(str(v) for v in sorted(upgrades) if v)
                raise StorageError(
                    f"{what} of schema version {found}; {reader} reads {version}"
                    + (f" (and migrates {known})" if known else "")
                )
            upgrade(db)
            db.execute(f"PRAGMA user_version = {int(version)}")
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


class SqliteBuffer:
    """The on-disk buffer (see the module docstring and ``base.py``).

    Args:
        path: the SQLite file (created with its directory when missing).
        max_bytes: bound on the payload bytes held (>= 1).
        synchronous: ``FULL`` (default; durable against power loss) or ``NORMAL``.

    Raises:
        StorageError: the file cannot be opened or is a buffer of a version this agent does
            not read.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        max_bytes: int = 256 * 1024 * 1024,
        synchronous: Synchronous = "FULL",
    ) -> None:
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be >= 1, got {max_bytes}")
        if synchronous not in ("FULL", "NORMAL"):
            raise ValueError(f"synchronous must be 'FULL' or 'NORMAL', got {synchronous!r}")
        self.path = Path(path)
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL").fetchone()
            self._db.execute(f"PRAGMA synchronous={synchronous}")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._migrate()
            self._bytes, self._count = self._db.execute(
                "SELECT COALESCE(SUM(size), 0), COUNT(*) FROM messages"
            ).fetchone()
            self._seq = {
                int(k.split(":", 1)[1]): int(v)
                for k, v in self._db.execute("SELECT key, value FROM meta WHERE key LIKE 'seq:%'")
            }
        except (sqlite3.Error, OSError) as e:
            raise StorageError(f"cannot open the store-and-forward buffer {self.path}: {e}") from e

    def _migrate(self) -> None:
        def create(db: sqlite3.Connection) -> None:
            for statement in (*_CREATE_MESSAGES, _CREATE_AGENT_STATE):
                db.execute(statement)

        def from_version_1(db: sqlite3.Connection) -> None:
            legacy = dict(db.execute("SELECT key, value FROM state").fetchall())
            db.execute(_CREATE_AGENT_STATE)
            db.executemany(_PUT_STATE, encode_records(records_from_legacy(legacy)))
            db.execute("DROP TABLE state")

        upgrade_schema(
            self._db,
            SCHEMA_VERSION,
            {0: create, 1: from_version_1},
            what=f"{self.path} is a buffer",
            reader="this agent",
        )

    # --- writing -------------------------------------------------------------------------------

    def next_seq(self, kind: MessageKind) -> int:
        """The sequence number for the next message of ``kind`` (one more than the last stored)."""
        with self._lock:
            return self._seq.get(int(kind), 0)

    def append(
        self, message: OutgoingMessage, *, state: Sequence[StateRecord] = ()
    ) -> AppendResult:
        """Store ``message`` and the ``state`` records; on return they are on disk.

        Raises:
            StorageError: the database failed (disk full, I/O error) or the message id is
                already stored — nothing was stored.
        """
        check_message(message)
        state_rows = encode_records(state)
        size = len(message.payload)
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    cursor = self._db.execute(
                        "INSERT INTO messages(message_id, kind, seq, topic, priority, created_ns,"
                        " size, payload)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            message.message_id,
                            int(message.kind),
                            message.seq,
                            message.topic,
                            message.priority,
                            message.created_ns,
                            size,
                            message.payload,
                        ),
                    )
                    position = int(cursor.lastrowid or 0)
                    seq_key = int(message.kind)
                    next_seq = max(self._seq.get(seq_key, 0), message.seq + 1)
                    self._db.execute(
                        "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
                        (f"seq:{seq_key}", str(next_seq)),
                    )
                    if state_rows:
                        self._db.executemany(_PUT_STATE, state_rows)
                    evicted, freed = self._evict(self._bytes + size - self.max_bytes)
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as e:
                raise StorageError(
                    f"buffer {self.path}: cannot store message {message.message_id}: {e}"
                ) from e
            self._seq[seq_key] = next_seq
            self._bytes += size - freed
            self._count += 1 - len(evicted)
        stored = all(e.message_id != message.message_id for e in evicted)
        return AppendResult(position if stored else None, tuple(evicted))

    def _evict(self, excess: int) -> tuple[list[Eviction], int]:
        if excess <= 0:
            return [], 0
        rows = self._db.execute(
            "SELECT position, message_id, kind, priority, size FROM messages"
            " ORDER BY priority, position"
        )
        victims, freed = select_evictions(rows, excess)
        rows.close()
        self._db.executemany("DELETE FROM messages WHERE position = ?", [(p,) for p, _ in victims])
        for key, amount in (("evicted_messages", len(victims)), ("evicted_bytes", freed)):
            self._db.execute(
                "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET "
                "value = CAST(CAST(value AS INTEGER) + ? AS TEXT)",
                (key, str(amount), amount),
            )
        return [v for _, v in victims], freed

    def remove(self, positions: Iterable[int]) -> int:
        """Delete messages the transport confirmed; unknown positions are ignored.

        Raises:
            StorageError: the database failed.
        """
        keys = [(int(p),) for p in positions]
        if not keys:
            return 0
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    sizes = [
                        row[0]
                        for key in keys
                        for row in self._db.execute(
                            "DELETE FROM messages WHERE position = ? RETURNING size", key
                        ).fetchall()
                    ]
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as e:
                raise StorageError(f"buffer {self.path}: cannot remove sent messages: {e}") from e
            self._bytes -= sum(sizes)
            self._count -= len(sizes)
        return len(sizes)

    def save_state(self, records: Sequence[StateRecord]) -> None:
        """Store agent state records (durable on return).

        Raises:
            StorageError: the database failed.
        """
        rows = encode_records(records)
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany(_PUT_STATE, rows)
                self._db.execute("COMMIT")
            except sqlite3.Error as e:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise StorageError(f"buffer {self.path}: cannot store agent state: {e}") from e

    # --- reading -------------------------------------------------------------------------------

    def pending(self, after_position: int = 0, limit: int = 100) -> list[BufferedMessage]:
        """Up to ``limit`` messages after ``after_position``, in position order."""
        with self._lock:
            try:
                rows = self._db.execute(
                    f"SELECT {MESSAGE_COLUMNS}"
                    " FROM messages WHERE position > ? ORDER BY position LIMIT ?",
                    (after_position, limit),
                ).fetchall()
            except sqlite3.Error as e:
                raise StorageError(f"buffer {self.path}: cannot read messages: {e}") from e
        return [message_from_row(row) for row in rows]

    def by_kind(self) -> list[KindSummary]:
        """What is waiting, per message kind (for `drivetrain edge buffer`)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT kind, COUNT(*), SUM(size), MIN(created_ns), MAX(created_ns)"
                " FROM messages GROUP BY kind ORDER BY kind"
            ).fetchall()
        return [KindSummary(MessageKind(k), n, b, lo, hi) for k, n, b, lo, hi in rows]

    def load_state(self) -> AgentState:
        """The agent state stored in this file.

        Raises:
            StorageError: the database failed.
        """
        with self._lock:
            try:
                rows = self._db.execute("SELECT record, body FROM agent_state").fetchall()
            except sqlite3.Error as e:
                raise StorageError(f"buffer {self.path}: cannot read agent state: {e}") from e
        return AgentState.from_stored(rows)

    def stats(self) -> BufferStats:
        with self._lock:
            meta = dict(
                self._db.execute(
                    "SELECT key, value FROM meta WHERE key IN ('evicted_messages', 'evicted_bytes')"
                ).fetchall()
            )
            return BufferStats(
                messages=self._count,
                bytes=self._bytes,
                max_bytes=self.max_bytes,
                evicted_messages=int(meta.get("evicted_messages", 0)),
                evicted_bytes=int(meta.get("evicted_bytes", 0)),
            )

    def close(self) -> None:
        """Close the database (idempotent)."""
        with self._lock:
            self._db.close()

    def __repr__(self) -> str:
        return f"SqliteBuffer({str(self.path)!r}, {self._count} messages, {self._bytes} bytes)"
