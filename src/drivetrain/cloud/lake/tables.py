"""The lake on object storage: a region's telemetry as one table of an open table format.

The embedded lake (store.py, index.py) keeps exactly-once with a SQLite index and file locks on
one host. A fleet deployment shares the lake between ingest workers on many hosts, so the
commit itself must be atomic in the storage: :class:`RegionTable` is that strategy's small
surface, :func:`open_region_table` its factory. The one implementation is Delta Lake
(:mod:`drivetrain.cloud.lake.delta`); docs/scale.md says why it was chosen over Iceberg.

Layout: with ``lake_url = "s3://bucket/prefix"`` the table of region EU lives at
``s3://bucket/prefix/region=EU``, partitioned by ``tenant`` and ``date``, so its data files sit
at ``region=EU/tenant=<t>/date=<YYYY-MM-DD>/part-….parquet`` under the prefix — the embedded
lake's hive layout, readable by any Parquet tool (and by Spark, from the same file list).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Final, Literal, Protocol

import pyarrow as pa
import pyarrow.dataset as ds

from drivetrain.cloud.lake.crypto import LakeCipher
from drivetrain.cloud.lake.rows import AppendPlan
from drivetrain.core.errors import ConfigurationError

TableFormat = Literal["delta"]
TABLE_FORMATS: Final[tuple[TableFormat, ...]] = ("delta",)
#: URL schemes the table backend accepts (object stores by URL, through the table library's
#: object-store layer; ``file://`` for one host and for tests).
URL_SCHEMES: Final = ("file", "s3", "s3a", "az", "abfs", "abfss", "gs")


@dataclass(frozen=True, slots=True)
class TableAppend:
    """What one append did: the plan it committed (slices written, batches skipped) and the
    table version after it (None: still no table)."""

    plan: AppendPlan
    version: int | None


@dataclass(frozen=True, slots=True)
class TableFile:
    """One data file of the table's current version (an ``add`` action).

    Attributes:
        name: path relative to the table (``tenant=T/date=D/part-….parquet``).
        uri: where a reader opens it (a local path, or ``s3://…``).
        tenant, day: its partition.
        rows, bytes: its size (rows from the file statistics the writer recorded).
        min_ts_ns, max_ts_ns: the time span of its samples (microsecond precision).
    """

    name: str
    uri: str
    tenant: str
    day: date
    rows: int
    bytes: int
    min_ts_ns: int
    max_ts_ns: int


@dataclass(frozen=True, slots=True)
class Compacted:
    """What one optimize run did: files and bytes it replaced and wrote, rows rewritten,
    partitions touched, files the vacuum after it deleted from storage, and files no version
    named (a killed writer's uploads) it deleted."""

    files_removed: int
    files_added: int
    bytes_removed: int
    bytes_added: int
    rows: int
    partitions: int
    files_purged: int
    orphans_purged: int = 0


class RegionTable(Protocol):
    """One region's telemetry table (exactly-once appends, deletes, time travel)."""

    region: str
    url: str
    #: whether the data files are encrypted per vehicle (crypto-shredding)
    encrypted: bool

    def committed_batches(self, tenant: str, batch_ids: Sequence[str]) -> set[str]:
        """The ``batch_ids`` of ``tenant`` already committed to the table (within the
        re-delivery window)."""
        ...

    def append(self, tenant: str, rows: pa.Table) -> TableAppend | None:
        """Commit the normalised ``rows`` of batch ids not yet committed for ``tenant``, with
        those batch ids, in one atomic commit; None when another writer committed one of them
        after this append looked (nothing stored; the caller tries again)."""
        ...

    def dataset(self, version: int | None = None) -> ds.Dataset | None:
        """The table's rows (with ``tenant`` and ``date`` columns) at ``version`` (default:
        the latest) as a pyarrow dataset; None before the first append."""
        ...

    def version(self) -> int | None:
        """The latest table version, None before the first append."""
        ...

    def delete_rows(self, predicate: str, *, files: Collection[str] | None = None) -> int:
        """Delete the rows matching the SQL ``predicate`` and purge the files they were in
        from storage; returns the rows deleted. ``files`` (names as :meth:`files` gives
        them): where the rows can be, when the caller knows (the encrypted table reads only
        those)."""
        ...

    def compact(self, tenant: str | None = None, *, target_bytes: int | None = None,
                keep_replaced_hours: int = 168) -> Compacted:
        """Merge small files (of ``tenant`` only, if given), then delete from storage the
        files compactions replaced more than ``keep_replaced_hours`` ago."""
        ...

    def files(self, tenant: str | None = None) -> list[TableFile]:
        """The data files of the latest version (of ``tenant`` only, if given)."""
        ...

    def dataset_of(self, names: Collection[str]) -> ds.Dataset | None:
        """A dataset of exactly the files ``names`` of the latest version."""
        ...

    def checkpoint(self) -> None:
        """Checkpoint the latest version, dropping app ids past the re-delivery window."""
        ...


class EncryptedTable(RegionTable, Protocol):
    """A region table whose data files are encrypted per vehicle (delta_encrypted.py)."""

    def drop_shredded(self, tenant: str | None = None) -> tuple[int, int]:
        """Remove the files (of ``tenant``) whose key is destroyed and purge them from
        storage; returns (files, rows)."""
        ...


def region_table_url(lake_url: str, region: str) -> str:
    """The table URL of ``region`` under ``lake_url`` (``<lake_url>/region=<R>``).

    Raises:
        ConfigurationError: ``lake_url`` is not a URL of a supported scheme.
    """
    scheme, sep, rest = lake_url.partition("://")
    if not sep or scheme not in URL_SCHEMES or not rest.strip("/"):
        raise ConfigurationError(
            f"lake_url={lake_url!r}; expected a URL such as 's3://bucket/prefix' or "
            f"'file:///srv/lake' (schemes: {', '.join(URL_SCHEMES)})"
        )
    return f"{lake_url.rstrip('/')}/region={region}"


def open_region_table(
    table_format: str, lake_url: str, region: str, storage_options: Mapping[str, str],
    *, batch_window_days: int, checkpoint: Callable[[str], None] | None = None,
    cipher: LakeCipher | None = None,
) -> RegionTable:
    """The table of ``region`` under ``lake_url`` in ``table_format`` (``checkpoint`` is told
    each step of an append: crash tests), its files encrypted per vehicle by ``cipher`` if
    given (crypto-shredding, delta_encrypted.py).

    Raises:
        ConfigurationError: an unknown format or URL, or the format's library is missing
            (install the ``lake-s3`` extra).
    """
    url = region_table_url(lake_url, region)
    if table_format == "delta":
        try:
            from drivetrain.cloud.lake.delta import DeltaRegionTable
        except ImportError as e:
            raise ConfigurationError(
                f"lake_table_format = 'delta' needs the deltalake package ({e}); install "
                "drivetrain[lake-s3]"
            ) from e
        if cipher is not None:
            from drivetrain.cloud.lake.delta_encrypted import EncryptedDeltaTable

            return EncryptedDeltaTable(region, url, dict(storage_options), batch_window_days,
                                       cipher=cipher, checkpoint=checkpoint)
        return DeltaRegionTable(region, url, dict(storage_options), batch_window_days,
                                checkpoint=checkpoint)
    raise ConfigurationError(
        f"lake_table_format={table_format!r}; expected one of {', '.join(TABLE_FORMATS)}"
    )
