"""One region's storage root: Parquet files, the index, staging and crash recovery.

Layout under the root (a region's data never leaves its root)::

    _lake_index.sqlite                         the index (WAL), see index.py
    _staging/<writer>.lock                     held (flock) by a live writer
    _maintenance.lock                          held (flock) by a compaction or retention run
    _staging/<writer>/<uuid>.parquet           files being written, not yet committed
    region=EU/tenant=acme/date=2024-05-01/part-<uuid>.parquet    committed files

A write (append, compaction, retention rewrite) goes: write the new files under
``_staging/<writer>/``, fsync them and the directory; commit transaction 1 of the index (the
batch ids count as stored from here on); rename each staged file to its final name and fsync
the directories; commit transaction 2 (the files go live, replaced files retire); delete the
retired files. Recovery on open takes over the staging directory of every writer whose lock
is free (its process is gone): it renames the staged files of committed operations and
finishes them, and deletes staged files no committed operation names. The test suite kills a
writer at each of these points (tests/cloud/lake/test_lake_crash.py).
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Final

import pyarrow as pa
import pyarrow.parquet as pq

from drivetrain.cloud.lake.crypto import LakeCipher, file_suffix
from drivetrain.cloud.lake.index import (
    BatchConflictError,
    BatchRecord,
    LakeIndex,
    NewFile,
)
from drivetrain.cloud.lake.models import LAKE_COLUMNS, LakeFile, partition_path
from drivetrain.cloud.lake.rows import AppendPlan, DaySlice
from drivetrain.core.errors import ConflictError, StorageError
from drivetrain.core.private_files import make_private_dir

STAGING_DIR: Final = "_staging"
MAINTENANCE_LOCK: Final = "_maintenance.lock"
#: How long a compaction or retention run waits for another one on the same root, seconds.
MAINTENANCE_WAIT_S: Final = 3600.0

#: Parquet settings of every lake file: zstd level 1 (fast, still compact); dictionary pages
#: only for the repeated strings; delta encoding for the (nearly ordered) timestamps and byte
#: stream split for the float values, which zstd then compresses well; statistics for
#: row-group pruning on every column but ``batch_id``: batch ids are random, so a file's
#: min/max spans nearly all of them and prunes nothing, while computing them costs ~10 % of
#: an append's encoding. benchmarks/lake_append.py measures the options against pyarrow's
#: defaults (``write_rows_per_s`` vs ``baseline_rows_per_s``, ``file_bytes`` vs
#: ``baseline_file_bytes``): on 500k-row appends ~1.3x the write speed and ~40 % smaller files.
PARQUET_OPTIONS: Final = {
    "compression": "zstd",
    "compression_level": 1,
    "use_dictionary": ["vehicle", "path", "category", "batch_id", "text"],
    "column_encoding": {"ts": "DELTA_BINARY_PACKED", "value": "BYTE_STREAM_SPLIT"},
    "write_statistics": [c for c in LAKE_COLUMNS if c != "batch_id"],
}
#: Rows per row group: small enough that min/max statistics of sorted files prune well.
ROW_GROUP_ROWS: Final = 262_144

#: A hook told each step of a write (``append.staged``, ``append.committed``,
#: ``append.renamed``, ``append.finished``; ``compact.*``, ``retention.*``), used by the
#: crash tests to stop the process at that point.
Checkpoint = Callable[[str], None]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _still_linked(fd: int, path: Path) -> bool:
    """True when ``path`` still names the file open as ``fd`` (not unlinked or replaced)."""
    try:
        named = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)


def write_parquet(
    table: pa.Table, path: Path, encryption: pq.FileEncryptionProperties | None = None
) -> int:
    """Write ``table`` as a lake Parquet file at ``path`` (encrypted with ``encryption``,
    if given) and fsync it; returns its size.

    A table of at most one row group (every append) is encoded in memory and written with one
    ``write``, then fsynced through the same descriptor: the same bytes as a streamed write, at
    a fraction of its system calls. Larger ones (compaction) stream to the file.

    Raises:
        StorageError: the file cannot be written (disk full, permissions).
    """
    try:
        if table.num_rows > ROW_GROUP_ROWS:
            pq.write_table(table, path, row_group_size=ROW_GROUP_ROWS,
                           encryption_properties=encryption, **PARQUET_OPTIONS)
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            return path.stat().st_size
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, row_group_size=ROW_GROUP_ROWS,
                       encryption_properties=encryption, **PARQUET_OPTIONS)
        data = memoryview(sink.getvalue())
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        try:
            written = 0
            while written < len(data):  # a short write (a signal, a full disk) goes on
                written += os.write(fd, data[written:])
            os.fsync(fd)
        finally:
            os.close(fd)
        return len(data)
    except OSError as e:
        raise StorageError(f"cannot write lake file {path}: {e}") from e


class RegionStore:
    """The files and index of one region's root.

    Args:
        region: the region code (written into every partition path).
        root: the region's storage root (created when ``create`` is true).
        checkpoint: optional hook told each write step (crash tests).
        create: create the root if it is missing (writers); readers pass False.
        cipher: the encrypted lake's per-vehicle keys (crypto.py); None writes plain files.

    Raises:
        StorageError: the root or its index cannot be opened.
    """

    def __init__(
        self, region: str, root: Path, *, checkpoint: Checkpoint | None = None,
        create: bool = True, cipher: LakeCipher | None = None,
    ) -> None:
        self.region = region
        self.cipher = cipher
        self.root = root.resolve()
        self._checkpoint = checkpoint or (lambda step: None)
        try:
            if create:
                make_private_dir(self.root / STAGING_DIR)
        except OSError as e:
            raise StorageError(f"cannot create the lake root {self.root}: {e}") from e
        self.index = LakeIndex(self.root)
        self._writer: str | None = None
        self._writer_lock_fd: int | None = None
        self._writer_guard = threading.Lock()
        self.recover()

    # --- writer identity ------------------------------------------------------------------------
    @property
    def staging(self) -> Path:
        """This store's own staging directory (created, and its lock taken, on first write)."""
        return self.root / STAGING_DIR / self._writer_id()

    def _writer_id(self) -> str:
        with self._writer_guard:
            if self._writer is None:
                writer = uuid.uuid4().hex
                base = self.root / STAGING_DIR
                try:
                    base.mkdir(parents=True, exist_ok=True)
                    # The lock exists before the directory, so a directory without a lock
                    # file always belongs to a writer that is gone.
                    fd = os.open(base / f"{writer}.lock", os.O_RDWR | os.O_CREAT, 0o600)
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    while not _still_linked(fd, base / f"{writer}.lock"):
                        # A recovering store took the lock file over (and unlinked it) between
                        # its creation and our lock: ours is gone, so start with a fresh id.
                        os.close(fd)
                        writer = uuid.uuid4().hex
                        fd = os.open(base / f"{writer}.lock", os.O_RDWR | os.O_CREAT, 0o600)
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    (base / writer).mkdir()
                    _fsync_dir(base)
                except OSError as e:
                    raise StorageError(f"cannot create a staging area under {base}: {e}") from e
                self._writer, self._writer_lock_fd = writer, fd
            return self._writer

    def close(self) -> None:
        """Release the writer lock, remove the (empty) staging directory, close the index."""
        with self._writer_guard:
            if self._writer is not None and self._writer_lock_fd is not None:
                base = self.root / STAGING_DIR
                shutil.rmtree(base / self._writer, ignore_errors=True)
                try:
                    (base / f"{self._writer}.lock").unlink()
                except OSError:
                    pass
                os.close(self._writer_lock_fd)
                self._writer, self._writer_lock_fd = None, None
        self.index.close()

    # --- recovery -------------------------------------------------------------------------------
    def recover(self) -> None:
        """Finish or undo the writes of writers that died, and delete retired files.

        Raises:
            StorageError: the index names a committed file that is on disk under neither its
                staging nor its final name (the storage lost data).
        """
        base = self.root / STAGING_DIR
        if base.is_dir():
            for entry in sorted(base.iterdir()):
                if entry.suffix == ".lock":
                    self._take_over(entry.stem)
                elif entry.is_dir() and entry.name != self._writer and \
                        not (base / f"{entry.name}.lock").exists():
                    self._recover_writer(entry.name)
        # Writers whose staging directory vanished but whose operations are unfinished.
        for writer in self.index.writers_with_pending_ops():
            if writer != self._writer and not (base / f"{writer}.lock").exists():
                self._recover_writer(writer)
        self._delete_retired()

    def _take_over(self, writer: str) -> None:
        if writer == self._writer:
            return
        lock_path = self.root / STAGING_DIR / f"{writer}.lock"
        try:
            fd = os.open(lock_path, os.O_RDWR)
        except FileNotFoundError:
            return
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                    return  # a live writer
                raise
            self._recover_writer(writer)
            try:
                lock_path.unlink()
            except FileNotFoundError:
                pass
        finally:
            os.close(fd)

    def _recover_writer(self, writer: str) -> None:
        for op in self.index.pending_ops(writer):
            renamed_any = False
            missing = []
            for final, staged in op.files:
                target = self.root / final
                if staged is not None and (self.root / staged).exists():
                    self._rename(self.root / staged, target)
                    renamed_any = True
                elif target.exists():
                    renamed_any = True
                else:
                    missing.append(final)
            if missing and (renamed_any or op.kind == "append"):
                raise StorageError(
                    f"lake {self.root}: committed file(s) {missing[:3]} of operation {op.op_id} "
                    "are on disk under neither their staging nor their final name"
                )
            if missing:  # a replace whose staged files never made it: the old files stay
                self.index.abandon(op.op_id)
            else:
                self._retire(self.index.finish(op.op_id))
        shutil.rmtree(self.root / STAGING_DIR / writer, ignore_errors=True)

    def _delete_retired(self) -> None:
        retired = self.index.retired_files()
        if retired:
            self._retire(retired)

    def _retire(self, files: Sequence[tuple[int, str]]) -> None:
        gone = []
        for file_id, name in files:
            path = self.root / name
            try:
                path.unlink()
            except FileNotFoundError:
                pass
            except OSError as e:
                raise StorageError(f"cannot delete retired lake file {path}: {e}") from e
            gone.append(file_id)
            self._remove_empty_parents(path.parent)
        self.index.forget(gone)

    def _remove_empty_parents(self, directory: Path) -> None:
        while directory != self.root and directory.is_relative_to(self.root):
            try:
                directory.rmdir()
            except OSError:
                return
            directory = directory.parent

    # --- writes ---------------------------------------------------------------------------------
    def _rename(self, staged: Path, final: Path) -> None:
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staged, final)
        except OSError as e:
            raise StorageError(f"cannot move {staged} to {final}: {e}") from e

    def stage(
        self, tenant: str, slices: Sequence[DaySlice], *, sorted_rows: bool
    ) -> list[NewFile]:
        """Write each slice to this writer's staging directory and fsync it."""
        staging = self.staging
        written: list[NewFile] = []
        try:
            for s in slices:
                file_uuid = uuid.uuid4().hex
                staged = staging / f"{file_uuid}.parquet"
                size = write_parquet(s.table, staged, self._encryption(s))
                written.append(NewFile(
                    name=f"{partition_path(self.region, tenant, s.day)}/part-{file_uuid}"
                         f"{file_suffix(s.key_id)}",
                    staged=str(staged.relative_to(self.root)),
                    tenant=tenant, day=s.day, rows=s.table.num_rows, bytes=size,
                    min_ts_ns=s.min_ts_ns, max_ts_ns=s.max_ts_ns, sorted=sorted_rows,
                    categories=dict(s.categories),
                ))
            _fsync_dir(staging)
        except BaseException:
            self._discard(written)
            raise
        return written

    def _encryption(self, s: DaySlice) -> pq.FileEncryptionProperties | None:
        if s.key_id is None:
            return None
        if self.cipher is None:
            raise StorageError(f"lake {self.root}: a slice under key {s.key_id} to write, but "
                               "the lake is not encrypted (lake_encryption = 'off')")
        return self.cipher.encryption_properties(s.key_id)

    def _discard(self, files: Sequence[NewFile]) -> None:
        for f in files:
            try:
                (self.root / f.staged).unlink()
            except FileNotFoundError:
                pass

    def _publish(self, op_id: str, files: Sequence[NewFile], step: str) -> None:
        """Rename committed staged files to their final names, then finish the operation."""
        directories = set()
        for f in files:
            final = self.root / f.name
            self._rename(self.root / f.staged, final)
            directories.add(final.parent)
            self._checkpoint(f"{step}.renamed-one")
        for directory in sorted(directories):
            _fsync_dir(directory)
            _fsync_dir(directory.parent)
        if files:
            _fsync_dir(self.staging)
        self._checkpoint(f"{step}.renamed")
        retired = self.index.finish(op_id)
        self._checkpoint(f"{step}.finished")
        self._retire(retired)

    def append(self, tenant: str, plan: AppendPlan) -> list[NewFile] | None:
        """Write ``plan``'s slices and commit them with their batch ids.

        Returns the new files, or None when another writer committed one of the batch ids
        first (nothing was stored; the caller re-plans and retries).
        """
        files = self.stage(tenant, plan.slices, sorted_rows=False)
        self._checkpoint("append.staged")
        op_id = uuid.uuid4().hex
        try:
            self.index.commit_append(
                op_id, self._writer_id(), tenant,
                [BatchRecord(b.batch_id, b.rows, b.first_day, b.last_day) for b in plan.batches],
                files,
            )
        except BatchConflictError:
            self._discard(files)
            return None
        except BaseException:
            self._discard(files)
            raise
        self._checkpoint("append.committed")
        self._publish(op_id, files, "append")
        return files

    def replace(
        self, kind: str, old: Sequence[LakeFile], tenant: str, slices: Sequence[DaySlice],
        *, sorted_rows: bool,
    ) -> list[NewFile]:
        """Swap ``old`` files for new ones written from ``slices`` (compaction, retention).

        Readers see the old files until the new ones are all in place, then only the new.

        Raises:
            ConflictError: another process is rewriting or has removed one of ``old``.
        """
        return self._commit_replace(kind, old, self.stage(tenant, slices,
                                                          sorted_rows=sorted_rows))

    def commit_staged(
        self, kind: str, old: Sequence[LakeFile], files: Sequence[NewFile]
    ) -> list[NewFile]:
        """Swap ``old`` files for ``files`` another engine (a Spark job) already wrote under
        this writer's staging directory, exactly as :meth:`replace` swaps its own: the staged
        files are fsynced with their directories, then committed and renamed.

        Raises:
            ConflictError: another process is rewriting or has removed one of ``old``
                (``files`` are deleted, nothing is swapped).
        """
        try:
            for directory in sorted({(self.root / f.staged).parent for f in files}):
                if not directory.is_relative_to(self.staging):
                    raise StorageError(f"{directory} is not under this writer's staging "
                                       f"directory {self.staging}")
                _fsync_dir(directory)
        except BaseException:
            self._discard(files)
            raise
        return self._commit_replace(kind, old, files)

    def discard_staged(self, files: Sequence[NewFile]) -> None:
        """Delete staged ``files`` that will not be committed."""
        self._discard(files)

    def _commit_replace(
        self, kind: str, old: Sequence[LakeFile], files: Sequence[NewFile]
    ) -> list[NewFile]:
        self._checkpoint(f"{kind}.staged")
        op_id = uuid.uuid4().hex
        try:
            self.index.commit_replace(op_id, self._writer_id(), kind,
                                      [f.file_id for f in old], files)
        except BaseException:
            self._discard(files)
            raise
        self._checkpoint(f"{kind}.committed")
        self._publish(op_id, files, kind)
        return list(files)

    @contextmanager
    def maintenance(self, wait_s: float = MAINTENANCE_WAIT_S) -> Iterator[None]:
        """Hold the root's maintenance lock: compaction and retention runs, in this process
        or any other, take turns, so neither reads or rewrites a file the other is retiring.

        Raises:
            ConflictError: another run still held the lock after ``wait_s`` seconds.
            StorageError: the lock file cannot be opened.
        """
        path = self.root / MAINTENANCE_LOCK
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as e:
            raise StorageError(f"cannot open the maintenance lock {path}: {e}") from e
        try:
            deadline = time.monotonic() + wait_s
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise ConflictError(
                            f"another compaction or retention run of region {self.region} "
                            f"({self.root}) still holds {MAINTENANCE_LOCK} after {wait_s:.0f} s"
                        ) from None
                    time.sleep(0.05)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    def path_of(self, name: str) -> Path:
        """Absolute path of a file named relative to the root."""
        return self.root / name
