"""The lake index: one small SQLite file (WAL) per region root that says which Parquet files
are committed and which batch ids they hold.

It is the single source of truth for readers and for exactly-once: a file the index does not
name as ``live`` is not part of the lake, whatever is on disk. Every change of the file set is
an *operation* in two transactions:

1. ``commit_append`` / ``commit_replace`` — the new files (already written under staging
   names and fsynced) are recorded as ``pending`` together with the batch ids they hold, and
   the files they replace are marked as replaced by the operation. From this commit on the
   batch ids count as stored, whatever happens to the process.
2. ``finish`` — after the staged files were renamed to their final names: the new files turn
   ``live`` and the replaced ones ``retired``, in one transaction, so a reader sees either the
   old set or the new one, never both or neither.

``retired`` rows are deleted once their files are gone from disk. A crash between the steps
leaves ``pending`` rows owned by a dead writer; recovery (see ``store.py``) renames their
staged files and finishes the operation.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Final

from drivetrain.cloud.lake.models import LAKE_FORMAT_VERSION, LakeFile
from drivetrain.core.errors import ConflictError, StorageError

INDEX_FILE: Final = "_lake_index.sqlite"
_BUSY_TIMEOUT_MS: Final = 60_000
_IN_CHUNK: Final = 500  # host parameters per IN (...) list; SQLite allows 32766

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS batches (
    tenant TEXT NOT NULL,
    batch_id TEXT NOT NULL,
    rows INTEGER NOT NULL,
    first_day TEXT NOT NULL,
    last_day TEXT NOT NULL,
    op_id TEXT NOT NULL,
    committed_ns INTEGER NOT NULL,
    PRIMARY KEY (tenant, batch_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ops (
    op_id TEXT PRIMARY KEY,
    writer TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('append', 'compact', 'retention')),
    created_ns INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS files (
    file_id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    staged TEXT,
    state TEXT NOT NULL CHECK (state IN ('pending', 'live', 'retired')),
    op_id TEXT,
    replaced_by TEXT,
    tenant TEXT NOT NULL,
    day TEXT NOT NULL,
    rows INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    min_ts INTEGER NOT NULL,
    max_ts INTEGER NOT NULL,
    sorted INTEGER NOT NULL,
    created_ns INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS files_by_partition ON files (tenant, day, state);
CREATE INDEX IF NOT EXISTS files_by_op ON files (op_id);
CREATE INDEX IF NOT EXISTS files_by_replacement ON files (replaced_by);
CREATE TABLE IF NOT EXISTS file_categories (
    file_id INTEGER NOT NULL REFERENCES files (file_id) ON DELETE CASCADE,
    category TEXT NOT NULL,
    rows INTEGER NOT NULL,
    PRIMARY KEY (file_id, category)
) WITHOUT ROWID;
"""


@dataclass(frozen=True, slots=True)
class NewFile:
    """A staged file to record: final and staging names (relative to the root) and stats."""

    name: str
    staged: str
    tenant: str
    day: date
    rows: int
    bytes: int
    min_ts_ns: int
    max_ts_ns: int
    sorted: bool
    categories: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BatchRecord:
    """A batch id to record as committed, with its row count and date span."""

    batch_id: str
    rows: int
    first_day: date
    last_day: date


@dataclass(frozen=True, slots=True)
class PendingOp:
    """An operation whose first transaction committed but which is not finished."""

    op_id: str
    writer: str
    kind: str
    files: tuple[tuple[str, str | None], ...]  # (final name, staging name)


class BatchConflictError(ConflictError):
    """Another writer committed some of the batch ids first (the caller retries the append)."""

    def __init__(self, batch_ids: Iterable[str]) -> None:
        self.batch_ids = frozenset(batch_ids)
        super().__init__(f"batch ids committed concurrently: {sorted(self.batch_ids)[:5]}")


class LakeIndex:
    """The index of one region root. Thread-safe (one connection behind a lock).

    Raises :class:`StorageError` when the file cannot be opened or is not a lake index.
    """

    def __init__(self, root: Path) -> None:
        self.path = root / INDEX_FILE
        self._lock = threading.RLock()
        try:
            self._db = sqlite3.connect(
                self.path, timeout=_BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                check_same_thread=False,
            )
            self._db.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
            self._db.execute("PRAGMA journal_mode=WAL")
            # FULL: a commit is on disk before the staged files are renamed after it.
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
        except sqlite3.Error as e:
            raise StorageError(f"cannot open the lake index {self.path}: {e}") from e
        self._create_schema()

    def _create_schema(self) -> None:
        try:
            with self._transaction() as db:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)
                row = db.execute("SELECT value FROM meta WHERE key = 'format_version'").fetchone()
                if row is None:
                    db.execute("INSERT INTO meta VALUES ('format_version', ?)",
                               (str(LAKE_FORMAT_VERSION),))
                elif int(row[0]) != LAKE_FORMAT_VERSION:
                    raise StorageError(
                        f"lake index {self.path} has format version {row[0]}; this version of "
                        f"Drivetrain reads version {LAKE_FORMAT_VERSION}"
                    )
        except sqlite3.DatabaseError as e:
            raise StorageError(f"{self.path} is not a usable lake index: {e}") from e

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        # BEGIN IMMEDIATE takes the write lock up front, so two writers serialise here rather
        # than deadlocking on a read-to-write upgrade.
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as e:
                raise StorageError(f"lake index {self.path} is unavailable: {e}") from e
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            try:
                self._db.execute("COMMIT")
            except sqlite3.Error as e:
                self._db.execute("ROLLBACK")
                raise StorageError(f"lake index {self.path}: commit failed: {e}") from e

    def _read(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return self._db.execute(sql, params).fetchall()
            except sqlite3.Error as e:
                raise StorageError(f"lake index {self.path}: {e}") from e

    # --- batches ------------------------------------------------------------------------------
    def committed_batches(self, tenant: str, batch_ids: Sequence[str]) -> set[str]:
        """The subset of ``batch_ids`` already committed for ``tenant``."""
        found: set[str] = set()
        for start in range(0, len(batch_ids), _IN_CHUNK):
            chunk = batch_ids[start : start + _IN_CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = self._read(
                f"SELECT batch_id FROM batches WHERE tenant = ? AND batch_id IN ({marks})",
                (tenant, *chunk),
            )
            found.update(str(r[0]) for r in rows)
        return found

    def batch_count(self, tenant: str) -> int:
        """How many batch ids are recorded for ``tenant``."""
        return int(self._read("SELECT count(*) FROM batches WHERE tenant = ?", (tenant,))[0][0])

    # --- operations ---------------------------------------------------------------------------
    def commit_append(
        self, op_id: str, writer: str, tenant: str, batches: Sequence[BatchRecord],
        files: Sequence[NewFile],
    ) -> None:
        """Transaction 1 of an append: record ``batches`` and the pending ``files``.

        Raises:
            BatchConflictError: some batch id was committed meanwhile (nothing recorded).
        """
        now = time.time_ns()
        with self._transaction() as db:
            ids = [b.batch_id for b in batches]
            clash: set[str] = set()
            for start in range(0, len(ids), _IN_CHUNK):
                chunk = ids[start : start + _IN_CHUNK]
                marks = ",".join("?" * len(chunk))
                clash.update(
                    str(r[0]) for r in db.execute(
                        f"SELECT batch_id FROM batches WHERE tenant = ? AND batch_id IN ({marks})",
                        (tenant, *chunk),
                    )
                )
            if clash:
                raise BatchConflictError(clash)
            db.execute("INSERT INTO ops VALUES (?, ?, 'append', ?)", (op_id, writer, now))
            db.executemany(
                "INSERT INTO batches VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(tenant, b.batch_id, b.rows, b.first_day.isoformat(), b.last_day.isoformat(),
                  op_id, now) for b in batches],
            )
            self._insert_files(db, op_id, files, now)

    def commit_replace(
        self, op_id: str, writer: str, kind: str, old_file_ids: Sequence[int],
        files: Sequence[NewFile],
    ) -> None:
        """Transaction 1 of a compaction or retention: claim ``old_file_ids`` for this
        operation and record the pending ``files`` that replace them.

        Raises:
            ConflictError: one of the old files is no longer live or already claimed by
                another operation (nothing recorded).
        """
        now = time.time_ns()
        with self._transaction() as db:
            db.execute("INSERT INTO ops VALUES (?, ?, ?, ?)", (op_id, writer, kind, now))
            claimed = 0
            for start in range(0, len(old_file_ids), _IN_CHUNK):
                chunk = list(old_file_ids[start : start + _IN_CHUNK])
                marks = ",".join("?" * len(chunk))
                claimed += db.execute(
                    f"UPDATE files SET replaced_by = ? WHERE file_id IN ({marks}) "
                    "AND state = 'live' AND replaced_by IS NULL",
                    (op_id, *chunk),
                ).rowcount
            if claimed != len(old_file_ids):
                raise ConflictError(
                    f"{len(old_file_ids) - claimed} of {len(old_file_ids)} files to {kind} are "
                    "no longer live or are being rewritten by another process; run it again"
                )
            self._insert_files(db, op_id, files, now)

    @staticmethod
    def _insert_files(
        db: sqlite3.Connection, op_id: str, files: Sequence[NewFile], now: int
    ) -> None:
        for f in files:
            cursor = db.execute(
                "INSERT INTO files (name, staged, state, op_id, tenant, day, rows, bytes, min_ts, "
                "max_ts, sorted, created_ns) VALUES (?, ?, 'pending', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (f.name, f.staged, op_id, f.tenant, f.day.isoformat(), f.rows, f.bytes,
                 f.min_ts_ns, f.max_ts_ns, int(f.sorted), now),
            )
            db.executemany(
                "INSERT INTO file_categories VALUES (?, ?, ?)",
                [(cursor.lastrowid, c, n) for c, n in sorted(f.categories.items()) if n],
            )

    def finish(self, op_id: str) -> list[tuple[int, str]]:
        """Transaction 2: the operation's files go live, the files it replaces retire.

        Returns the retired files as (file_id, name), to be deleted from disk.
        """
        with self._transaction() as db:
            db.execute(
                "UPDATE files SET state = 'live', staged = NULL, op_id = NULL WHERE op_id = ?",
                (op_id,),
            )
            retired = [
                (int(r[0]), str(r[1])) for r in db.execute(
                    "SELECT file_id, name FROM files WHERE replaced_by = ? AND state = 'live'",
                    (op_id,),
                )
            ]
            db.execute("UPDATE files SET state = 'retired' WHERE replaced_by = ?", (op_id,))
            db.execute("DELETE FROM ops WHERE op_id = ?", (op_id,))
        return retired

    def abandon(self, op_id: str) -> None:
        """Undo a replace operation that never renamed anything (its staged files are gone):
        release the claimed files and drop the pending rows."""
        with self._transaction() as db:
            db.execute("UPDATE files SET replaced_by = NULL WHERE replaced_by = ?", (op_id,))
            db.execute("DELETE FROM files WHERE op_id = ? AND state = 'pending'", (op_id,))
            db.execute("DELETE FROM ops WHERE op_id = ?", (op_id,))

    def forget(self, file_ids: Sequence[int]) -> None:
        """Delete the rows of retired files that are gone from disk."""
        with self._transaction() as db:
            db.executemany(
                "DELETE FROM files WHERE file_id = ? AND state = 'retired'",
                [(i,) for i in file_ids],
            )

    def pending_ops(self, writer: str) -> list[PendingOp]:
        """Unfinished operations of ``writer``, with their files' final and staging names."""
        ops = self._read("SELECT op_id, writer, kind FROM ops WHERE writer = ?", (writer,))
        result = []
        for op_id, owner, kind in ops:
            files = self._read(
                "SELECT name, staged FROM files WHERE op_id = ? AND state = 'pending'", (op_id,)
            )
            result.append(
                PendingOp(str(op_id), str(owner), str(kind),
                          tuple((str(n), None if s is None else str(s)) for n, s in files))
            )
        return result

    def writers_with_pending_ops(self) -> set[str]:
        """Writer ids that have unfinished operations."""
        return {str(r[0]) for r in self._read("SELECT DISTINCT writer FROM ops")}

    def retired_files(self) -> list[tuple[int, str]]:
        """Files whose replacement is live but which may still be on disk."""
        return [(int(r[0]), str(r[1]))
                for r in self._read("SELECT file_id, name FROM files WHERE state = 'retired'")]

    # --- readers ------------------------------------------------------------------------------
    def live_files(
        self,
        region: str,
        *,
        tenant: str | None = None,
        first_day: date | None = None,
        last_day: date | None = None,
        start_ns: int | None = None,
        end_ns: int | None = None,
    ) -> list[LakeFile]:
        """Live files, optionally of one tenant, within [first_day, last_day] and overlapping
        the time range [start_ns, end_ns)."""
        where: list[str] = ["f.state = 'live'"]
        params: list[object] = []
        if tenant is not None:
            where.append("f.tenant = ?")
            params.append(tenant)
        if first_day is not None:
            where.append("f.day >= ?")
            params.append(first_day.isoformat())
        if last_day is not None:
            where.append("f.day <= ?")
            params.append(last_day.isoformat())
        if start_ns is not None:
            where.append("f.max_ts >= ?")
            params.append(start_ns)
        if end_ns is not None:
            where.append("f.min_ts < ?")
            params.append(end_ns)
        rows = self._read(
            "SELECT f.file_id, f.tenant, f.day, f.name, f.rows, f.bytes, f.min_ts, f.max_ts, "
            "f.sorted, group_concat(c.category || '=' || c.rows) FROM files f "
            "LEFT JOIN file_categories c ON c.file_id = f.file_id "
            f"WHERE {' AND '.join(where)} GROUP BY f.file_id ORDER BY f.day, f.file_id",
            params,
        )
        files = []
        for fid, ten, day, name, rows_, size, lo, hi, srt, cats in rows:
            categories = {}
            for item in str(cats or "").split(","):
                if item:
                    cat, _, n = item.partition("=")
                    categories[cat] = int(n)
            files.append(LakeFile(
                int(fid), region, str(ten), date.fromisoformat(str(day)), str(name),
                int(rows_), int(size), int(lo), int(hi), bool(srt), categories,
            ))
        return files

    def category_counts(self, tenant: str) -> list[tuple[str, int, int]]:
        """(category, rows, files) of ``tenant``'s live data."""
        rows = self._read(
            "SELECT c.category, sum(c.rows), count(DISTINCT f.file_id) FROM files f "
            "JOIN file_categories c ON c.file_id = f.file_id "
            "WHERE f.tenant = ? AND f.state = 'live' GROUP BY c.category ORDER BY c.category",
            (tenant,),
        )
        return [(str(c), int(n), int(k)) for c, n, k in rows]

    def tenants(self) -> list[str]:
        """Tenants with live files in this root."""
        return [str(r[0]) for r in self._read(
            "SELECT DISTINCT tenant FROM files WHERE state = 'live' ORDER BY tenant"
        )]

    def prune_batches(self, before: date) -> int:
        """Forget batch ids whose every sample was dated before ``before`` (their data has
        expired); returns how many were forgotten."""
        with self._transaction() as db:
            return int(db.execute(
                "DELETE FROM batches WHERE last_day < ?", (before.isoformat(),)
            ).rowcount)
