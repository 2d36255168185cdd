"""Erasure and reading on the encrypted lake (``lake_encryption = "per_vehicle"``).

Erasing vehicles destroys their data keys (crypto.py, keys.py): from that moment no copy of
their files opens, in the lake or in any backup. Deleting the files themselves follows,
best-effort: at once when the region's maintenance lock is free, else by the next compaction
or retention run (:func:`drop_shredded`), and readers skip them meanwhile.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace

import pyarrow as pa

from drivetrain.cloud.lake.crypto import LakeCipher
from drivetrain.cloud.lake.erasure import ErasureResult
from drivetrain.cloud.lake.models import LakeFile, day_of_ns
from drivetrain.cloud.lake.query import TableScan
from drivetrain.cloud.lake.store import RegionStore
from drivetrain.core.errors import ConflictError

#: How long an erasure waits for a region's maintenance lock before leaving the (already
#: unreadable) files to the next maintenance run, seconds.
DELETE_WAIT_S = 2.0


@dataclass(frozen=True, slots=True)
class Shredding:
    """What a crypto-shredding erasure did: keys destroyed, the seconds that took (the
    key work), and per region the files deleted from disk."""

    keys_destroyed: int
    key_work_s: float
    regions: tuple[ErasureResult, ...]

    def results(self) -> list[ErasureResult]:
        """Per region, as the rewrite-based erasure reports; the first region's result
        carries the keys destroyed."""
        if not self.regions:
            return []
        first = replace(self.regions[0], keys_destroyed=self.keys_destroyed)
        return [first, *self.regions[1:]]


def shredded_files(cipher: LakeCipher, files: Sequence[LakeFile]) -> list[LakeFile]:
    """The encrypted ``files`` whose vehicle key is destroyed."""
    readable = cipher.readable([f.name for f in files])
    return [f for f in files if f.name not in readable]


def drop_shredded(store: RegionStore, tenant: str | None = None) -> tuple[int, int]:
    """Delete the files of ``store`` (of one ``tenant``) whose key is destroyed; returns
    (files, rows). The caller holds the region's maintenance lock.

    Raises:
        ConflictError: another process is rewriting one of them.
        StorageError: a file cannot be deleted.
    """
    if store.cipher is None:
        return 0, 0
    gone = shredded_files(store.cipher, store.index.live_files(store.region, tenant=tenant))
    by_tenant: dict[str, list[LakeFile]] = defaultdict(list)
    for f in gone:
        by_tenant[f.tenant].append(f)
    for owner, files in sorted(by_tenant.items()):
        # the index knows a removal as a retention op; recovery is the same
        store.replace("retention", files, owner, [], sorted_rows=False)
    return len(gone), sum(f.rows for f in gone)


def shred(
    cipher: LakeCipher, stores: Sequence[RegionStore], tenant: str, vehicles: Collection[str],
) -> Shredding:
    """Destroy the keys of ``vehicles`` of ``tenant``, then delete their files where the
    region's maintenance lock comes free within :data:`DELETE_WAIT_S`.

    Raises:
        StorageError: the key store cannot be written, or a file cannot be deleted.
    """
    started = time.perf_counter()
    destroyed = cipher.keys.destroy(tenant, vehicles)
    key_work_s = time.perf_counter() - started
    results = []
    for store in stores:
        files = rows = 0
        try:
            with store.maintenance(DELETE_WAIT_S):
                files, rows = drop_shredded(store, tenant)
        except ConflictError:
            pass  # unreadable already; the next compaction or retention run deletes them
        results.append(ErasureResult(store.region, files_scanned=0, files_rewritten=0,
                                     files_deleted=files, rows_removed=rows, files_busy=0))
    return Shredding(destroyed, key_work_s, tuple(results))


def encrypted_scan(
    cipher: LakeCipher, stores: Callable[[], Sequence[RegionStore]], tenant: str,
    start_ns: int | None, end_ns: int | None,
) -> Callable[[], TableScan]:
    """The source of a query on the encrypted lake: per region, the tenant's rows in the
    committed files overlapping [start_ns, end_ns) whose key still exists, decrypted.

    The rows are read into Arrow here, in the calling thread, rather than handed to DuckDB
    as a dataset it scans from its own threads: decrypting calls the key service (Python),
    and pyarrow starts a dataset scan holding the interpreter lock, which a decrypting I/O
    thread then waits for — a deadlock seen in the tests. So a query on the encrypted lake
    holds the decrypted rows of the days it reads in memory.
    """
    first = None if start_ns is None else day_of_ns(start_ns)
    last = None if end_ns is None else day_of_ns(end_ns - 1)

    def scan() -> TableScan:
        tables: dict[str, pa.Table] = {}
        for store in stores():
            files = store.index.live_files(store.region, tenant=tenant, first_day=first,
                                           last_day=last, start_ns=start_ns, end_ns=end_ns)
            readable = cipher.readable([f.name for f in files])
            paths = [str(store.path_of(f.name)) for f in files if f.name in readable]
            if paths:
                tables[store.region] = cipher.read_all(paths,
                                                       store.root / f"region={store.region}")
        return TableScan(tables)

    return scan
