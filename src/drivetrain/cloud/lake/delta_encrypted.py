"""Crypto-shredding on the Delta lake: a region's table whose data files are encrypted per vehicle.

delta-rs writes no encrypted Parquet, so this table writes its files itself, with pyarrow's
Parquet modular encryption (crypto.py: one file per vehicle and day, every column and the
footer under fresh file keys wrapped by the vehicle's data key), uploads them through
delta-rs' own object-store layer (``DeltaStorageHandler``: the same URL and storage options
as the table), and commits them as ``add`` actions with
``DeltaTable.create_write_transaction`` — against the snapshot it checked the batch ids on,
carrying one app transaction per batch id, exactly as the plain append (delta.py) does, so
exactly-once per batch id holds the same way. A commit that loses to another writer of the
same batch ids deletes its uploads and returns None.

What the log says of a file is plaintext and outlives any erasure (every JSON commit stays
until log clean-up), so an ``add`` carries the partition (tenant, date) and ``numRecords``
only: no minimum, maximum or null counts of any column (they would be the vehicle's values
and pseudonym in the clear). Queries prune by date partition; the vehicle's key id is in the
file name (``part-<uuid>.k<key id>.parquet``), saying nothing of the vehicle.

Nothing of delta-rs that reads data files can open these (optimize, delete, merge), so:

- **reading** lists the version's files, leaves out those whose key is destroyed, and reads
  the rest through a pyarrow dataset with decryption properties, in the calling thread
  (shredding.py says why); time travel reads an older version the same way, so an erased
  vehicle's files stay unreadable in every version;
- **erasure** destroys the keys, then commits ``remove`` actions for the files under them
  and purges them from storage at once (a "lite" vacuum); a copy of a file taken before
  stays unreadable without the key;
- **compaction** merges the files of one vehicle and day (same key) into one file encrypted
  under that key, committing the new ``add`` and the old ``remove`` actions together — no
  plaintext is ever written — then vacuums as the plain table does;
- **retention** rewrites (under the same key) or removes the files holding rows of expired
  categories, judged per file by the SQL predicate of the plain table's delete.

The table's description marks it encrypted (``ENCRYPTED_DESCRIPTION``), set when it is
created: a plain lake refuses to write into it (its files would be plaintext among encrypted
ones) and an encrypted lake refuses a table created plain.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Collection, Sequence

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from deltalake import CommitProperties, DeltaTable, Transaction
from deltalake.exceptions import CommitFailedError, DeltaError
from deltalake.fs import DeltaStorageHandler
from deltalake.transaction import AddAction, RemoveAction

from drivetrain.cloud.lake.crypto import LakeCipher, file_suffix, key_id_of
from drivetrain.cloud.lake.delta import (
    _TXN_CONFLICT,
    PARTITION_BY,
    DeltaRegionTable,
    _files_of,
    _plain,
    app_id,
)
from drivetrain.cloud.lake.delta_txns import log_filesystem
from drivetrain.cloud.lake.tables import Compacted, TableAppend, TableFile
from drivetrain.core.errors import StorageError


def _data_schema(table: DeltaTable) -> pa.Schema:
    """The columns ``table``'s data files hold (its schema without the partition columns)."""
    return pa.schema(
        [f for f in pa.schema(table.schema().to_arrow()) if f.name not in PARTITION_BY]
    )


def _partition(tenant: str, day: str) -> dict[str, str | None]:
    return {"tenant": tenant, "date": day}


class EncryptedDeltaTable(DeltaRegionTable):
    """The Delta table of one region with every data file encrypted under its vehicle's key
    (``cipher``); otherwise as :class:`DeltaRegionTable`.

    Raises (every method):
        StorageError: the table cannot be read or written.
    """

    encrypted = True

    def __init__(
        self,
        region: str,
        url: str,
        storage_options: dict[str, str],
        batch_window_days: int,
        *,
        cipher: LakeCipher,
        checkpoint: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(region, url, storage_options, batch_window_days, checkpoint=checkpoint)
        self.cipher = cipher
        self._fs: pafs.FileSystem | None = None
        self._local = False

    def _filesystem(self) -> pafs.FileSystem:
        """The table's storage as a pyarrow filesystem, paths relative to the table root:
        pyarrow's own (local, S3) where the options allow, else delta-rs' object-store layer
        (whose calls keep the interpreter lock while they wait on the network)."""
        if self._fs is None:
            native = log_filesystem(self.url, self._options)
            if native is None:
                self._fs = pafs.PyFileSystem(DeltaStorageHandler(self.url, self._options))
            else:
                fs, log = native
                self._local = isinstance(fs, pafs.LocalFileSystem)
                self._fs = pafs.SubTreeFileSystem(log.removesuffix("/_delta_log"), fs)
        return self._fs

    # --- writing -----------------------------------------------------------------------------
    def append(self, tenant: str, rows: pa.Table) -> TableAppend | None:
        snapshot, plan = self._plan(tenant, rows)
        if snapshot is None or not plan.slices:
            return TableAppend(plan, None if snapshot is None else snapshot.version())
        self._checkpoint("append.planned")
        adds, schema = [], _data_schema(snapshot)
        for s in self.cipher.per_vehicle(tenant, plan.slices):
            assert s.key_id is not None
            adds.append(self._upload(schema, tenant, s.day.isoformat(), s.table, s.key_id))
        self._checkpoint("append.writing")  # every file uploaded, nothing committed
        batches = [
            Transaction(app_id(tenant, b.batch_id), 1, int(time.time() * 1000))
            for b in plan.batches
        ]
        try:
            snapshot.create_write_transaction(
                [*adds],
                "append",
                snapshot.schema(),
                PARTITION_BY,
                commit_properties=CommitProperties(app_transactions=batches),
            )
        except CommitFailedError as e:
            self._delete_uploads([a.path for a in adds])
            if _TXN_CONFLICT in str(e):
                return None  # one of our batch ids won elsewhere: the caller re-plans
            raise StorageError(f"cannot commit to the lake table {self.url}: {e}") from e
        except (DeltaError, OSError) as e:
            self._delete_uploads([a.path for a in adds])
            raise StorageError(f"cannot append to the lake table {self.url}: {e}") from e
        self._checkpoint("append.committed")
        after = self._load()
        return TableAppend(plan, None if after is None else after.version())

    def _upload(
        self, schema: pa.Schema, tenant: str, day: str, rows: pa.Table, key_id: str
    ) -> AddAction:
        """Write ``rows`` (one vehicle's of one day) in the data columns ``schema`` encrypted
        under ``key_id`` as a new file of the table's storage; its ``add`` action
        (statistics: the row count only)."""
        data = _plain(rows).select(schema.names).cast(schema)
        path = f"tenant={tenant}/date={day}/part-{uuid.uuid4().hex}{file_suffix(key_id)}"
        try:
            # encrypted in memory, then one upload (a single PUT on an object store)
            buffer = pa.BufferOutputStream()
            pq.write_table(
                data,
                buffer,
                compression="zstd",
                compression_level=1,
                encryption_properties=self.cipher.encryption_properties(key_id),
            )
            encrypted = buffer.getvalue()
            fs = self._filesystem()
            if self._local:  # object stores have no directories to make
                fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
            with fs.open_output_stream(path) as out:
                out.write(encrypted)
            size = encrypted.size
        except (OSError, pa.ArrowException) as e:
            raise StorageError(f"cannot write {path} to the lake table {self.url}: {e}") from e
        return AddAction(
            path,
            int(size),
            _partition(tenant, day),
            int(time.time() * 1000),
            True,
            json.dumps({"numRecords": data.num_rows}),
        )

    def _delete_uploads(self, paths: Sequence[str]) -> None:
        """Delete files this writer uploaded but did not commit (best-effort: a full vacuum
        deletes whatever stays, after ``ORPHAN_HOURS``)."""
        fs = self._filesystem()
        for path in paths:
            try:
                fs.delete_file(path)
            except OSError:
                pass

    # --- reading -----------------------------------------------------------------------------
    def _readable_files(self, table: DeltaTable, tenant: str | None = None) -> list[TableFile]:
        files = _files_of(table, tenant)
        readable = self.cipher.readable([f.name for f in files])
        return [f for f in files if f.name in readable]

    def files(self, tenant: str | None = None) -> list[TableFile]:
        """The readable data files of the latest version (of ``tenant`` only, if given):
        those whose key is destroyed are no data any more, and are left out."""
        table = self._load()
        return [] if table is None else self._readable_files(table, tenant)

    def _decrypting(self, table: DeltaTable, names: Collection[str] | None) -> ds.Dataset:
        """``table``'s readable files (only ``names``, if given) as a dataset that decrypts,
        with the table's schema and its ``tenant``/``date`` partition columns."""
        try:
            plain = table.to_pyarrow_dataset()
        except (DeltaError, OSError) as e:
            raise StorageError(f"cannot read the lake table {self.url}: {e}") from e
        assert isinstance(plain, ds.FileSystemDataset)
        listed = list(plain.get_fragments())
        readable = self.cipher.readable([f.path for f in listed])
        wanted = readable if names is None else readable & set(names)
        decrypting, fs = self.cipher.file_format(), self._filesystem()
        fragments = [
            decrypting.make_fragment(
                f.path, filesystem=fs, partition_expression=f.partition_expression
            )
            for f in listed
            if f.path in wanted
        ]
        return ds.FileSystemDataset(fragments, plain.schema, decrypting, fs)

    def dataset(self, version: int | None = None) -> ds.Dataset | None:
        """The table's readable rows at ``version`` (default: the latest); files whose key
        is destroyed are left out, in every version. Read it with ``to_table`` in the
        calling thread (decryption calls the key service)."""
        table = self._load(version)
        return None if table is None else self._decrypting(table, None)

    def dataset_of(self, names: Collection[str]) -> ds.Dataset | None:
        table = self._load()
        return None if table is None else self._decrypting(table, names)

    # --- erasure, retention, compaction ------------------------------------------------------
    def _commit(
        self, table: DeltaTable, adds: list[AddAction], removed: Sequence[TableFile]
    ) -> None:
        """Commit ``adds`` and the removal of ``removed`` in one version."""
        now_ms = int(time.time() * 1000)
        removes = [
            RemoveAction(f.name, True, now_ms, f.bytes, _partition(f.tenant, f.day.isoformat()))
            for f in removed
        ]
        try:
            table.create_write_transaction(
                [*adds, *removes], "append", table.schema(), PARTITION_BY
            )
        except (CommitFailedError, DeltaError, OSError):
            self._delete_uploads([a.path for a in adds])
            raise

    def drop_shredded(self, tenant: str | None = None) -> tuple[int, int]:
        """Remove from the table, and purge from storage, the files (of ``tenant``, if given)
        whose key is destroyed; returns (files, rows)."""

        def drop(table: DeltaTable) -> list[TableFile]:
            files = _files_of(table, tenant)
            readable = self.cipher.readable([f.name for f in files])
            dead = [f for f in files if f.name not in readable]
            if dead:
                self._commit(table, [], dead)
            return dead

        dead: list[TableFile] = self._retrying("remove erased files from", drop) or []
        if dead:
            self._purge_replaced(0)
        return len(dead), sum(f.rows for f in dead)

    def _rewrite(
        self,
        what: str,
        plan: Callable[[DeltaTable], list[tuple[list[TableFile], pa.Table | None]]],
    ) -> tuple[list[TableFile], list[AddAction]]:
        """One commit replacing groups of files of one key each: ``plan(table)`` gives per
        group its files and the rows to write back encrypted under their key (None or empty:
        nothing). Returns the files removed and the ``add`` actions committed."""

        def rewrite(table: DeltaTable) -> tuple[list[TableFile], list[AddAction]]:
            adds: list[AddAction] = []
            removed: list[TableFile] = []
            schema = _data_schema(table)
            try:
                for files, rows in plan(table):
                    removed.extend(files)
                    if rows is not None and rows.num_rows:
                        key_id = key_id_of(files[0].name)
                        assert key_id is not None
                        adds.append(
                            self._upload(
                                schema, files[0].tenant, files[0].day.isoformat(), rows, key_id
                            )
                        )
            except BaseException:
                self._delete_uploads([a.path for a in adds])
                raise
            if removed:
                self._commit(table, adds, removed)
            return removed, adds

        done: tuple[list[TableFile], list[AddAction]] | None = self._retrying(what, rewrite)
        return done or ([], [])

    def _groups(self, files: Sequence[TableFile]) -> dict[tuple[str, str, str], list[TableFile]]:
        by_key: dict[tuple[str, str, str], list[TableFile]] = defaultdict(list)
        for f in files:
            key_id = key_id_of(f.name)
            if key_id is not None:
                by_key[(f.tenant, f.day.isoformat(), key_id)].append(f)
        return by_key

    def _read(self, schema: pa.Schema, files: Sequence[TableFile]) -> pa.Table:
        """The rows of ``files`` (whose keys are live) decrypted, in the data columns
        ``schema``, oldest first."""
        try:
            dataset = ds.FileSystemDataset.from_paths(
                [f.name for f in files],
                schema=schema,
                format=self.cipher.file_format(),
                filesystem=self._filesystem(),
            )
            rows = dataset.to_table()
        except (OSError, pa.ArrowException) as e:
            raise StorageError(f"cannot read the lake table {self.url}: {e}") from e
        return rows.sort_by("ts")

    def compact(
        self,
        tenant: str | None = None,
        *,
        target_bytes: int | None = None,
        keep_replaced_hours: int = 168,
    ) -> Compacted:
        """Merge the files of each vehicle and day (one key) into files of about
        ``target_bytes`` (100 MiB without one), each encrypted under that key, in one commit;
        first remove the files of destroyed keys; then vacuum as the plain table does."""
        self.drop_shredded(tenant)
        target = target_bytes or 100 << 20

        def plan(table: DeltaTable) -> list[tuple[list[TableFile], pa.Table | None]]:
            groups: list[tuple[list[TableFile], pa.Table | None]] = []
            schema = _data_schema(table)
            for files in self._groups(self._readable_files(table, tenant)).values():
                small = sorted((f for f in files if f.bytes < target), key=lambda f: f.name)
                while len(small) > 1:  # bins of about the target size, as optimize packs
                    batch, size = [small.pop(0)], 0
                    size = batch[0].bytes
                    while small and size + small[0].bytes <= target:
                        size += small[0].bytes
                        batch.append(small.pop(0))
                    if len(batch) > 1:
                        groups.append((batch, self._read(schema, batch)))
            return groups

        removed, adds = self._rewrite("compact", plan)
        return Compacted(
            files_removed=len(removed),
            files_added=len(adds),
            bytes_removed=sum(f.bytes for f in removed),
            bytes_added=sum(a.size for a in adds),
            rows=sum(f.rows for f in removed),
            partitions=len({(f.tenant, f.day) for f in removed}),
            files_purged=self._purge_replaced(keep_replaced_hours),
            orphans_purged=self._vacuum_orphans(keep_replaced_hours),
        )

    def delete_rows(self, predicate: str, *, files: Collection[str] | None = None) -> int:
        """Delete the rows matching the SQL ``predicate`` (over the data columns and
        ``tenant``, ``date``) from the readable files (of ``files`` only, if given): each
        file holding some is rewritten without them under its key, or removed when none is
        left, in one commit; the replaced files are purged at once."""
        names = None if files is None else set(files)

        def plan(table: DeltaTable) -> list[tuple[list[TableFile], pa.Table | None]]:
            groups: list[tuple[list[TableFile], pa.Table | None]] = []
            schema = _data_schema(table)
            listed = [f for f in self._readable_files(table) if names is None or f.name in names]
            for f in listed:
                rows = self._read(schema, [f])
                keep = _keep(rows, f, predicate)
                if keep.num_rows < rows.num_rows:
                    groups.append(([f], keep))
            return groups

        removed, adds = self._rewrite("delete from", plan)
        if removed:
            self._purge_replaced(0)
        return sum(f.rows for f in removed) - sum(_rows_of(a) for a in adds)


def _rows_of(add: AddAction) -> int:
    return int(json.loads(add.stats)["numRecords"])


def _keep(rows: pa.Table, f: TableFile, predicate: str) -> pa.Table:
    """The rows of file ``f`` that ``predicate`` does not match (DuckDB evaluates it, with
    the file's partition values as columns)."""
    with duckdb.connect(":memory:") as con:
        con.execute("SET TimeZone = 'UTC'")
        con.register("_file_rows", rows)
        kept = con.sql(
            f"SELECT * EXCLUDE (tenant, date) FROM (SELECT *, $tenant AS tenant, "
            f"$day::DATE AS date FROM _file_rows) WHERE NOT coalesce(({predicate}), false)",
            params={"tenant": f.tenant, "day": f.day.isoformat()},
        ).to_arrow_table()
    assert isinstance(kept, pa.Table)
    return kept.cast(rows.schema)
