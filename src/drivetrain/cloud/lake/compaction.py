"""Compaction: merge a partition's small files into larger ones sorted by (path, vehicle, ts).

Appends write one file per call and date, so a busy partition collects many small files, in
arrival order. Compaction rewrites them into files of up to ``target_rows`` rows, sorted so
that the Parquet row-group statistics of ``path`` and ``vehicle`` let DuckDB skip most row
groups of a query for one signal or one vehicle. The swap is atomic through the index (see
store.py): readers see the old files or the new ones, and batch ids are untouched, so a
re-delivered batch stays a duplicate after compaction.

``plan_compaction`` is pure; ``merge_sorted`` is the vectorised merge; ``compact_region`` does
the I/O.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq

from drivetrain.cloud.lake.crypto import key_id_of
from drivetrain.cloud.lake.keys import KeyDestroyedError
from drivetrain.cloud.lake.models import LAKE_SCHEMA, CompactionResult, LakeFile
from drivetrain.cloud.lake.rows import DaySlice
from drivetrain.cloud.lake.store import RegionStore
from drivetrain.core.errors import ConflictError, StorageError

#: Rows per compacted file (about 30-60 MB of Parquet for typical signals).
TARGET_FILE_ROWS: Final = 4_000_000


@dataclass(frozen=True, slots=True)
class CompactionGroup:
    """Files of one partition to merge into one sorted file."""

    tenant: str
    files: tuple[LakeFile, ...]

    @property
    def rows(self) -> int:
        """Total rows of the group."""
        return sum(f.rows for f in self.files)


def plan_compaction(
    files: Sequence[LakeFile], target_rows: int = TARGET_FILE_ROWS
) -> list[CompactionGroup]:
    """Groups of files to merge, per (tenant, date) partition — and per vehicle key on the
    encrypted lake, whose files each hold one vehicle's rows.

    A file is a candidate when it is unsorted or smaller than half of ``target_rows``.
    Candidates of a partition are packed, in order, into groups of at most ``target_rows``
    rows; a group of a single file is kept only if that file is unsorted (sorting it alone
    still helps queries).
    """
    if target_rows < 1:
        raise ValueError(f"target_rows={target_rows}; expected a positive number")
    partitions: dict[tuple[str, object, str | None], list[LakeFile]] = defaultdict(list)
    for f in files:
        if not f.sorted or f.rows < target_rows // 2:
            partitions[(f.tenant, f.day, key_id_of(f.name))].append(f)
    groups: list[CompactionGroup] = []
    for (tenant, _day, _key), candidates in sorted(partitions.items(), key=lambda kv: str(kv[0])):
        current: list[LakeFile] = []
        for f in candidates:
            if current and sum(c.rows for c in current) + f.rows > target_rows:
                groups.append(CompactionGroup(tenant, tuple(current)))
                current = []
            current.append(f)
        if current:
            groups.append(CompactionGroup(tenant, tuple(current)))
    return [g for g in groups if len(g.files) > 1 or not g.files[0].sorted]


def _ranks(column: pa.Array) -> npt.NDArray[np.int64]:
    """Per row, the rank of its dictionary value in sorted order (so codes sort as strings)."""
    values = np.array(column.dictionary.to_pylist(), dtype=object)
    order = np.argsort(values, kind="stable")
    rank: npt.NDArray[np.int64] = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order), dtype=np.int64)
    codes: npt.NDArray[np.int64] = rank[column.indices.to_numpy(zero_copy_only=False)]
    return codes


def merge_sorted(tables: Sequence[pa.Table]) -> pa.Table:
    """Concatenate lake tables and sort the rows by (path, vehicle, ts)."""
    table = pa.concat_tables([t.select(LAKE_SCHEMA.names) for t in tables])
    table = table.unify_dictionaries().combine_chunks()
    if table.num_rows == 0:
        return table
    path = table.column("path").chunk(0)
    vehicle = table.column("vehicle").chunk(0)
    vehicle_rank = _ranks(vehicle)
    key = _ranks(path) * (int(vehicle_rank.max()) + 1) + vehicle_rank
    ts = table.column("ts").chunk(0).view(pa.int64()).to_numpy(zero_copy_only=False)
    order = np.lexsort((ts, key))
    return table.take(pa.array(order))


def read_lake_file(store: RegionStore, f: LakeFile) -> pa.Table:
    """Read one committed file with the lake schema (decrypted on the encrypted lake).

    Raises:
        KeyDestroyedError: the file's vehicle key is destroyed (its vehicle was erased).
        StorageError: the file cannot be read.
    """
    try:
        if store.cipher is not None and key_id_of(f.name) is not None:
            return store.cipher.read(store.path_of(f.name))
        return pq.read_table(store.path_of(f.name), schema=LAKE_SCHEMA)
    except (OSError, pa.ArrowInvalid) as e:
        raise StorageError(f"cannot read lake file {store.path_of(f.name)}: {e}") from e


def slice_of(table: pa.Table, f: LakeFile) -> DaySlice:
    """A table of one partition as a slice to stage, with its statistics."""
    ts = table.column("ts").combine_chunks().view(pa.int64()).to_numpy(zero_copy_only=False)
    category = table.column("category").combine_chunks()
    counts = np.bincount(category.indices.to_numpy(zero_copy_only=False),
                         minlength=len(category.dictionary))
    names = category.dictionary.to_pylist()
    stats: dict[str, int] = {}
    for i in np.flatnonzero(counts):
        stats[names[i]] = stats.get(names[i], 0) + int(counts[i])
    return DaySlice(f.day, table, int(ts.min()), int(ts.max()), stats, key_id_of(f.name))


def compact_region(
    store: RegionStore,
    *,
    tenant: str | None = None,
    target_rows: int = TARGET_FILE_ROWS,
    progress: Callable[[int, int], None] | None = None,
) -> CompactionResult:
    """Merge the small files of every partition in ``store`` (or of one ``tenant``).

    ``progress(done, total)`` is called after each group. A group another process is
    compacting at the same time is skipped (it will be done by that process).

    Raises:
        StorageError: a file cannot be read or written.
    """
    groups = plan_compaction(store.index.live_files(store.region, tenant=tenant), target_rows)
    partitions, files_before, files_after, rows, bytes_before, bytes_after = set(), 0, 0, 0, 0, 0
    for done, group in enumerate(groups, start=1):
        new = merged = None
        try:
            merged = merge_sorted([read_lake_file(store, f) for f in group.files])
            new = store.replace("compact", group.files, group.tenant,
                                [slice_of(merged, group.files[0])], sorted_rows=True)
        except KeyDestroyedError:
            pass  # the group's vehicle was erased meanwhile: its files go, not merge
        except ConflictError:
            pass  # another process took this group
        if new is not None and merged is not None:
            partitions.add((group.tenant, group.files[0].day))
            files_before += len(group.files)
            files_after += len(new)
            rows += merged.num_rows
            bytes_before += sum(f.bytes for f in group.files)
            bytes_after += sum(f.bytes for f in new)
        if progress is not None:
            progress(done, len(groups))
    return CompactionResult(store.region, len(partitions), files_before, files_after, rows,
                            bytes_before, bytes_after)
