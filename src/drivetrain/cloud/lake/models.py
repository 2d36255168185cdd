"""The lake's domain types: the row schema, names and partitions, results, and the parsers of
query parameters. Pure: nothing here touches the disk.

The row schema (``LAKE_SCHEMA``) is the contract with ingestion and with every reader of the
files; docs/lake-schema.md describes it column by column.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Final, Literal, get_args

import pyarrow as pa

from drivetrain.core.errors import BadInputError, QueryError
from drivetrain.core.regions import Region, parse_region

#: Version of the on-disk layout and row schema; bundles and the index record it.
LAKE_FORMAT_VERSION: Final = 1

#: The VSS release the built-in catalog (and so the lake's paths and categories) follows.
VSS_VERSION: Final = "7.0-dev"

NS_PER_S: Final = 1_000_000_000
NS_PER_DAY: Final = 86_400 * NS_PER_S

#: Samples outside [1990-01-01, 2100-01-01) UTC are refused: a vehicle clock that was never set
#: reports 1970, and a partition per bogus date would litter the lake.
MIN_TS_NS: Final = int(datetime(1990, 1, 1, tzinfo=UTC).timestamp()) * NS_PER_S
MAX_TS_NS: Final = int(datetime(2100, 1, 1, tzinfo=UTC).timestamp()) * NS_PER_S


def _field(name: str, type_: pa.DataType, nullable: bool, doc: str) -> pa.Field:
    return pa.field(name, type_, nullable=nullable, metadata={"description": doc})


#: One row per sample. Strings that repeat (vehicle, path, category, batch id) are
#: dictionary-encoded in memory and in the Parquet files; any Parquet reader sees plain strings.
LAKE_SCHEMA: Final = pa.schema(
    [
        _field("vehicle", pa.dictionary(pa.int32(), pa.utf8()), False,
               "tenant-keyed pseudonym of the vehicle (never a VIN)"),
        _field("path", pa.dictionary(pa.int16(), pa.utf8()), False,
               "COVESA VSS path of the signal, e.g. Vehicle.Speed"),
        _field("ts", pa.timestamp("ns", tz="UTC"), False,
               "when the value was measured (vehicle clock), ns since the Unix epoch, UTC"),
        _field("value", pa.float64(), True, "numeric or boolean (0/1) value, in the VSS unit"),
        _field("text", pa.utf8(), True, "string value; at most one of value/text is set"),
        _field("category", pa.dictionary(pa.int8(), pa.utf8()), False,
               "privacy category of the path (drivetrain.core.vss.privacy)"),
        _field("batch_id", pa.dictionary(pa.int32(), pa.utf8()), False,
               "id of the vehicle batch the sample came in (32 hex digits)"),
        _field("campaign", pa.dictionary(pa.int16(), pa.utf8()), True,
               "id of the collection campaign that collected the sample ('default' for the "
               "default collection; null: not collected by a campaign, or written before "
               "campaigns were recorded)"),
        _field("dimensions", pa.dictionary(pa.int16(), pa.utf8()), True,
               "the collecting campaign's dimensions: twin fields stamped on its rows, as a "
               'JSON object (e.g. {"model": "compact-bev", "software.BMS": "2.3.1"}); null '
               "where the campaign names none"),
    ]
)
LAKE_COLUMNS: Final[tuple[str, ...]] = tuple(LAKE_SCHEMA.names)

#: Hive partition columns, in path order: region=<R>/tenant=<T>/date=<YYYY-MM-DD>.
PARTITION_COLUMNS: Final = ("region", "tenant", "date")

Aggregation = Literal["mean", "min", "max", "last"]
AGGREGATIONS: Final[tuple[Aggregation, ...]] = get_args(Aggregation)
GroupBy = Literal["region", "vehicle", "day"]
GROUP_BYS: Final[tuple[GroupBy, ...]] = get_args(GroupBy)

_TENANT: Final = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_EVERY: Final = re.compile(r"^\s*(\d+)\s*(ms|s|m|h|d)\s*$")
_UNIT_NS: Final = {"ms": 1_000_000, "s": NS_PER_S, "m": 60 * NS_PER_S, "h": 3600 * NS_PER_S,
                   "d": NS_PER_DAY}


def parse_tenant(tenant: str) -> str:
    """``tenant`` if it is a valid tenant id (lower-case letters, digits, inner hyphens).

    Raises:
        BadInputError: anything else (the id becomes a directory name).
    """
    if not isinstance(tenant, str) or not _TENANT.match(tenant):
        raise BadInputError(
            f"tenant {tenant!r} is not a tenant id; expected 1-63 lower-case letters, digits "
            "or inner hyphens"
        )
    return tenant


def parse_lake_region(region: str) -> Region:
    """``region`` as a region code (EU, US, CN, JP); raises :class:`BadInputError` otherwise."""
    return parse_region(region)


def parse_every(every: str | None) -> int | None:
    """A down-sampling interval such as ``"1m"``, ``"10s"``, ``"1h"``, ``"1d"`` in nanoseconds.

    ``None`` or ``""`` means raw samples. Raises :class:`QueryError` for anything else.
    """
    if every is None or every == "":
        return None
    match = _EVERY.match(every)
    if match is None or int(match.group(1)) == 0:
        raise QueryError(
            f"every={every!r} is not an interval; expected a positive whole number and a unit "
            "(ms, s, m, h, d), e.g. '1m' or '15s'"
        )
    step_ns = int(match.group(1)) * _UNIT_NS[match.group(2)]
    if step_ns > 366 * NS_PER_DAY:
        raise QueryError(f"every={every!r} is longer than a year; expected at most '366d'")
    return step_ns


def parse_aggregation(agg: str) -> Aggregation:
    """``agg`` as one of mean/min/max/last; raises :class:`QueryError` otherwise."""
    if agg not in AGGREGATIONS:
        raise QueryError(f"agg={agg!r} is not known; expected one of {', '.join(AGGREGATIONS)}")
    return agg


def parse_group_by(group_by: str) -> GroupBy:
    """``group_by`` as one of region/vehicle/day; raises :class:`QueryError` otherwise."""
    if group_by not in GROUP_BYS:
        raise QueryError(
            f"group_by={group_by!r} is not known; expected one of {', '.join(GROUP_BYS)}"
        )
    return group_by


def to_ns(moment: datetime, name: str) -> int:
    """A timezone-aware ``moment`` in ns since the epoch; naive datetimes are refused.

    Raises:
        QueryError: ``moment`` has no timezone (``name`` names the parameter).
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise QueryError(f"{name}={moment.isoformat()!r} has no timezone; expected e.g. "
                         f"'{moment.isoformat()}+00:00'")
    whole = moment.astimezone(UTC).replace(microsecond=0)
    return int(whole.timestamp()) * NS_PER_S + moment.microsecond * 1000


def time_range_ns(start: datetime, end: datetime) -> tuple[int, int]:
    """``[start, end)`` in ns; raises :class:`QueryError` when ``end`` is not after ``start``."""
    start_ns, end_ns = to_ns(start, "start"), to_ns(end, "end")
    if end_ns <= start_ns:
        raise QueryError(f"end {end.isoformat()} is not after start {start.isoformat()}")
    return start_ns, end_ns


def day_of_ns(ts_ns: int) -> date:
    """The UTC date of ``ts_ns`` (ns since the epoch)."""
    return date(1970, 1, 1) + timedelta(days=ts_ns // NS_PER_DAY)


def day_number(day: date) -> int:
    """Days since 1970-01-01 of ``day``."""
    return (day - date(1970, 1, 1)).days


def partition_path(region: str, tenant: str, day: date) -> str:
    """The hive partition directory, relative to the region's root."""
    return f"region={region}/tenant={tenant}/date={day.isoformat()}"


@dataclass(frozen=True, slots=True)
class AppendResult:
    """What one :meth:`Lake.append` stored and what it skipped.

    Attributes:
        region, tenant: where the rows went.
        rows_written: samples stored by this call.
        rows_skipped: samples of batch ids that were already committed (re-deliveries).
        batches_written: batch ids committed by this call, sorted.
        batches_skipped: batch ids that were already committed, sorted.
        files: the new Parquet files, relative to the region's root.
        bytes_written: their total size.
    """

    region: str
    tenant: str
    rows_written: int
    rows_skipped: int
    batches_written: tuple[str, ...]
    batches_skipped: tuple[str, ...]
    files: tuple[str, ...]
    bytes_written: int


@dataclass(frozen=True, slots=True)
class LakeFile:
    """A committed Parquet file as the index knows it.

    Attributes:
        file_id: the index's id of the file.
        region, tenant, day: its partition.
        name: path relative to the region's root (``region=…/tenant=…/date=…/part-….parquet``).
        rows, bytes: its size.
        min_ts_ns, max_ts_ns: the time span of its samples.
        sorted: True when its rows are ordered by (path, vehicle, ts) (compaction output).
        categories: rows per privacy category.
    """

    file_id: int
    region: str
    tenant: str
    day: date
    name: str
    rows: int
    bytes: int
    min_ts_ns: int
    max_ts_ns: int
    sorted: bool
    categories: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CompactionResult:
    """What a compaction run merged.

    Attributes:
        region: the region compacted.
        partitions: (tenant, date) partitions that had small files merged.
        files_before: small files merged away.
        files_after: files written in their place.
        rows: samples rewritten (equal before and after).
        bytes_before, bytes_after: sizes of the files replaced and written.
        files_purged: files deleted from storage by the vacuum after the compaction (the
            table-format lake keeps replaced files a while for running readers; the
            embedded lake deletes them in the swap and leaves this 0).
        orphans_purged: data files no table version named — uploads of a writer killed
            before its commit — deleted once a day old (table-format lake only).
    """

    region: str
    partitions: int
    files_before: int
    files_after: int
    rows: int
    bytes_before: int
    bytes_after: int
    files_purged: int = 0
    orphans_purged: int = 0


@dataclass(frozen=True, slots=True)
class RetentionAction:
    """One file retention deletes or rewrites.

    Attributes:
        region, tenant, day, name: the file.
        action: ``delete`` (every row expired) or ``rewrite`` (some categories expired).
        rows_dropped: samples that go.
        rows_kept: samples a rewrite keeps (0 for a delete).
        categories: the expired categories found in the file.
        bytes: the file's size.
    """

    region: str
    tenant: str
    day: date
    name: str
    action: Literal["delete", "rewrite"]
    rows_dropped: int
    rows_kept: int
    categories: tuple[str, ...]
    bytes: int


@dataclass(frozen=True, slots=True)
class RetentionReport:
    """The outcome of a retention run (or, with ``dry_run``, what would go);
    ``batch_ids_forgotten`` counts the batch ids that left the re-delivery window."""

    dry_run: bool
    actions: tuple[RetentionAction, ...]
    batch_ids_forgotten: int = 0

    @property
    def rows_dropped(self) -> int:
        """Samples deleted (or that would be)."""
        return sum(a.rows_dropped for a in self.actions)

    @property
    def files_deleted(self) -> int:
        """Files deleted whole (or that would be)."""
        return sum(1 for a in self.actions if a.action == "delete")

    @property
    def files_rewritten(self) -> int:
        """Files rewritten without their expired rows (or that would be)."""
        return sum(1 for a in self.actions if a.action == "rewrite")
