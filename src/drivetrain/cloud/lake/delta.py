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

import time
from collections.abc import Sequence
from typing import Final

import pyarrow as pa
import pyarrow.dataset as ds
from deltalake import CommitProperties, DeltaTable, Transaction, WriterProperties, write_deltalake
from deltalake.exceptions import CommitFailedError, DeltaError, TableNotFoundError

from drivetrain.cloud.lake.rows import split_for_append
from drivetrain.cloud.lake.tables import TableAppend
from drivetrain.core.errors import StorageError

#: Partition columns of a region's table, in path order under ``region=<R>/``.
PARTITION_BY: Final = ["tenant", "date"]
_WRITER: Final = WriterProperties(compression="ZSTD", compression_level=1)
#: delta-rs' message when a winning commit carries one of our app ids.
_TXN_CONFLICT: Final = "Concurrent transaction"


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
    """

    def __init__(self, region: str, url: str, storage_options: dict[str, str],
                 batch_window_days: int) -> None:
        self.region = region
        self.url = url
        self._options = storage_options
        self._window_days = batch_window_days

    def _load(self, version: int | None = None) -> DeltaTable | None:
        try:
            return DeltaTable(self.url, version=version, storage_options=self._options)
        except TableNotFoundError:
            return None
        except (DeltaError, OSError) as e:
            raise StorageError(f"cannot open the lake table {self.url}: {e}") from e

    def version(self) -> int | None:
        table = self._load()
        return None if table is None else table.version()

    def committed_batches(self, tenant: str, batch_ids: Sequence[str]) -> set[str]:
        table = self._load()
        return set() if table is None else self._committed(table, tenant, batch_ids)

    @staticmethod
    def _committed(table: DeltaTable, tenant: str, batch_ids: Sequence[str]) -> set[str]:
        # delta-rs answers one app id at a time by replaying the log: ~8-28 ms per id on the
        # test S3 server, growing with the ids the table holds (docs/scale.md). This only
        # decides what to skip; the commit's conflict check is the guarantee.
        return {b for b in batch_ids if table.transaction_version(app_id(tenant, b)) is not None}

    def _create(self, schema: pa.Schema) -> DeltaTable:
        """The table, created empty (version 0, no app ids) if it does not exist yet.

        Every append then commits against a snapshot it loaded: were the first append to
        create the table itself, a second writer's "append" to the same URL would load the
        table the first one just made and commit after it without any conflict, storing a
        batch id both delivered twice.
        """
        try:
            DeltaTable.create(
                self.url, schema, mode="ignore", partition_by=PARTITION_BY,
                storage_options=self._options,
                configuration={"delta.setTransactionRetentionDuration":
                               f"interval {self._window_days} days"})
        except (DeltaError, OSError):
            pass  # another writer created it at the same moment; loading it tells
        table = self._load()
        if table is None:
            raise StorageError(f"cannot create the lake table {self.url}")
        return table

    def append(self, tenant: str, rows: pa.Table) -> TableAppend | None:
        ids = rows.column("batch_id").chunk(0).dictionary.to_pylist() if rows.num_rows else []
        snapshot = self._load()
        if snapshot is None:
            if not rows.num_rows:
                return TableAppend(split_for_append(rows, set()), None)
            snapshot = self._create(_table_schema(rows))
        plan = split_for_append(rows, self._committed(snapshot, tenant, ids))
        if not plan.slices:
            return TableAppend(plan, snapshot.version())
        ids = [b.batch_id for b in plan.batches]
        parts = []
        for s in plan.slices:
            n = s.table.num_rows
            parts.append(_plain(s.table)
                         .append_column("tenant", pa.array([tenant] * n, pa.utf8()))
                         .append_column("date", pa.array([s.day] * n, pa.date32())))
        data = pa.concat_tables(parts, promote_options="permissive")
        now_ms = int(time.time() * 1000)
        try:
            write_deltalake(
                snapshot, data, mode="append", partition_by=PARTITION_BY, schema_mode="merge",
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

    def delete_rows(self, predicate: str) -> int:
        table = self._load()
        if table is None:
            return 0
        try:
            metrics = table.delete(predicate)
            # Erasure must leave no copy: purge the files the delete replaced now, not after
            # the default week. A "lite" vacuum only considers files removed in the log, never
            # a concurrent writer's not-yet-committed files. Time travel to a version before
            # the delete then fails for those files (see docs/lake.md, crypto-shredding).
            table.vacuum(retention_hours=0, dry_run=False, enforce_retention_duration=False,
                         full=False)
        except (DeltaError, OSError) as e:
            raise StorageError(f"cannot delete from the lake table {self.url}: {e}") from e
        return int(metrics.get("num_deleted_rows", 0))

    def compact(self) -> tuple[int, int]:
        table = self._load()
        if table is None:
            return 0, 0
        try:
            metrics = table.optimize.compact(writer_properties=_WRITER)
        except (DeltaError, OSError) as e:
            raise StorageError(f"cannot compact the lake table {self.url}: {e}") from e
        return int(metrics.get("numFilesRemoved", 0)), int(metrics.get("numFilesAdded", 0))
