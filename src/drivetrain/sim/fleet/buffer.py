"""``FleetBufferStore``: every simulated vehicle's store-and-forward buffer in one SQLite file.

A car has its own buffer file; a process hosting thousands of simulated cars would otherwise
open thousands of databases (three file handles each, a schema and a checkpoint per file, a
long start-up). Here one database holds them all, each message tagged with its vehicle, and
``store.buffer(vin)`` gives each agent a view with the edge ``Buffer`` behaviour per vehicle:

* **durable on return** — every append and removal is its own transaction; WAL with
  ``synchronous=NORMAL`` survives a crash of the process (not a power cut, which simulated
  vehicles do not have);
* **bounded per vehicle by bytes**, eviction by priority then age, counted and returned;
* **ordered** — positions come from one ``AUTOINCREMENT`` column, so each vehicle's messages
  keep their append order and a position is never reused;
* per-vehicle agent state (typed records, ``load_state``/``save_state``) and sequence numbers.

Schema version 2 keeps the agent state as one row per typed record (``agent_state``); a
version 1 file (free key/value strings in ``state``) is migrated when opened.

All views share one connection under one lock, so they are safe to use from the runner's
thread and the transport's delivery thread alike.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Final

from drivetrain.core.errors import StorageError
from drivetrain.core.wire import MessageKind
from drivetrain.edge import (
    MESSAGE_COLUMNS,
    AgentState,
    AppendResult,
    BufferedMessage,
    BufferStats,
    Eviction,
    OutgoingMessage,
    StateRecord,
    check_message,
    encode_records,
    message_from_row,
    records_from_legacy,
    select_evictions,
    upgrade_schema,
)

SCHEMA_VERSION: Final = 2
#: Positions per ``DELETE ... IN (...)``: well below SQLite's bound-parameter limit.
_IN_CHUNK: Final = 500
_AGENT_STATE: Final = """CREATE TABLE agent_state(
    vehicle TEXT NOT NULL, record TEXT NOT NULL, body TEXT NOT NULL, PRIMARY KEY(vehicle, record)
)"""
_PUT_STATE: Final = "INSERT OR REPLACE INTO agent_state(vehicle, record, body) VALUES (?, ?, ?)"
_SCHEMA: Final = (
    """CREATE TABLE messages(
    position INTEGER PRIMARY KEY AUTOINCREMENT,
    vehicle TEXT NOT NULL,
    message_id TEXT NOT NULL UNIQUE,
    kind INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    topic TEXT NOT NULL,
    priority INTEGER NOT NULL,
    created_ns INTEGER NOT NULL,
    size INTEGER NOT NULL,
    payload BLOB NOT NULL
)""",
    "CREATE INDEX messages_vehicle ON messages(vehicle, position)",
    "CREATE INDEX messages_eviction ON messages(vehicle, priority, position)",
    """CREATE TABLE counters(vehicle TEXT NOT NULL, key TEXT NOT NULL, value INTEGER NOT NULL,
                      PRIMARY KEY(vehicle, key))""",
)


class FleetBufferStore:
    """The shared database (see the module docstring).

    Args:
        path: the SQLite file (created with its directory when missing).
        max_bytes_per_vehicle: each vehicle's bound on buffered payload bytes (>= 1).

    Raises:
        StorageError: the file cannot be opened or is not a fleet buffer of this version.
    """

    def __init__(self, path: str | Path, *, max_bytes_per_vehicle: int = 16 * 1024 * 1024) -> None:
        if max_bytes_per_vehicle < 1:
            raise ValueError(f"max_bytes_per_vehicle must be >= 1, got {max_bytes_per_vehicle}")
        self.path = Path(path)
        self.max_bytes = max_bytes_per_vehicle
        self.lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL").fetchone()
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA busy_timeout=5000")
            self._migrate()
            self._totals = {
                vin: (int(size), int(count))
                for vin, size, count in self.db.execute(
                    "SELECT vehicle, SUM(size), COUNT(*) FROM messages GROUP BY vehicle"
                )
            }
            self._counters: dict[tuple[str, str], int] = {
                (vin, key): int(value)
                for vin, key, value in self.db.execute("SELECT vehicle, key, value FROM counters")
            }
        except (sqlite3.Error, OSError) as e:
            raise StorageError(f"cannot open the fleet buffer {self.path}: {e}") from e

    def _migrate(self) -> None:
        def create(db: sqlite3.Connection) -> None:
            for statement in (*_SCHEMA, _AGENT_STATE):
                db.execute(statement)

        def from_version_1(db: sqlite3.Connection) -> None:
            legacy: defaultdict[str, dict[str, str]] = defaultdict(dict)
            for vin, key, value in db.execute("SELECT vehicle, key, value FROM state"):
                legacy[vin][key] = value
            db.execute(_AGENT_STATE)
            db.executemany(
                _PUT_STATE,
                [
                    (vin, record, body)
                    for vin, entries in legacy.items()
                    for record, body in encode_records(records_from_legacy(entries))
                ],
            )
            db.execute("DROP TABLE state")

        upgrade_schema(
            self.db,
            SCHEMA_VERSION,
            {0: create, 1: from_version_1},
            what=f"{self.path} is a fleet buffer",
            reader="this runner",
        )

    def buffer(self, vin: str) -> VehicleBuffer:
        """The buffer of vehicle ``vin`` (a view on this store)."""
        return VehicleBuffer(self, vin)

    def totals(self, vin: str) -> tuple[int, int]:
        """(bytes, messages) buffered for ``vin``."""
        return self._totals.get(vin, (0, 0))

    def set_totals(self, vin: str, size: int, count: int) -> None:
        self._totals[vin] = (size, count)

    def counter(self, vin: str, key: str) -> int:
        return self._counters.get((vin, key), 0)

    def write_counter(self, vin: str, key: str, value: int) -> None:
        """Write a persistent counter (caller holds the lock, inside a transaction; call
        ``set_counter`` after the commit)."""
        self.db.execute(
            "INSERT INTO counters(vehicle, key, value) VALUES (?, ?, ?) "
            "ON CONFLICT(vehicle, key) DO UPDATE SET value = excluded.value",
            (vin, key, value),
        )

    def set_counter(self, vin: str, key: str, value: int) -> None:
        self._counters[(vin, key)] = value

    def close(self) -> None:
        """Close the database (idempotent)."""
        with self.lock:
            self.db.close()


class VehicleBuffer:
    """One vehicle's store-and-forward buffer inside a ``FleetBufferStore`` (edge ``Buffer``)."""

    def __init__(self, store: FleetBufferStore, vin: str) -> None:
        self._store = store
        self.vin = vin

    def next_seq(self, kind: MessageKind) -> int:
        """The sequence number for the next message of ``kind``."""
        with self._store.lock:
            return self._store.counter(self.vin, f"seq:{int(kind)}")

    def append(
        self, message: OutgoingMessage, *, state: Sequence[StateRecord] = ()
    ) -> AppendResult:
        """Store ``message`` (and ``state``) in one transaction; evict to stay in bounds.

        Raises:
            StorageError: the database failed or the message id is already stored (nothing
                was stored).
            ValueError: a negative ``seq`` or an empty payload.
        """
        check_message(message)
        state_rows = encode_records(state)
        store, vin, size = self._store, self.vin, len(message.payload)
        with store.lock:
            db = store.db
            counters: dict[str, int] = {}
            try:
                db.execute("BEGIN IMMEDIATE")
                try:
                    cursor = db.execute(
                        "INSERT INTO messages(vehicle, message_id, kind, seq, topic, priority,"
                        " created_ns, size, payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            vin,
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
                    seq_key = f"seq:{int(message.kind)}"
                    counters[seq_key] = max(store.counter(vin, seq_key), message.seq + 1)
                    if state_rows:
                        db.executemany(_PUT_STATE, [(vin, r, b) for r, b in state_rows])
                    total, count = store.totals(vin)
                    evicted, freed = self._evict(total + size - store.max_bytes)
                    if evicted:
                        counters["evicted_messages"] = store.counter(vin, "evicted_messages") + len(
                            evicted
                        )
                        counters["evicted_bytes"] = store.counter(vin, "evicted_bytes") + freed
                    for key, value in counters.items():
                        store.write_counter(vin, key, value)
                    db.execute("COMMIT")
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as e:
                raise StorageError(
                    f"fleet buffer {store.path}: cannot store message {message.message_id} of {vin}: {e}"
                ) from e
            for key, value in counters.items():
                store.set_counter(vin, key, value)
            store.set_totals(vin, total + size - freed, count + 1 - len(evicted))
        stored = all(e.message_id != message.message_id for e in evicted)
        return AppendResult(position if stored else None, tuple(evicted))

    def _evict(self, excess: int) -> tuple[list[Eviction], int]:
        if excess <= 0:
            return [], 0
        store = self._store
        rows = store.db.execute(
            "SELECT position, message_id, kind, priority, size FROM messages WHERE vehicle = ?"
            " ORDER BY priority, position",
            (self.vin,),
        )
        victims, freed = select_evictions(rows, excess)
        rows.close()
        store.db.executemany("DELETE FROM messages WHERE position = ?", [(p,) for p, _ in victims])
        return [v for _, v in victims], freed

    def pending(self, after_position: int = 0, limit: int = 100) -> list[BufferedMessage]:
        """Up to ``limit`` of this vehicle's messages after ``after_position``, in order.

        Raises:
            StorageError: the database failed.
        """
        store = self._store
        with store.lock:
            if store.totals(self.vin)[1] == 0:
                return []
            try:
                rows = store.db.execute(
                    f"SELECT {MESSAGE_COLUMNS}"
                    " FROM messages WHERE vehicle = ? AND position > ? ORDER BY position LIMIT ?",
                    (self.vin, after_position, limit),
                ).fetchall()
            except sqlite3.Error as e:
                raise StorageError(f"fleet buffer {store.path}: cannot read messages: {e}") from e
        return [message_from_row(row) for row in rows]

    def remove(self, positions: Iterable[int]) -> int:
        """Delete this vehicle's confirmed messages; unknown positions are ignored.

        Raises:
            StorageError: the database failed.
        """
        wanted = sorted({int(p) for p in positions})
        if not wanted:
            return 0
        chunks = [wanted[i : i + _IN_CHUNK] for i in range(0, len(wanted), _IN_CHUNK)]
        store = self._store
        with store.lock:
            db = store.db
            try:
                # Usually one confirmed message: one statement is its own transaction
                # (autocommit), without BEGIN/COMMIT round trips; more chunks share one.
                if len(chunks) > 1:
                    db.execute("BEGIN IMMEDIATE")
                try:
                    sizes = [
                        row[0]
                        for chunk in chunks
                        for row in db.execute(
                            "DELETE FROM messages WHERE vehicle = ? AND position IN ("
                            + ", ".join("?" * len(chunk)) + ") RETURNING size",
                            (self.vin, *chunk),
                        ).fetchall()
                    ]
                    if len(chunks) > 1:
                        db.execute("COMMIT")
                except BaseException:
                    if db.in_transaction:
                        db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as e:
                raise StorageError(
                    f"fleet buffer {store.path}: cannot remove sent messages: {e}"
                ) from e
            total, count = store.totals(self.vin)
            store.set_totals(self.vin, total - sum(sizes), count - len(sizes))
        return len(sizes)

    def load_state(self) -> AgentState:
        """This vehicle's agent state.

        Raises:
            StorageError: the database failed.
        """
        store = self._store
        with store.lock:
            try:
                rows = store.db.execute(
                    "SELECT record, body FROM agent_state WHERE vehicle = ?", (self.vin,)
                ).fetchall()
            except sqlite3.Error as e:
                raise StorageError(
                    f"fleet buffer {store.path}: cannot read agent state: {e}"
                ) from e
        return AgentState.from_stored(rows)

    def save_state(self, records: Sequence[StateRecord]) -> None:
        """Store agent state records (committed on return).

        Raises:
            StorageError: the database failed.
        """
        rows = [(self.vin, r, b) for r, b in encode_records(records)]
        store = self._store
        with store.lock:
            try:
                store.db.execute("BEGIN IMMEDIATE")
                store.db.executemany(_PUT_STATE, rows)
                store.db.execute("COMMIT")
            except sqlite3.Error as e:
                if store.db.in_transaction:
                    store.db.execute("ROLLBACK")
                raise StorageError(
                    f"fleet buffer {store.path}: cannot store agent state: {e}"
                ) from e

    def stats(self) -> BufferStats:
        """Counters of this vehicle's buffer (from memory: no query)."""
        store = self._store
        with store.lock:
            size, count = store.totals(self.vin)
            return BufferStats(
                messages=count,
                bytes=size,
                max_bytes=store.max_bytes,
                evicted_messages=store.counter(self.vin, "evicted_messages"),
                evicted_bytes=store.counter(self.vin, "evicted_bytes"),
            )

    def close(self) -> None:
        """Nothing to release: the store owns the connection."""

    def __repr__(self) -> str:
        size, count = self._store.totals(self.vin)
        return f"VehicleBuffer({self.vin}, {count} messages, {size} bytes)"
