"""The lake's public face: :class:`Lake` — append, query, compact, expire, export.

One ``Lake`` serves every region; each region has its own storage root (``lake_roots`` in the
settings, default ``<data_dir>/lake/<region>``) with its own index, and nothing of one region
is ever written under another's root. Tenants are a partition level, so every query names its
tenant and reads only that tenant's files.

With ``lake_url`` set, each region is instead one table of an open table format on object
storage (``tables.py``, ``delta.py``): appends, queries, erasure, time travel, compaction,
retention and export go through the region's table, whose commits are atomic across hosts
(``table_maintenance.py``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Final, Self, cast

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from drivetrain.cloud.lake import query
from drivetrain.cloud.lake.compaction import TARGET_FILE_ROWS, compact_region
from drivetrain.cloud.lake.confinement import literal
from drivetrain.cloud.lake.crypto import LakeCipher
from drivetrain.cloud.lake.erasure import ErasureResult, erase_vehicles
from drivetrain.cloud.lake.export import BundleManifest, local_files, write_bundle
from drivetrain.cloud.lake.index import INDEX_FILE
from drivetrain.cloud.lake.keys import KEYS_DIR, KeyService, LocalKeyService
from drivetrain.cloud.lake.models import (
    AppendResult,
    CompactionResult,
    LakeFile,
    RetentionAction,
    RetentionReport,
    day_of_ns,
    parse_aggregation,
    parse_every,
    parse_group_by,
    parse_lake_region,
    parse_tenant,
    time_range_ns,
)
from drivetrain.cloud.lake.retention import RetentionPolicy, apply_retention, batch_horizon
from drivetrain.cloud.lake.rows import normalize_rows, split_for_append
from drivetrain.cloud.lake.shredding import (
    Shredding,
    drop_shredded,
    encrypted_scan,
    shred,
    shredded_files,
)
from drivetrain.cloud.lake.store import Checkpoint, RegionStore
from drivetrain.cloud.lake.table_maintenance import (
    KEEP_REPLACED_HOURS,
    apply_table_retention,
    compact_table,
    lake_file,
    table_files_opener,
)
from drivetrain.cloud.lake.tables import (
    EncryptedTable,
    RegionTable,
    TableFile,
    open_region_table,
)
from drivetrain.core.errors import BadInputError, ConfigurationError, QueryError, StorageError
from drivetrain.core.regions import REGIONS
from drivetrain.core.settings import Settings

#: Days a batch id is remembered after its last sample's day (``lake_batch_window_days``).
DEFAULT_BATCH_WINDOW_DAYS: Final = 35
#: How often an append re-plans when another writer committed one of its batch ids first.
_APPEND_ATTEMPTS: Final = 5
#: Most rows a raw SQL query may return.
SQL_MAX_ROWS: Final = 1_000_000
#: Longest a raw SQL query may run, seconds.
SQL_TIMEOUT_S: Final = 60.0

COUNTS_SCHEMA: Final = pa.schema([
    pa.field("region", pa.utf8()), pa.field("category", pa.utf8()),
    pa.field("rows", pa.int64()), pa.field("files", pa.int64()),
])


def _check_roots(roots: Mapping[str, Path]) -> dict[str, Path]:
    checked: dict[str, Path] = {}
    for region, root in roots.items():
        try:
            parse_lake_region(region)
        except BadInputError as e:
            raise ConfigurationError(f"lake_roots: {e}") from None
        checked[region] = Path(root).expanduser().resolve()
    items = sorted(checked.items())
    for i, (region_a, a) in enumerate(items):
        for region_b, b in items[i + 1:]:
            if a == b or a.is_relative_to(b) or b.is_relative_to(a):
                raise ConfigurationError(
                    f"lake_roots: the roots of {region_a} ({a}) and {region_b} ({b}) overlap; "
                    "each region needs a root of its own so its data never lands under "
                    "another's"
                )
    return checked


class Lake:
    """The telemetry lake over every region's storage root.

    Args:
        data_dir: where default roots live (``<data_dir>/lake/<region>``).
        roots: storage root per region, overriding the default.
        retention: the retention policy (default: keep everything).
        checkpoint: optional hook told each step of a write (crash tests).
        query_threads: DuckDB threads per query (default: all cores).
        batch_window_days: how long a batch id is remembered after the day of its last
            sample, so that its re-delivery is skipped (see ``apply_retention``).
        tables: the table-format backend: the table of a region (``Lake.open`` passes one
            when ``lake_url`` is set); None keeps the embedded Parquet lake under the roots.
        keys: the per-vehicle data keys of the encrypted lake (``Lake.open`` passes the
            local key service when ``lake_encryption = "per_vehicle"``); None: plain files.

    Raises:
        ConfigurationError: an unknown region in ``roots``, or two regions whose roots overlap.
    """

    def __init__(
        self,
        data_dir: Path,
        roots: Mapping[str, Path] | None = None,
        retention: RetentionPolicy | None = None,
        *,
        checkpoint: Checkpoint | None = None,
        query_threads: int | None = None,
        batch_window_days: int = DEFAULT_BATCH_WINDOW_DAYS,
        tables: Callable[[str], RegionTable] | None = None,
        keys: KeyService | None = None,
    ) -> None:
        self._keys = keys
        self._cipher = None if keys is None else LakeCipher(keys)
        if batch_window_days < 1:
            raise ValueError(f"batch_window_days={batch_window_days}; expected at least 1")
        self.batch_window_days = batch_window_days
        self.data_dir = Path(data_dir).expanduser().resolve()
        configured = _check_roots(roots or {})
        self._roots: dict[str, Path] = {
            r: configured.get(r, self.data_dir / "lake" / r) for r in REGIONS
        }
        _check_roots(self._roots)
        self.retention = retention or RetentionPolicy()
        self._checkpoint = checkpoint
        self._threads = query_threads
        self._stores: dict[str, RegionStore] = {}
        self._table_of = tables
        self._tables: dict[str, RegionTable] = {}
        self._lock = threading.Lock()

    @classmethod
    def open(cls, settings: Settings, **kwargs: object) -> Lake:
        """The lake configured by ``settings`` (``lake_roots``, ``lake_retention_days``).

        Raises:
            ConfigurationError: unusable roots or retention keys.
        """
        try:
            policy = RetentionPolicy.from_mapping(settings.lake_retention_days)
        except BadInputError as e:
            raise ConfigurationError(f"lake_retention_days: {e}") from None
        kwargs.setdefault("batch_window_days", settings.lake_batch_window_days)
        if settings.lake_encryption == "per_vehicle" and "keys" not in kwargs:
            kwargs["keys"] = LocalKeyService(settings.data_dir / KEYS_DIR)
        if settings.lake_url is not None and "tables" not in kwargs:
            url, table_format = settings.lake_url, settings.lake_table_format
            options, window = dict(settings.lake_storage_options), settings.lake_batch_window_days
            hook = kwargs.get("checkpoint")
            keys = kwargs.get("keys")
            cipher = None if keys is None else LakeCipher(keys)  # type: ignore[arg-type]

            def tables(region: str) -> RegionTable:
                return open_region_table(table_format, url, region, options,
                                         batch_window_days=window, cipher=cipher,
                                         checkpoint=hook)  # type: ignore[arg-type]

            tables("EU")  # a bad URL or a missing library fails at start-up, not mid-ingest
            kwargs["tables"] = tables
        return cls(settings.data_dir, settings.lake_roots, policy, **kwargs)  # type: ignore[arg-type]

    # --- the table-format backend -----------------------------------------------------------------
    @property
    def encrypted(self) -> bool:
        """True when each vehicle's rows are encrypted under its own key
        (``lake_encryption = "per_vehicle"``)."""
        return self._cipher is not None

    @property
    def table_format(self) -> bool:
        """True when the lake is the table-format backend (``lake_url``)."""
        return self._table_of is not None

    def table(self, region: str) -> RegionTable:
        """The table of ``region`` on the table-format backend.

        Raises:
            ConfigurationError: the lake is the embedded one (no ``lake_url``).
        """
        region = parse_lake_region(region)
        if self._table_of is None:
            raise ConfigurationError(
                "the lake has no tables: set lake_url (and lake_table_format) to keep it on "
                "object storage; the embedded lake is files under lake_roots"
            )
        with self._lock:
            table = self._tables.get(region)
            if table is None:
                table = self._table_of(region)
                if table.encrypted != (self._cipher is not None):
                    raise ConfigurationError(
                        f"the lake table {table.url} is {'' if table.encrypted else 'not '}"
                        "encrypted per vehicle but lake_encryption is "
                        f"{'off' if self._cipher is None else 'per_vehicle'}: open the "
                        "tables with the lake's key service (Lake.open does)")
                self._tables[region] = table
            return table

    def table_version(self, region: str) -> int | None:
        """The latest version of ``region``'s table (None before its first append)."""
        return self.table(region).version()

    def _table_scan(
        self, tenant: str, regions: Iterable[str] | None, start_ns: int | None,
        end_ns: int | None, as_of: Mapping[str, int] | None = None,
    ) -> Callable[[], query.TableScan]:
        """The source of a query on the tables: per region, the tenant's rows of the days
        [start_ns, end_ns) touches (at the ``as_of`` versions). Encrypted tables are read
        into Arrow here (shredding.py says why), others scanned lazily."""
        wanted = list(REGIONS) if regions is None else [parse_lake_region(r) for r in regions]
        if as_of is not None:
            unknown = sorted(set(as_of) - set(wanted))
            if unknown:
                raise QueryError(f"as_of names regions {unknown} the query does not read")
        condition = pc.field("tenant") == tenant
        if start_ns is not None:
            condition &= pc.field("date") >= pa.scalar(day_of_ns(start_ns), pa.date32())
        if end_ns is not None:
            condition &= pc.field("date") <= pa.scalar(day_of_ns(end_ns - 1), pa.date32())

        def scan() -> query.TableScan:
            datasets: dict[str, ds.Dataset | pa.Table] = {}
            for region in wanted:
                version = None if as_of is None else as_of.get(region)
                table = self.table(region)
                dataset = table.dataset(version)
                if dataset is None:
                    continue
                if table.encrypted:
                    try:
                        datasets[region] = dataset.to_table(filter=condition)
                    except (OSError, pa.ArrowException) as e:
                        raise StorageError(f"cannot read the lake table {table.url}: {e}") \
                            from e
                else:
                    datasets[region] = dataset.filter(condition)
            return query.TableScan(datasets)

        return scan

    # --- roots and stores -------------------------------------------------------------------------
    def root_of(self, region: str) -> Path:
        """The storage root of ``region``; raises :class:`BadInputError` for an unknown one."""
        return self._roots[parse_lake_region(region)]

    def regions(self) -> list[str]:
        """Regions that hold data (their root has an index, or their table exists)."""
        if self._table_of is not None:
            return [r for r in REGIONS if self.table(r).version() is not None]
        return [r for r in REGIONS if (self._roots[r] / INDEX_FILE).is_file()]

    def _store(self, region: str, *, create: bool) -> RegionStore | None:
        region = parse_lake_region(region)
        with self._lock:
            store = self._stores.get(region)
            if store is None:
                root = self._roots[region]
                if not create and not (root / INDEX_FILE).is_file():
                    return None
                store = RegionStore(region, root, checkpoint=self._checkpoint, create=True,
                                    cipher=self._cipher)
                self._stores[region] = store
            return store

    def _writable(self, region: str) -> RegionStore:
        store = self._store(region, create=True)
        assert store is not None
        return store

    def _readable(self, regions: Iterable[str] | None) -> list[RegionStore]:
        wanted = list(REGIONS) if regions is None else [parse_lake_region(r) for r in regions]
        return [s for r in wanted if (s := self._store(r, create=False)) is not None]

    def region_stores(self, regions: Iterable[str] | None = None) -> list[RegionStore]:
        """The stores of ``regions`` (default: every region) that hold data, on the embedded
        lake — for maintenance run by an outside engine (the Spark jobs of cloud/batch).

        Raises:
            ConfigurationError: the lake is the table-format one, or it is encrypted.
        """
        if self._table_of is not None or self._cipher is not None:
            raise ConfigurationError(
                "this maintenance runs on the plain embedded lake only; the table-format lake "
                "(lake_url) and the encrypted lake (lake_encryption = 'per_vehicle') are "
                "maintained by `drivetrain lake compact|retention`")
        return self._readable(regions)

    def close(self) -> None:
        """Release writer locks and close every index."""
        with self._lock:
            stores, self._stores = list(self._stores.values()), {}
        for store in stores:
            store.close()
        if self._keys is not None:
            self._keys.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- writing ----------------------------------------------------------------------------------
    def append(self, region: str, tenant: str, table: pa.Table) -> AppendResult:
        """Store the samples of ``table`` (the lake's row columns) for ``tenant`` in ``region``.

        Idempotent per batch id: rows of a batch id already committed for the tenant are
        skipped and reported, also after compaction and after a crash at any point of an
        earlier append. A batch id's rows must all come in one call. Rows may span many batch
        ids, vehicles and dates (one file per date is written).

        Raises:
            BadInputError: unknown region or bad tenant id.
            TelemetrySchemaError: the table breaks the row schema (nothing is stored).
            StorageError: the files or the index cannot be written.
        """
        region = parse_lake_region(region)
        tenant = parse_tenant(tenant)
        rows = normalize_rows(table)
        if self._table_of is not None:
            return self._append_to_table(region, tenant, rows)
        store = self._writable(region)
        batch_ids = rows.column("batch_id").chunk(0).dictionary.to_pylist() if rows.num_rows \
            else []
        for _ in range(_APPEND_ATTEMPTS):
            committed = store.index.committed_batches(tenant, batch_ids)
            plan = split_for_append(rows, committed)
            if self._cipher is not None:  # one file per vehicle, under its key
                plan = replace(plan, slices=tuple(self._cipher.per_vehicle(tenant,
                                                                           plan.slices)))
            files = store.append(tenant, plan) if plan.slices else []
            if files is not None:
                return AppendResult(
                    region=region, tenant=tenant,
                    rows_written=sum(f.rows for f in files),
                    rows_skipped=plan.skipped_rows,
                    batches_written=tuple(sorted(b.batch_id for b in plan.batches)),
                    batches_skipped=plan.skipped_batches,
                    files=tuple(f.name for f in files),
                    bytes_written=sum(f.bytes for f in files),
                )
        raise StorageError(f"append to {region}/{tenant} kept colliding with concurrent writers "
                           f"of the same batch ids ({_APPEND_ATTEMPTS} attempts)")

    def _append_to_table(self, region: str, tenant: str, rows: pa.Table) -> AppendResult:
        table = self.table(region)
        for _ in range(_APPEND_ATTEMPTS):
            done = table.append(tenant, rows)
            if done is not None:
                plan = done.plan
                return AppendResult(
                    region=region, tenant=tenant,
                    rows_written=sum(s.table.num_rows for s in plan.slices),
                    rows_skipped=plan.skipped_rows,
                    batches_written=tuple(sorted(b.batch_id for b in plan.batches)),
                    batches_skipped=plan.skipped_batches,
                    # the table names its files in the commit; the result names the table
                    files=(f"{table.url}@v{done.version}",) if plan.slices else (),
                    bytes_written=sum(s.table.nbytes for s in plan.slices),
                )
        raise StorageError(f"append to {table.url} ({tenant}) kept colliding with concurrent "
                           f"writers of the same batch ids ({_APPEND_ATTEMPTS} attempts)")

    def compact(
        self,
        region: str | None = None,
        *,
        tenant: str | None = None,
        target_rows: int = TARGET_FILE_ROWS,
        progress: Callable[[str, int, int], None] | None = None,
        keep_replaced_hours: int = KEEP_REPLACED_HOURS,
    ) -> list[CompactionResult]:
        """Merge small files into sorted files of up to ``target_rows`` rows, in ``region``
        (default: every region with data), optionally of one ``tenant``.

        ``progress(region, done, total)`` is called after each merged group. A retention run
        or another compaction of the same region, here or in another process, is waited for
        (the region's maintenance lock). On the table-format lake it is the table's optimize
        (files about ``target_rows`` rows, kept in arrival order), and files compactions
        replaced more than ``keep_replaced_hours`` ago are deleted from storage.

        Raises:
            ConflictError: another maintenance run held the region for longer than an hour.
            StorageError: a file cannot be read or written.
        """
        tenant = None if tenant is None else parse_tenant(tenant)
        if self._table_of is not None:
            wanted = self.regions() if region is None else [parse_lake_region(region)]
            done = []
            for i, name in enumerate(wanted, start=1):
                done.append(compact_table(self.table(name), name, tenant=tenant,
                                          target_rows=target_rows,
                                          keep_replaced_hours=keep_replaced_hours))
                if progress is not None:
                    progress(name, i, len(wanted))
            return done
        results = []
        for store in self._readable(None if region is None else [region]):
            def report(done: int, total: int, _region: str = store.region) -> None:
                if progress is not None:
                    progress(_region, done, total)
            with store.maintenance():
                drop_shredded(store, tenant)
                results.append(compact_region(store, tenant=tenant, target_rows=target_rows,
                                              progress=report))
        return results

    def apply_retention(
        self,
        *,
        today: date | None = None,
        dry_run: bool = False,
        policy: RetentionPolicy | None = None,
        regions: Sequence[str] | None = None,
        progress: Callable[[str, int, int], None] | None = None,
    ) -> RetentionReport:
        """Delete (or, with ``dry_run``, list) what the retention policy has expired, then
        forget the batch ids that left the re-delivery window.

        ``policy`` defaults to the lake's; ``today`` to the current UTC date. A batch id is
        remembered (its re-delivery skipped) until ``batch_window_days`` after the day of its
        last sample, or until every category of its region has expired if that comes first;
        a batch re-delivered later is stored again. Ingestion refuses samples older than
        ``ingest_max_sample_age_s``, which the settings keep inside this window, so what comes
        through ingestion is never stored twice. A compaction of the same region is waited
        for (the region's maintenance lock).

        Raises:
            ConflictError: another maintenance run held a region for longer than an hour.
            StorageError: a file cannot be read, written or deleted.
        """
        policy = policy or self.retention
        today = today or datetime.now(UTC).date()
        actions: list[RetentionAction] = []
        forgotten = 0
        if self._table_of is not None:  # batch ids expire in the checkpoint retention writes
            wanted = self.regions() if regions is None else \
                [r for r in map(parse_lake_region, regions) if r in self.regions()]
            for i, region in enumerate(wanted, start=1):
                actions.extend(apply_table_retention(self.table(region), region, policy,
                                                     today, dry_run=dry_run))
                if progress is not None:
                    progress(region, i, len(wanted))
            return RetentionReport(dry_run, tuple(actions))
        for store in self._readable(regions):
            def report(done: int, total: int, _region: str = store.region) -> None:
                if progress is not None:
                    progress(_region, done, total)
            if dry_run:
                actions.extend(apply_retention(store, policy, today, dry_run=True).actions)
                continue
            with store.maintenance():
                drop_shredded(store)
                actions.extend(apply_retention(store, policy, today, dry_run=False,
                                               progress=report).actions)
                forgotten += store.index.prune_batches(self.batch_cutoff(store.region, policy,
                                                                         today))
        return RetentionReport(dry_run, tuple(actions), forgotten)

    def erase_vehicles(
        self,
        tenant: str,
        vehicles: Sequence[str],
        *,
        progress: Callable[[str, int, int], None] | None = None,
    ) -> list[ErasureResult]:
        """Remove every sample of ``vehicles`` (pseudonyms) of ``tenant`` from every region:
        files holding any are rewritten without them, or deleted when nothing is left (see
        ``erasure.py``). Waits for other maintenance runs of a region (its lock).

        Raises:
            BadInputError: bad tenant id.
            ConflictError: another maintenance run held a region for longer than an hour.
            StorageError: a file cannot be read, written or deleted.
        """
        tenant = parse_tenant(tenant)
        wanted = _strings("vehicles", vehicles)
        if self._table_of is not None:
            return self._erase_from_tables(tenant, wanted)
        # the encrypted lake destroys the keys; files written before encryption was turned
        # on are plain and rewritten as on the plain lake (erasure.py skips encrypted ones)
        results = [] if self._cipher is None else self.shred_vehicles(tenant, wanted).results()
        for store in self._readable(None):
            def report(done: int, total: int, _region: str = store.region) -> None:
                if progress is not None:
                    progress(_region, done, total)
            with store.maintenance():
                results.append(erase_vehicles(store, tenant, wanted, progress=report))
        return results

    def shred_vehicles(self, tenant: str, vehicles: Sequence[str]) -> Shredding:
        """Crypto-shredding (encrypted lake): destroy the data keys of ``vehicles`` of
        ``tenant`` — every copy of their files becomes unreadable — then delete their files
        best-effort (shredding.py).

        Raises:
            ConfigurationError: the lake is not encrypted.
            StorageError: the key store cannot be written.
        """
        if self._cipher is None:
            raise ConfigurationError("shredding needs lake_encryption = 'per_vehicle'")
        if self._table_of is not None:
            return self._shred_tables(parse_tenant(tenant), _strings("vehicles", vehicles))
        return shred(self._cipher, self._readable(None), parse_tenant(tenant),
                     _strings("vehicles", vehicles))

    def _shred_tables(self, tenant: str, vehicles: Sequence[str]) -> Shredding:
        """Crypto-shredding on the encrypted tables: destroy the keys, then remove the files
        under them from every region's table and purge them from storage."""
        assert self._cipher is not None
        started = time.perf_counter()
        destroyed = self._cipher.keys.destroy(tenant, vehicles)
        key_work_s = time.perf_counter() - started
        results = []
        for region in self.regions():
            # table() checked it is encrypted, as the lake is
            files, rows = cast(EncryptedTable, self.table(region)).drop_shredded(tenant)
            results.append(ErasureResult(region, files_scanned=0, files_rewritten=0,
                                         files_deleted=files, rows_removed=rows, files_busy=0))
        return Shredding(destroyed, key_work_s, tuple(results))

    def _erase_from_tables(self, tenant: str, vehicles: Sequence[str]) -> list[ErasureResult]:
        """Erasure on the table backend: one delete per region's table, whose replaced files
        are purged from storage at once (``RegionTable.delete_rows``); on encrypted tables,
        crypto-shredding."""
        if not vehicles:
            return []
        if self._cipher is not None:
            return self._shred_tables(tenant, vehicles).results()
        predicate = (f"tenant = {literal(tenant)} AND vehicle IN "
                     f"({', '.join(literal(v) for v in sorted(set(vehicles)))})")
        results = []
        for region in self.regions():
            removed = self.table(region).delete_rows(predicate)
            results.append(ErasureResult(region, files_scanned=0, files_rewritten=0,
                                         files_deleted=0, rows_removed=removed, files_busy=0))
        return results

    def batch_cutoff(self, region: str, policy: RetentionPolicy, today: date) -> date:
        """Batch ids of ``region`` whose samples are all dated before this day are forgotten:
        they left the re-delivery window, or every category of them has expired."""
        window = today - timedelta(days=self.batch_window_days)
        horizon = batch_horizon(policy, region, today)
        return window if horizon is None else max(window, horizon)

    # --- reading ----------------------------------------------------------------------------------
    def files(
        self,
        tenant: str,
        *,
        regions: Iterable[str] | None = None,
        start_ns: int | None = None,
        end_ns: int | None = None,
    ) -> list[LakeFile]:
        """``tenant``'s committed files, optionally only those overlapping [start_ns, end_ns)."""
        tenant = parse_tenant(tenant)
        first = None if start_ns is None else day_of_ns(start_ns)
        last = None if end_ns is None else day_of_ns(end_ns - 1)
        found = []
        if self._table_of is not None:
            return [lake_file(region, f, i) for i, (region, f) in
                    enumerate(self._table_files(tenant, regions, start_ns, end_ns))]
        for store in self._readable(regions):
            found.extend(store.index.live_files(store.region, tenant=tenant, first_day=first,
                                                last_day=last, start_ns=start_ns, end_ns=end_ns))
        return found

    def live_paths(
        self,
        tenant: str,
        *,
        regions: Iterable[str] | None = None,
        start_ns: int | None = None,
        end_ns: int | None = None,
    ) -> list[str]:
        """Where ``tenant``'s committed files overlapping [start_ns, end_ns) are, as the
        paths a reader opens: exactly the list every DuckDB query of the lake reads, and what
        an outside engine (Spark, Trino) must read to see the same data. Each path ends in
        ``region=R/tenant=T/date=D/<file>.parquet``, so hive partition discovery finds the
        partition columns.

        Raises:
            BadInputError: bad tenant id or region.
        """
        if self._table_of is not None:  # the latest version's files, where readers open them
            return [f.uri for _, f in self._table_files(parse_tenant(tenant), regions,
                                                        start_ns, end_ns)]
        stores = {s.region: s for s in self._readable(regions)}
        return [str(stores[f.region].path_of(f.name)) for f in
                self.files(tenant, regions=list(stores), start_ns=start_ns, end_ns=end_ns)]

    def _table_files(
        self, tenant: str, regions: Iterable[str] | None, start_ns: int | None,
        end_ns: int | None,
    ) -> list[tuple[str, TableFile]]:
        """(region, file) of ``tenant``'s files in the tables' latest versions overlapping
        [start_ns, end_ns)."""
        wanted = self.regions() if regions is None else [parse_lake_region(r) for r in regions]
        first = None if start_ns is None else day_of_ns(start_ns)
        last = None if end_ns is None else day_of_ns(end_ns - 1)
        return [(region, f) for region in wanted for f in self.table(region).files(tenant)
                if (first is None or f.day >= first) and (last is None or f.day <= last)
                and (start_ns is None or f.max_ts_ns >= start_ns)
                and (end_ns is None or f.min_ts_ns < end_ns)]

    def _file_lister(
        self, tenant: str, regions: Iterable[str] | None, start_ns: int | None,
        end_ns: int | None,
    ) -> Callable[[], query.Source]:
        if self._table_of is not None:
            return self._table_scan(tenant, regions, start_ns, end_ns)
        listed = None if regions is None else list(regions)
        if self._cipher is not None:
            return encrypted_scan(self._cipher, lambda: self._readable(listed), tenant,
                                  start_ns, end_ns)

        def paths() -> query.Source:
            return self.live_paths(tenant, regions=listed, start_ns=start_ns, end_ns=end_ns)

        return paths

    def signals(
        self,
        tenant: str,
        vehicles: Sequence[str] | None,
        paths: Sequence[str] | None,
        start: datetime,
        end: datetime,
        every: str | None = None,
        agg: str = "mean",
        *,
        regions: Sequence[str] | None = None,
        max_rows: int | None = None,
        permit: query.RowPermit | None = None,
    ) -> pa.Table:
        """Samples of ``vehicles`` (pseudonyms) × ``paths`` in [start, end), as Arrow.

        Raw (``every=None``): vehicle, path, ts, value, text. Down-sampled (``every="1m"``
        etc.): vehicle, path, ts (bucket start), value (``agg`` of the bucket: mean, min,
        max or last), samples. Empty or None ``vehicles``/``paths`` mean all. ``permit``
        (per category: None for every vehicle, or the pseudonyms allowed) limits the rows to
        what a purpose may read.

        Raises:
            QueryError: bad interval, aggregation or time range; more than ``max_rows`` rows.
            BadInputError: bad tenant id or region.
            StorageError: the files cannot be read.
        """
        tenant = parse_tenant(tenant)
        start_ns, end_ns = time_range_ns(start, end)
        step_ns = parse_every(every)
        aggregation = parse_aggregation(agg)
        return query.signals(
            self._file_lister(tenant, regions, start_ns, end_ns), tenant,
            _strings("vehicles", vehicles), _strings("paths", paths), start_ns, end_ns,
            step_ns, aggregation, max_rows=max_rows, threads=self._threads, permit=permit,
        )

    def fleet_aggregate(
        self,
        tenant: str,
        path: str,
        start: datetime,
        end: datetime,
        group_by: str = "region",
        agg: str = "mean",
        *,
        regions: Sequence[str] | None = None,
        permit: query.RowPermit | None = None,
    ) -> pa.Table:
        """``agg`` of ``path`` over the tenant's fleet in [start, end), per region, vehicle
        or day: key column, value, samples, vehicles (only the rows ``permit`` admits).

        Raises:
            QueryError: bad group_by, aggregation, path or time range.
        """
        tenant = parse_tenant(tenant)
        start_ns, end_ns = time_range_ns(start, end)
        key = parse_group_by(group_by)
        aggregation = parse_aggregation(agg)
        if not isinstance(path, str) or not path:
            raise QueryError(f"path={path!r}; expected a VSS path such as 'Vehicle.Speed'")
        return query.fleet_aggregate(
            self._file_lister(tenant, regions, start_ns, end_ns), tenant, path, start_ns,
            end_ns, key, aggregation, threads=self._threads, permit=permit,
        )

    def counts(self, tenant: str, *, regions: Sequence[str] | None = None) -> pa.Table:
        """Stored samples of ``tenant`` per region and privacy category (from the index, no
        scan): region, category, rows, files."""
        tenant = parse_tenant(tenant)
        rows: dict[str, list[object]] = {name: [] for name in COUNTS_SCHEMA.names}
        if self._table_of is not None:
            wanted = self.regions() if regions is None else \
                [parse_lake_region(r) for r in regions]
            for region in wanted:
                table = self.table(region)
                names = [f.name for f in table.files(tenant)]
                dataset = table.dataset_of(names) if names else None
                if dataset is None:
                    continue
                for category, n, files in _category_counts(dataset):
                    for name, value in zip(COUNTS_SCHEMA.names, (region, category, n, files)):
                        rows[name].append(value)
            return pa.table(rows, schema=COUNTS_SCHEMA)
        for store in self._readable(regions):
            for category, n, files in store.index.category_counts(tenant):
                for name, value in zip(COUNTS_SCHEMA.names, (store.region, category, n, files)):
                    rows[name].append(value)
        return pa.table(rows, schema=COUNTS_SCHEMA)

    def sql(
        self,
        tenant: str,
        sql: str,
        *,
        max_rows: int = SQL_MAX_ROWS,
        timeout_s: float = SQL_TIMEOUT_S,
        permit: query.RowPermit | None = None,
        as_of: Mapping[str, int] | None = None,
    ) -> pa.Table:
        """Run one SELECT over the view ``telemetry`` — ``tenant``'s rows in every region
        (vehicle, path, ts, value, text, category, batch_id, campaign, dimensions, region,
        date) — in DuckDB confined to the tenant's files (and, with ``permit``, to the rows it
        admits). ``as_of`` (table-format lake only) reads the named regions' tables as they
        were at those versions (time travel), and only those regions.

        Raises:
            QueryError: not a single SELECT, a SQL error (including any attempt to read
                another file), too many rows, or longer than ``timeout_s``.
            ConfigurationError: ``as_of`` on the embedded lake.
        """
        tenant = parse_tenant(tenant)
        if as_of is not None:  # time travel: the tables as they were at these versions
            files: Callable[[], query.Source] = self._table_scan(tenant, list(as_of), None,
                                                                   None, as_of)
        else:
            files = self._file_lister(tenant, None, None, None)
        return query.run_sql(files, tenant, sql,
                             max_rows=max_rows, timeout_s=timeout_s, threads=self._threads,
                             permit=permit)

    def export_bundle(
        self,
        tenant: str,
        region: str,
        out_dir: Path,
        vehicle: str | None = None,
        *,
        progress: Callable[[int, int], None] | None = None,
    ) -> BundleManifest:
        """Export ``tenant``'s data in ``region`` (only ``vehicle``'s, if given) as a bundle:
        Parquet per date plus ``manifest.json`` (schema, VSS version, rows, time range,
        SHA-256 of each file).

        Raises:
            BadInputError: bad tenant or region, or ``out_dir`` not empty.
            StorageError: files cannot be read or written.
        """
        tenant = parse_tenant(tenant)
        region = parse_lake_region(region)
        if self._table_of is not None:
            table = self.table(region)
            return write_bundle(
                self.files(tenant, regions=[region]), table_files_opener(table),
                tenant=tenant, region=region, vehicle=vehicle, out_dir=Path(out_dir),
                progress=progress,
            )
        stores = self._readable([region])
        files = self.files(tenant, regions=[region]) if stores else []
        if self._cipher is not None:  # skip erased vehicles' files, decrypt the rest
            gone = {f.name for f in shredded_files(self._cipher, files)}
            files = [f for f in files if f.name not in gone]
        return write_bundle(
            files,
            local_files(lambda f: stores[0].path_of(f.name),
                        "parquet" if self._cipher is None else self._cipher.file_format()),
            tenant=tenant, region=region, vehicle=vehicle, out_dir=Path(out_dir),
            progress=progress,
        )


def _category_counts(dataset: ds.Dataset) -> list[tuple[str, int, int]]:
    """(category, rows, files) of a tenant's dataset, from its ``category`` column."""
    rows: dict[str, int] = {}
    files: dict[str, int] = {}
    for fragment in dataset.get_fragments():
        counts = fragment.to_table(columns=["category"]).column("category").value_counts()
        for entry in counts.to_pylist():
            rows[entry["values"]] = rows.get(entry["values"], 0) + entry["counts"]
            files[entry["values"]] = files.get(entry["values"], 0) + 1
    return [(c, rows[c], files[c]) for c in sorted(rows)]


def _strings(name: str, values: Sequence[str] | None) -> list[str]:
    if values is None:
        return []
    if isinstance(values, str):
        raise QueryError(f"{name} must be a list of strings, got the string {values!r}")
    out = list(values)
    for v in out:
        if not isinstance(v, str) or not v:
            raise QueryError(f"{name} holds {v!r}; expected non-empty strings")
    return out
