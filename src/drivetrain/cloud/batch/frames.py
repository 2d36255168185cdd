"""The lake as a Spark DataFrame: exactly the files DuckDB reads, nothing globbed.

The file list comes from :meth:`Lake.live_paths` — the same call behind every DuckDB query of
the lake — so Spark never reads a staged, pending or retired file, and a file another writer
commits after the listing is not half-read. Files are read with hive partition discovery
relative to their region root (``region=R/tenant=T/date=D/`` become columns, as in DuckDB),
with the lake's schema given rather than inferred (no job that opens every footer first; files
written before a column existed read it as null, like DuckDB's ``union_by_name``), and
filtered on tenant and time again, as the DuckDB queries do.

On the lake on object storage (``lake_url``) the list is the region tables' current files
(each Delta table's ``add`` actions, the files DuckDB scans through the table's dataset):
Spark needs no Delta reader of its own. Their ``ts`` is a microsecond timestamp (Delta's
``timestamp``), read as such and turned into nanoseconds.

Columns: vehicle, path, ts (int64 ns since the epoch, UTC), value, text, category, batch_id,
region, tenant, date (DATE).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Final, TypeVar

from drivetrain.core.errors import BadInputError, ConfigurationError, QueryError, StorageError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from drivetrain.cloud.lake import Lake

T = TypeVar("T")

#: Columns of :func:`lake_frame`'s DataFrame, in order.
FRAME_COLUMNS: Final = ("vehicle", "path", "ts", "value", "text", "category", "batch_id",
                        "region", "tenant", "date")
_FILE_COLUMNS: Final = FRAME_COLUMNS[:7]
_MARKER: Final = "/region="
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
# The columns read from each file (LAKE_SCHEMA's, ts as int64 ns: see SESSION_CONF) and the
# hive partition columns, with their Spark types.
_READ_COLUMNS: Final = (("vehicle", "string"), ("path", "string"), ("ts", "bigint"),
                        ("value", "double"), ("text", "string"), ("category", "string"),
                        ("batch_id", "string"), ("region", "string"), ("tenant", "string"),
                        ("date", "string"))
_READ_SCHEMA: Final = ", ".join(f"{name} {type_}" for name, type_ in _READ_COLUMNS)
# The table-format lake's files: ts is a microsecond TIMESTAMP (Delta's timestamp type).
_TABLE_READ_SCHEMA: Final = _READ_SCHEMA.replace("ts bigint", "ts timestamp")
#: Object-store URL schemes as Hadoop's connectors name them (S3 is ``s3a`` in hadoop-aws).
_HADOOP_SCHEMES: Final = {"s3": "s3a"}


@dataclass(frozen=True, slots=True)
class TimeRange:
    """[start_ns, end_ns): nanoseconds since the epoch, UTC."""

    start_ns: int
    end_ns: int

    @classmethod
    def of(cls, start: datetime, end: datetime) -> TimeRange:
        """The range [start, end) of two timezone-aware moments.

        Raises:
            QueryError: a naive moment, or ``start`` not before ``end``.
        """
        for name, moment in (("start", start), ("end", end)):
            if not isinstance(moment, datetime) or moment.tzinfo is None:
                raise QueryError(f"{name}={moment!r}; expected a timezone-aware datetime")
        if start >= end:
            raise QueryError(f"start {start.isoformat()} is not before end {end.isoformat()}")
        return cls(_ns(start), _ns(end))


def _ns(moment: datetime) -> int:
    # integer arithmetic on the timedelta, so no float rounding moves a bound
    return (moment - _EPOCH) // timedelta(microseconds=1) * 1_000


def partition_base(path: str) -> str:
    """The root a lake file's hive partitions are relative to (what precedes
    ``/region=``), for Spark's ``basePath``.

    Raises:
        BadInputError: ``path`` is not a lake file path.
    """
    base, found, _ = path.rpartition(_MARKER)
    if not found or not base:
        raise BadInputError(f"{path!r} is not a lake file (expected .../region=R/tenant=T/...)")
    return base


def spark_path(path: str) -> str:
    """``path`` as Spark must be given it: a local path as a ``file://`` URI (on a cluster
    whose default filesystem is HDFS a bare path would name an HDFS file), an ``s3://`` URL
    as ``s3a://`` (hadoop-aws' scheme), any other URL as it is.

    Raises:
        BadInputError: the path holds a glob character, which Spark would expand (and so
            read other files than the lake listed).
    """
    glob = sorted(set(path) & set("*?[]{}\\"))
    if glob:
        raise BadInputError(
            f"lake file {path!r} holds {''.join(glob)!r}, which Spark reads as a glob pattern; "
            "move the lake root (lake_roots) to a path without *?[]{}\\"
        )
    scheme, sep, rest = path.partition("://")
    if not sep:
        return "file://" + path
    return f"{_HADOOP_SCHEMES.get(scheme, scheme)}://{rest}"


def read_files(spark: SparkSession, paths: Sequence[str], *, micros: bool = False) -> DataFrame:
    """The lake rows of ``paths`` (lake files, any regions), with the partition columns;
    ``micros``: the files are a table-format lake's, with ``ts`` in microseconds."""
    from pyspark.sql import functions as F

    by_base: dict[str, list[str]] = {}
    for path in paths:
        located = spark_path(path)
        by_base.setdefault(partition_base(located), []).append(located)
    frame: DataFrame | None = None
    for base, group in sorted(by_base.items()):
        schema = _TABLE_READ_SCHEMA if micros else _READ_SCHEMA
        part = spark.read.schema(schema).option("basePath", base).parquet(*group)
        ts = (F.unix_micros("ts") * 1000).alias("ts") if micros else F.col("ts")
        part = part.select(*(ts if c == "ts" else c for c in _FILE_COLUMNS), "region", "tenant",
                           F.col("date").cast("date").alias("date"))
        frame = part if frame is None else frame.unionByName(part)
    if frame is None:
        return empty_frame(spark)
    return frame


def empty_frame(spark: SparkSession) -> DataFrame:
    """A frame with :data:`FRAME_COLUMNS` and no rows."""
    from pyspark.sql import functions as F

    # built in the JVM (no Python rows to ship): typed nulls over an empty range
    return spark.range(0).select(*(
        F.lit(None).cast("date" if name == "date" else type_).alias(name)
        for name, type_ in _READ_COLUMNS))


def lake_frame(
    spark: SparkSession,
    lake: Lake,
    tenant: str,
    *,
    time_range: TimeRange | None = None,
    regions: Sequence[str] | None = None,
) -> tuple[DataFrame, list[str]]:
    """``tenant``'s rows in ``time_range`` (all time without one) as a DataFrame, and the
    files it reads — the list :meth:`Lake.live_paths` gives DuckDB.

    Raises:
        BadInputError: bad tenant id or region.
        ConfigurationError: the lake is encrypted per vehicle (Spark has no key service).
    """
    if lake.encrypted:
        raise ConfigurationError(
            "lake_encryption = 'per_vehicle': Spark reads the lake's files as plain Parquet and "
            "cannot open files encrypted under the per-vehicle keys; query the lake itself "
            "(drivetrain lake query|sql)")
    from pyspark.sql import functions as F

    start_ns = None if time_range is None else time_range.start_ns
    end_ns = None if time_range is None else time_range.end_ns
    paths = lake.live_paths(tenant, regions=regions, start_ns=start_ns, end_ns=end_ns)
    frame = read_files(spark, paths, micros=lake.table_format) \
        .where(F.col("tenant") == F.lit(tenant))
    if time_range is not None:
        frame = frame.where((F.col("ts") >= F.lit(time_range.start_ns))
                            & (F.col("ts") < F.lit(time_range.end_ns)))
    return frame, paths


#: How often a job re-lists the files when one vanished under it (a compaction or retention
#: run swapped it out between listing and reading) — as the DuckDB queries do.
ATTEMPTS: Final = 3


def _vanished(error: Exception) -> bool:
    text = str(error)
    return "FileNotFoundException" in text or "FILE_NOT_EXIST" in text


def run_on_live_files(
    spark: SparkSession,
    lake: Lake,
    tenant: str,
    job: Callable[[DataFrame], T],
    *,
    time_range: TimeRange | None = None,
    regions: Sequence[str] | None = None,
) -> tuple[T, list[str]]:
    """``job`` (which must run its Spark action, e.g. collect or write) over
    :func:`lake_frame`, and the files it read; when a file vanished under it (a compaction or
    retention swap committed meanwhile), the files are listed again and the job rerun.

    Raises:
        BadInputError: bad tenant id or region.
        StorageError: the files kept changing, or Spark failed (its message quoted).
    """
    from py4j.protocol import Py4JJavaError
    from pyspark.errors import PySparkException

    last: Exception | None = None
    for _ in range(ATTEMPTS):
        frame, paths = lake_frame(spark, lake, tenant, time_range=time_range, regions=regions)
        try:
            return job(frame), paths
        except (PySparkException, Py4JJavaError) as e:
            if not _vanished(e):
                raise StorageError(f"the Spark job failed: {_first_line(e)}") from e
            last = e
    raise StorageError(f"lake files kept changing under the Spark job: {_first_line(last)}")


def _first_line(error: Exception | None) -> str:
    return str(error).strip().splitlines()[0] if error is not None and str(error).strip() \
        else repr(error)
