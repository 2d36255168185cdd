"""Erasure: remove every sample of some vehicles from a region's immutable Parquet files.

Parquet files are never edited in place, so erasing a vehicle rewrites each file that holds
any of its rows without them (a file left empty is deleted), swapping old for new through the
index exactly like a compaction (store.py): readers see the old file or the new one, never a
half-erased state, and the retired file is deleted from disk once the swap is committed.
Files are scanned by their ``vehicle`` column only (dictionary-encoded, so cheap); files
without a match are not touched. Batch ids stay remembered, so a late re-delivery of an
erased vehicle's old batch is skipped instead of bringing its data back.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from drivetrain.cloud.lake.compaction import read_lake_file, slice_of
from drivetrain.cloud.lake.crypto import key_id_of
from drivetrain.cloud.lake.store import RegionStore
from drivetrain.core.errors import ConflictError, StorageError


@dataclass(frozen=True, slots=True)
class ErasureResult:
    """What an erasure did in one region: files scanned, rewritten, deleted; rows removed;
    files another process was rewriting at the same moment (erase again to finish them);
    on the encrypted lake, the vehicle keys destroyed (shredding.py; counted once, in the
    first region's result)."""

    region: str
    files_scanned: int
    files_rewritten: int
    files_deleted: int
    rows_removed: int
    files_busy: int
    keys_destroyed: int = 0

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {"region": self.region, "files_scanned": self.files_scanned,
                "files_rewritten": self.files_rewritten, "files_deleted": self.files_deleted,
                "rows_removed": self.rows_removed, "files_busy": self.files_busy,
                "keys_destroyed": self.keys_destroyed}


def erase_vehicles(
    store: RegionStore,
    tenant: str,
    vehicles: Collection[str],
    *,
    progress: Callable[[int, int], None] | None = None,
) -> ErasureResult:
    """Remove every row of ``vehicles`` (pseudonyms) of ``tenant`` from ``store``'s files.

    The caller holds the region's maintenance lock.

    Raises:
        StorageError: a file cannot be read, written or deleted.
    """
    wanted = pa.array(sorted(set(vehicles)), pa.utf8())
    # encrypted files are erased by destroying their key (shredding.py), not rewritten
    files = [f for f in store.index.live_files(store.region, tenant=tenant)
             if key_id_of(f.name) is None]
    rewritten = deleted = removed = busy = 0
    for done, f in enumerate(files, start=1):
        try:
            column = pq.read_table(store.path_of(f.name), columns=["vehicle"]).column("vehicle")
        except (OSError, pa.ArrowInvalid) as e:
            raise StorageError(f"cannot read lake file {store.path_of(f.name)}: {e}") from e
        hits = pc.is_in(column.cast(pa.utf8()), value_set=wanted)
        count = pc.sum(hits).as_py() or 0
        if count:
            table = read_lake_file(store, f)
            keep = pc.invert(pc.is_in(table.column("vehicle").cast(pa.utf8()), value_set=wanted))
            kept = table.filter(keep)
            slices = [slice_of(kept, f)] if kept.num_rows else []
            try:
                # the index knows a removal rewrite as a retention op; recovery is the same
                store.replace("retention", [f], tenant, slices, sorted_rows=f.sorted)
            except ConflictError:
                busy += 1
            else:
                removed += count
                rewritten += bool(slices)
                deleted += not slices
        if progress is not None:
            progress(done, len(files))
    return ErasureResult(store.region, len(files), rewritten, deleted, removed, busy)
