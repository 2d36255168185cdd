"""The store-and-forward buffer: sealed messages wait on disk until the cloud has them.

Everything the vehicle sends (telemetry batches, events, acknowledgements) is sealed — a signed
envelope whose message id is the batch id — and appended here *before* it is sent. The uplink
sends messages in append order and removes each one only after the transport confirmed it (the
broker's PUBACK for MQTT QoS 1). A message re-sent after a reconnect or a crash is the same
bytes with the same id, so the cloud drops the duplicate.

Guarantees of ``SqliteBuffer``:

* **Durable when ``append`` returns.** SQLite in WAL mode with ``synchronous=FULL``: the commit
  is fsynced before ``append`` returns, so a message survives a crash of the process (kill -9)
  and a power loss. (``synchronous="NORMAL"`` is offered for simulated fleets, where hundreds
  of agents share one disk and power loss is not a concern: it survives process crashes but
  may lose the last commits on power loss.)
* **Bounded by bytes, eviction by priority then age.** When the payloads exceed ``max_bytes``
  the lowest-priority messages go first, oldest first within a priority — possibly the one
  just appended, when it is the least important. Every eviction is returned to the caller and
  counted (``stats()``), never silent.
* **Ordered.** ``pending`` returns messages by position (append order); positions are never
  reused (``AUTOINCREMENT``), so a position read before a crash still means the same message.

The buffer also keeps small pieces of agent state (``get_state``/``append(..., state=...)``),
committed in the same transaction as a message when given together — e.g. a downlink message's
id as seen, with the acknowledgement that reports it.

``MemoryBuffer`` has the same behaviour without a disk (tests, simulated fleets).
"""

from __future__ import annotations

import itertools
import sqlite3
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal, Protocol

from drivetrain.core.errors import StorageError
from drivetrain.core.wire import MessageKind

SCHEMA_VERSION: Final = 1
Synchronous = Literal["FULL", "NORMAL"]


@dataclass(frozen=True)
class OutgoingMessage:
    """A sealed message to append: its envelope bytes and how to send and evict it."""

    message_id: str
    kind: MessageKind
    seq: int
    topic: str
    priority: int
    created_ns: int
    payload: bytes = field(repr=False)


@dataclass(frozen=True)
class BufferedMessage(OutgoingMessage):
    """A message in the buffer: the appended message and its ``position``, which orders
    uploads."""

    position: int


@dataclass(frozen=True)
class Eviction:
    """A message dropped to keep the buffer within its bound."""

    message_id: str
    kind: MessageKind
    priority: int
    size: int


@dataclass(frozen=True)
class AppendResult:
    """What ``append`` did: the new message's position (None when it was itself evicted) and
    every message evicted to make room."""

    position: int | None
    evicted: tuple[Eviction, ...] = ()

    @property
    def stored(self) -> bool:
        return self.position is not None


@dataclass(frozen=True)
class KindSummary:
    """Messages of one kind waiting in a buffer."""

    kind: MessageKind
    messages: int
    bytes: int
    oldest_ns: int
    newest_ns: int


@dataclass(frozen=True)
class BufferStats:
    """Counters of a buffer (the eviction counters survive restarts)."""

    messages: int
    bytes: int
    max_bytes: int
    evicted_messages: int
    evicted_bytes: int


class Buffer(Protocol):
    """What the agent and uplink need from a store-and-forward buffer."""

    def next_seq(self, kind: MessageKind) -> int:
        """The sequence number the next appended message of ``kind`` must carry."""
        ...

    def append(
        self, message: OutgoingMessage, *, state: Mapping[str, str] | None = None
    ) -> AppendResult:
        """Store ``message`` (and ``state`` entries, atomically); durable on return."""
        ...

    def pending(self, after_position: int = 0, limit: int = 100) -> list[BufferedMessage]:
        """Up to ``limit`` messages with a position above ``after_position``, in order."""
        ...

    def remove(self, positions: Iterable[int]) -> int:
        """Delete confirmed messages; returns how many were still there."""
        ...

    def get_state(self, key: str) -> str | None: ...

    def put_state(self, entries: Mapping[str, str]) -> None: ...

    def stats(self) -> BufferStats: ...

    def close(self) -> None: ...


def check_message(message: OutgoingMessage) -> None:
    """Refuse a message no buffer may store.

    Raises:
        ValueError: a negative ``seq`` or an empty payload.
    """
    if message.seq < 0:
        raise ValueError(f"seq {message.seq} is negative")
    if not message.payload:
        raise ValueError(f"message {message.message_id} has an empty payload")


# The columns ``message_from_row`` reads, in its order (SQLite buffers select them for pending).
MESSAGE_COLUMNS: Final = "position, message_id, kind, seq, topic, priority, created_ns, payload"


def message_from_row(row: tuple[int, str, int, int, str, int, int, bytes]) -> BufferedMessage:
    """A ``BufferedMessage`` from a row of ``MESSAGE_COLUMNS``."""
    position, message_id, kind, seq, topic, priority, created_ns, payload = row
    return BufferedMessage(
        message_id, MessageKind(kind), seq, topic, priority, created_ns, bytes(payload), position
    )


def select_evictions(
    rows: Iterable[tuple[int, str, int, int, int]], excess: int
) -> tuple[list[tuple[int, Eviction]], int]:
    """The first rows of (position, message_id, kind, priority, size), taken in eviction order
    (priority, then position), whose sizes add up to at least ``excess`` bytes.

    Returns:
        ``[(position, Eviction)]`` and the bytes they free (both empty/0 when ``excess <= 0``).
    """
    victims: list[tuple[int, Eviction]] = []
    freed = 0
    if excess <= 0:
        return victims, freed
    for position, message_id, kind, priority, size in rows:
        victims.append((position, Eviction(message_id, MessageKind(kind), priority, size)))
        freed += size
        if freed >= excess:
            break
    return victims, freed


class SqliteBuffer:
    """The on-disk buffer (see the module docstring).

    Args:
        path: the SQLite file (created with its directory when missing).
        max_bytes: bound on the payload bytes held (>= 1).
        synchronous: ``FULL`` (default; durable against power loss) or ``NORMAL``.

    Raises:
        StorageError: the file cannot be opened or is not a buffer of this version.
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
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version == SCHEMA_VERSION:
            return
        if version != 0:
            raise StorageError(
                f"{self.path} is a buffer of schema version {version}; "
                f"this agent reads {SCHEMA_VERSION}"
            )
        self._db.executescript(
            """
            BEGIN;
            CREATE TABLE messages(
                position INTEGER PRIMARY KEY AUTOINCREMENT,
                message_id TEXT NOT NULL UNIQUE,
                kind INTEGER NOT NULL,
                seq INTEGER NOT NULL,
                topic TEXT NOT NULL,
                priority INTEGER NOT NULL,
                created_ns INTEGER NOT NULL,
                size INTEGER NOT NULL,
                payload BLOB NOT NULL
            );
            CREATE INDEX messages_eviction ON messages(priority, position);
            CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
            CREATE TABLE state(key TEXT PRIMARY KEY, value TEXT NOT NULL);
            PRAGMA user_version = 1;
            COMMIT;
            """
        )

    # --- writing -------------------------------------------------------------------------------

    def next_seq(self, kind: MessageKind) -> int:
        """The sequence number for the next message of ``kind`` (one more than the last stored)."""
        with self._lock:
            return self._seq.get(int(kind), 0)

    def append(
        self, message: OutgoingMessage, *, state: Mapping[str, str] | None = None
    ) -> AppendResult:
        """Store ``message``; on return it is on disk (see the module docstring).

        Raises:
            StorageError: the database failed (disk full, I/O error) or the message id is
                already stored — nothing was stored.
        """
        check_message(message)
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
                    if state:
                        self._db.executemany(
                            "INSERT OR REPLACE INTO state(key, value) VALUES (?, ?)",
                            list(state.items()),
                        )
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

    def put_state(self, entries: Mapping[str, str]) -> None:
        """Store agent state entries (durable on return).

        Raises:
            StorageError: the database failed.
        """
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany(
                    "INSERT OR REPLACE INTO state(key, value) VALUES (?, ?)", list(entries.items())
                )
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

    def get_state(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

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


class MemoryBuffer:
    """``Buffer`` in memory: the same ordering, bound and eviction, nothing on disk."""

    def __init__(self, *, max_bytes: int = 64 * 1024 * 1024) -> None:
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be >= 1, got {max_bytes}")
        self.max_bytes = max_bytes
        self._messages: dict[int, BufferedMessage] = {}
        self._ids: set[str] = set()
        self._state: dict[str, str] = {}
        self._seq: dict[int, int] = {}
        self._next_position = 1
        self._bytes = 0
        self._evicted_messages = 0
        self._evicted_bytes = 0
        self._lock = threading.Lock()

    def next_seq(self, kind: MessageKind) -> int:
        with self._lock:
            return self._seq.get(int(kind), 0)

    def append(
        self, message: OutgoingMessage, *, state: Mapping[str, str] | None = None
    ) -> AppendResult:
        """See ``SqliteBuffer.append``.

        Raises:
            StorageError: the message id is already in the buffer.
        """
        check_message(message)
        with self._lock:
            if message.message_id in self._ids:
                raise StorageError(f"message {message.message_id} is already in the buffer")
            position = self._next_position
            self._next_position += 1
            self._messages[position] = BufferedMessage(
                message.message_id,
                message.kind,
                message.seq,
                message.topic,
                message.priority,
                message.created_ns,
                message.payload,
                position,
            )
            self._ids.add(message.message_id)
            self._bytes += len(message.payload)
            self._seq[int(message.kind)] = max(self._seq.get(int(message.kind), 0), message.seq + 1)
            if state:
                self._state.update(state)
            evicted: list[Eviction] = []
            if self._bytes > self.max_bytes:
                for m in sorted(self._messages.values(), key=lambda m: (m.priority, m.position)):
                    del self._messages[m.position]
                    self._ids.discard(m.message_id)
                    self._bytes -= len(m.payload)
                    evicted.append(Eviction(m.message_id, m.kind, m.priority, len(m.payload)))
                    if self._bytes <= self.max_bytes:
                        break
                self._evicted_messages += len(evicted)
                self._evicted_bytes += sum(e.size for e in evicted)
        stored = position in self._messages
        return AppendResult(position if stored else None, tuple(evicted))

    def pending(self, after_position: int = 0, limit: int = 100) -> list[BufferedMessage]:
        with self._lock:  # dicts keep insertion order, which is position order
            return list(
                itertools.islice(
                    (m for p, m in self._messages.items() if p > after_position), limit
                )
            )

    def remove(self, positions: Iterable[int]) -> int:
        removed = 0
        with self._lock:
            for p in positions:
                m = self._messages.pop(int(p), None)
                if m is not None:
                    self._ids.discard(m.message_id)
                    self._bytes -= len(m.payload)
                    removed += 1
        return removed

    def get_state(self, key: str) -> str | None:
        with self._lock:
            return self._state.get(key)

    def put_state(self, entries: Mapping[str, str]) -> None:
        with self._lock:
            self._state.update(entries)

    def stats(self) -> BufferStats:
        with self._lock:
            return BufferStats(
                len(self._messages),
                self._bytes,
                self.max_bytes,
                self._evicted_messages,
                self._evicted_bytes,
            )

    def close(self) -> None:
        """Nothing to release."""
