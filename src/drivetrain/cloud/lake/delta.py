"""A region's telemetry as a Delta Lake table (delta-rs through the ``deltalake`` package).

Exactly-once per batch id, across processes and hosts: every append carries one Delta *app
transaction* (``txn`` action) per batch id, app id ``<tenant>/<batch_id>``, version 1. An
append first asks the snapshot it loaded which ids it already holds and writes only the rest,
committing **against that same snapshot**: a concurrent commit that is a plain append is
rebased by delta-rs, but one that carries any of our app ids makes the commit fail with
"Concurrent transaction" (delta-rs' conflict checker compares the winning commits' app ids with
ours), and :meth:`DeltaRegionTable.append` returns None so the lake re-plans without them.
The commit is the atomic put-if-absent of ``_delta_log/<version>.json`` in the object store —
S3 conditional writes (``If-None-Match``), Azure and GCS preconditions, a rename on a local
filesystem — so no lock service and no local database take part.

The ``delta.setTransactionRetentionDuration`` of the table is the lake's re-delivery window
(``lake_batch_window_days``): app ids older than that are dropped when a checkpoint is
written, like the embedded index forgets batch ids at retention.

Delta timestamps are microseconds (the protocol's ``timestamp`` type): the ``ts`` column keeps
its nanosecond type in memory and in query results, but digits below a microsecond are not
stored. Strings are stored plain (Parquet dictionary pages still encode them).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from datetime import date
from typing import Any, Final
from urllib.parse import urlsplit
from urllib.request import url2pathname

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from deltalake import CommitProperties, DeltaTable, Transaction, WriterProperties, write_deltalake
from deltalake.exceptions import CommitFailedError, DeltaError, TableNotFoundError

from drivetrain.cloud.lake.delta_txns import TxnLog
from drivetrain.cloud.lake.rows import AppendPlan, split_for_append
from drivetrain.cloud.lake.tables import Compacted, TableAppend, TableFile
from drivetrain.core.errors import ConfigurationError, StorageError

#: Partition columns of a region's table, in path order under ``region=<R>/``.
PARTITION_BY: Final = ["tenant", "date"]
_WRITER: Final = WriterProperties(compression="ZSTD", compression_level=1)
#: delta-rs' message when a winning commit carries one of our app ids.
_TXN_CONFLICT: Final = "Concurrent transaction"
#: Hours after which compaction deletes a data file no table version names (an upload of a
#: writer killed before its commit).
ORPHAN_HOURS: Final = 24
#: How often maintenance (optimize, delete) retries a commit a concurrent writer beat.
_MAINTENANCE_ATTEMPTS: Final = 5
#: The description of a table whose data files are encrypted per vehicle
#: (delta_encrypted.py), set when the table is created: the mark readers check (delta-rs
#: refuses table properties it does not know).
ENCRYPTED_DESCRIPTION: Final = "drivetrain lake: data files encrypted per vehicle " \
    "(Parquet modular encryption; lake_encryption = per_vehicle)"


def app_id(tenant: str, batch_id: str) -> str:
    """The Delta app-transaction id of ``batch_id`` of ``tenant``."""
    return f"{tenant}/{batch_id}"


def _table_schema(rows: pa.Table) -> pa.Schema:
    """The stored schema of ``rows``: plain strings, then the partition columns."""
    return _plain(rows.slice(0, 0)).schema.append(pa.field("tenant", pa.utf8())) \
        .append(pa.field("date", pa.date32()))


def _stored_type(type_: pa.DataType) -> pa.DataType:
    if pa.types.is_dictionary(type_):
        return type_.value_type
    if pa.types.is_timestamp(type_):  # Delta's timestamp is microseconds (no timestampNanos)
        return pa.timestamp("us", tz=type_.tz)
    return type_


def _plain(table: pa.Table) -> pa.Table:
    """``table`` in the table's stored types: plain strings, microsecond timestamps (digits
    below a microsecond cut off)."""
    fields = [pa.field(f.name, _stored_type(f.type), f.nullable) for f in table.schema]
    return table.cast(pa.schema(fields), safe=False)


class DeltaRegionTable:
    """The Delta table of one region at ``url`` (``storage_options``: the object store's
    settings, e.g. ``AWS_ENDPOINT_URL``; credentials come from the environment).

    Raises (every method):
        StorageError: the table cannot be read or written.
        ConfigurationError: the table was created encrypted (delta_encrypted.py) and this
            lake is not, or the other way round.
    """

    #: whether its data files are encrypted per vehicle (delta_encrypted.py)
    encrypted: bool = False

    def __init__(self, region: str, url: str, storage_options: dict[str, str],
                 batch_window_days: int, *, checkpoint: Callable[[str], None] | None = None
                 ) -> None:
        self.region = region
        self.url = url
        self._options = storage_options
        self._window_days = batch_window_days
        # told each step of an append (crash tests kill the process at one)
        self._checkpoint = checkpoint or (lambda step: None)
        self._txns = TxnLog(url, storage_options)

    def _load(self, version: int | None = None) -> DeltaTable | None:
        try:
            table = DeltaTable(self.url, version=version, storage_options=self._options)
            encrypted = table.metadata().description == ENCRYPTED_DESCRIPTION
        except TableNotFoundError:
            return None
        except (DeltaError, OSError) as e:
            raise StorageError(f"cannot open the lake table {self.url}: {e}") from e
        if encrypted != self.encrypted:
            raise ConfigurationError(
                f"the lake table {self.url} was created "
                f"{'encrypted per vehicle' if encrypted else 'plain'}; set lake_encryption = "
                f"{'per_vehicle' if encrypted else 'off'!r} for it, or use another lake_url "
                "(a table never mixes plain and encrypted files)")
        return table

    def version(self) -> int | None:
        table = self._load()
        return None if table is None else table.version()

    def committed_batches(self, tenant: str, batch_ids: Sequence[str]) -> set[str]:
        table = self._load()
        return set() if table is None else self._committed(table, tenant, batch_ids)

    def _committed(self, table: DeltaTable, tenant: str, batch_ids: Sequence[str]) -> set[str]:
        """The ``batch_ids`` committed in ``table``'s version (or later). Must not miss one:
        the commit's conflict check only covers the commits made after this snapshot."""
        apps = {app_id(tenant, b): b for b in batch_ids}
        found = self._txns.committed(table.version(), list(apps), _retention_ms(table))
        if found is not None:
            return {apps[a] for a in found}
        # delta-rs answers one app id at a time by replaying the log: ~8-28 ms per id on the
        # test S3 server, growing with the ids the table holds (docs/scale.md)
        return {b for b in batch_ids if table.transaction_version(app_id(tenant, b)) is not None}

    def _create(self, schema: pa.Schema) -> DeltaTable:
        """The table, created empty (version 0, no app ids) if it does not exist yet.

        Every append then commits against a snapshot it loaded: were the first append to
        create the table itself, a second writer's "append" to the same URL would load the
        table the first one just made and commit after it without any conflict, storing a
        batch id both delivered twice.
        """
        configuration = {"delta.setTransactionRetentionDuration":
                         f"interval {self._window_days} days"}
        try:
            DeltaTable.create(
                self.url, schema, mode="ignore", partition_by=PARTITION_BY,
                storage_options=self._options, configuration=configuration,
                description=ENCRYPTED_DESCRIPTION if self.encrypted else None)
        except (DeltaError, OSError):
            pass  # another writer created it at the same moment; loading it tells
        table = self._load()
        if table is None:
            raise StorageError(f"cannot create the lake table {self.url}")
        return table

    def _plan(self, tenant: str, rows: pa.Table) -> tuple[DeltaTable | None, AppendPlan]:
        """The snapshot an append commits against (the table created if need be; None for
        no rows and no table) and the append cut without the batch ids it already holds."""
        ids = rows.column("batch_id").chunk(0).dictionary.to_pylist() if rows.num_rows else []
        snapshot = self._load()
        if snapshot is None:
            if not rows.num_rows:
                return None, split_for_append(rows, set())
            snapshot = self._create(_table_schema(rows))
        return snapshot, split_for_append(rows, self._committed(snapshot, tenant, ids))

    def append(self, tenant: str, rows: pa.Table) -> TableAppend | None:
        snapshot, plan = self._plan(tenant, rows)
        if snapshot is None or not plan.slices:
            return TableAppend(plan, None if snapshot is None else snapshot.version())
        ids = [b.batch_id for b in plan.batches]
        parts = []
        for s in plan.slices:
            n = s.table.num_rows
            parts.append(_plain(s.table)
                         .append_column("tenant", pa.array([tenant] * n, pa.utf8()))
                         .append_column("date", pa.array([s.day] * n, pa.date32())))
        data = pa.concat_tables(parts, promote_options="permissive")
        now_ms = int(time.time() * 1000)
        self._checkpoint("append.planned")

        def handed_over() -> Iterator[pa.RecordBatch]:
            yield from data.to_batches()
            self._checkpoint("append.writing")  # all rows in delta-rs, nothing committed

        try:
            write_deltalake(
                snapshot, pa.RecordBatchReader.from_batches(data.schema, handed_over()),
                mode="append", partition_by=PARTITION_BY, schema_mode="merge",
                writer_properties=_WRITER,
                commit_properties=CommitProperties(
                    # lastUpdated lets the retention duration expire the id after the window
                    app_transactions=[Transaction(app_id(tenant, b), 1, now_ms) for b in ids]),
            )
        except CommitFailedError as e:
            if _TXN_CONFLICT in str(e):
                # one of our batch ids won elsewhere: nothing of ours is stored, the caller
                # tries again on the new snapshot
                return None
            raise StorageError(f"cannot commit to the lake table {self.url}: {e}") from e
        except (DeltaError, OSError) as e:
            raise StorageError(f"cannot append to the lake table {self.url}: {e}") from e
        self._checkpoint("append.committed")
        after = self._load()
        return TableAppend(plan, None if after is None else after.version())

    def dataset(self, version: int | None = None) -> ds.Dataset | None:
        table = self._load(version)
        if table is None:
            return None
        try:
            return table.to_pyarrow_dataset()
        except (DeltaError, OSError) as e:
            raise StorageError(f"cannot read the lake table {self.url}: {e}") from e

    def delete_rows(self, predicate: str, *, files: Collection[str] | None = None) -> int:
        """Delete the rows matching ``predicate`` (``files``: a hint of where they can be,
        unused here: delta-rs prunes by the file statistics itself)."""
        def delete(table: DeltaTable) -> int:
            return int(table.delete(predicate).get("num_deleted_rows", 0))

        deleted = int(self._retrying("delete from", delete) or 0)
        # Erasure and retention must leave no copy: purge the files the delete replaced now,
        # not after the default week (time travel to a version before the delete then fails
        # for those files; docs/lake.md).
        self._purge_replaced(0)
        return deleted

    def _purge_replaced(self, hours: int) -> int:
        """Delete from storage the files the log removed more than ``hours`` ago: a "lite"
        vacuum, which never considers a concurrent writer's not-yet-committed files."""
        purged = self._retrying("vacuum", lambda table: table.vacuum(
            retention_hours=hours, dry_run=False, enforce_retention_duration=False, full=False))
        return len(purged or [])

    def files(self, tenant: str | None = None) -> list[TableFile]:
        """The data files of the latest version (of ``tenant`` only, if given)."""
        table = self._load()
        return [] if table is None else _files_of(table, tenant)

    def dataset_of(self, names: Collection[str]) -> ds.Dataset | None:
        """A dataset of exactly the files ``names`` (as :meth:`files` names them) of the
        latest version, with ``tenant`` and ``date`` columns; None before the first append."""
        dataset = self.dataset()
        if dataset is None:
            return None
        wanted = set(names)
        assert isinstance(dataset, ds.FileSystemDataset)
        fragments = [f for f in dataset.get_fragments() if f.path in wanted]
        return ds.FileSystemDataset(fragments, dataset.schema, dataset.format,
                                    dataset.filesystem)

    def _retrying(self, what: str, operation: Any) -> Any:
        """``operation(table)`` on a freshly loaded table, again when a concurrent commit
        conflicted with it (a delete or optimize touching the files it rewrote)."""
        last: Exception | None = None
        for _ in range(_MAINTENANCE_ATTEMPTS):
            table = self._load()
            if table is None:
                return None
            try:
                return operation(table)
            except CommitFailedError as e:
                last = e
            except (DeltaError, OSError) as e:
                raise StorageError(f"cannot {what} the lake table {self.url}: {e}") from e
        raise StorageError(f"cannot {what} the lake table {self.url}: concurrent commits kept "
                           f"conflicting ({last})")

    def compact(self, tenant: str | None = None, *, target_bytes: int | None = None,
                keep_replaced_hours: int = 168) -> Compacted:
        """Merge small files (of ``tenant``'s partitions only, if given) into files of about
        ``target_bytes`` (delta-rs' default, 100 MiB, without one), then delete from storage
        the files compactions replaced more than ``keep_replaced_hours`` ago (a "lite"
        vacuum: only files the log removed, never a writer's uncommitted ones), and data
        files no version names that are older than ``ORPHAN_HOURS`` (and than
        ``keep_replaced_hours``).

        Replaced files stay that long because a reader that listed them before the commit
        (a running query or Spark job) and time travel to older versions still open them.
        App transactions are table state, not files: batch ids stay committed.
        """
        before = {f.name: f for f in self.files(tenant)}

        def optimize(table: DeltaTable) -> dict[str, Any]:
            filters = None if tenant is None else [("tenant", "=", tenant)]
            return table.optimize.compact(partition_filters=filters, target_size=target_bytes,
                                          writer_properties=_WRITER)

        metrics = self._retrying("compact", optimize) or {}
        after = {f.name for f in self.files(tenant)}
        gone = [f for name, f in before.items() if name not in after]

        purged = self._purge_replaced(keep_replaced_hours)
        orphans = self._vacuum_orphans(keep_replaced_hours)
        return Compacted(
            files_removed=int(metrics.get("numFilesRemoved", 0)),
            files_added=int(metrics.get("numFilesAdded", 0)),
            bytes_removed=_total_size(metrics.get("filesRemoved")),
            bytes_added=_total_size(metrics.get("filesAdded")),
            rows=sum(f.rows for f in gone),
            partitions=int(metrics.get("partitionsOptimized", 0)),
            files_purged=purged,
            orphans_purged=orphans,
        )

    def _vacuum_orphans(self, keep_replaced_hours: int) -> int:
        """Delete data files no version names older than ``ORPHAN_HOURS`` (and than
        ``keep_replaced_hours``): the uploads of writers killed before their commit. A full
        vacuum, one listing of the whole table; a younger file may be a running append's."""
        orphans = self._retrying("vacuum", lambda table: table.vacuum(
            retention_hours=max(keep_replaced_hours, ORPHAN_HOURS), dry_run=False,
            enforce_retention_duration=False, full=True))
        return len(orphans or [])

    def checkpoint(self) -> None:
        """Write a checkpoint of the latest version, so later look-ups replay less of the log.
        App ids older than ``delta.setTransactionRetentionDuration`` (the re-delivery window)
        are already ignored when delta-rs reads the log; the checkpoint leaves them out."""
        self._retrying("checkpoint", lambda table: table.create_checkpoint())


def _retention_ms(table: DeltaTable) -> int | None:
    """The table's ``delta.setTransactionRetentionDuration`` in ms (as the lake sets it,
    ``interval N days``); None (never expire) for a value in another form."""
    value = table.metadata().configuration.get("delta.setTransactionRetentionDuration") or ""
    match = re.fullmatch(r"\s*interval\s+(\d+)\s+days?\s*", value)
    return None if match is None else int(match.group(1)) * 86_400_000


def _total_size(stats: object) -> int:
    """``totalSize`` of an optimize metric (delta-rs gives it as a JSON string)."""
    if isinstance(stats, str):
        import json

        stats = json.loads(stats)
    return int(stats.get("totalSize", 0)) if isinstance(stats, dict) else 0


def _files_of(table: DeltaTable, tenant: str | None) -> list[TableFile]:
    actions = pa.table(table.get_add_actions(flatten=True))
    if actions.num_rows == 0 or "partition.tenant" not in actions.column_names:
        return []  # no file yet (the table as created before its first append)
    if tenant is not None:
        actions = actions.filter(pc.field("partition.tenant") == tenant)
    root = table.table_uri.rstrip("/")
    if root.startswith("file://"):  # a local table: readers open plain paths, as file_uris()
        root = url2pathname(urlsplit(root).path)
    columns = {name: actions.column(name).to_pylist() if name in actions.column_names
               else [None] * actions.num_rows
               for name in ("path", "size_bytes", "num_records", "partition.tenant",
                            "partition.date", "min.ts", "max.ts")}
    files = []
    for i, name in enumerate(columns["path"]):
        low, high = columns["min.ts"][i], columns["max.ts"][i]
        files.append(TableFile(
            name=name, uri=f"{root}/{name}", tenant=str(columns["partition.tenant"][i]),
            day=_day(columns["partition.date"][i]), rows=int(columns["num_records"][i] or 0),
            bytes=int(columns["size_bytes"][i] or 0),
            # Delta statistics keep timestamps to the millisecond: widen the maximum to the
            # end of its millisecond, so a time filter never drops a file it needs
            min_ts_ns=0 if low is None else _ns(low),
            max_ts_ns=(1 << 63) - 1 if high is None else _ns(high) + 999_999,
        ))
    return files


def _day(value: object) -> date:
    if not isinstance(value, date):
        raise StorageError(f"a lake table file has the date partition {value!r}; expected a date")
    return value


def _ns(moment: Any) -> int:
    """Nanoseconds since the epoch of a statistics timestamp (a microsecond datetime)."""
    return int(pa.scalar(moment, pa.timestamp("us", tz="UTC")).cast(pa.int64()).as_py()) * 1000
