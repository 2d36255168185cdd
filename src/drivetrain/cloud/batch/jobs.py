"""Batch jobs over the lake on Spark: fleet aggregates and model training features.

Each job takes the DataFrame of :func:`~drivetrain.cloud.batch.frames.lake_frame` and returns
a DataFrame, so the caller decides to collect it (``to_arrow``) or write it where the cluster
writes (``DataFrame.write.parquet``). Their semantics are the DuckDB queries' of the lake, to
the row: :func:`fleet_aggregate` is ``Lake.fleet_aggregate``, :func:`downsample` is
``Lake.signals(..., every=...)`` and :func:`training_features` is the maintenance model's
``observation_frame`` over that down-sampled table (tests/cloud/batch hold them equal).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

from drivetrain.cloud.batch.session import quiet_pandas_check
from drivetrain.cloud.insights.maintenance import (
    AMBIENT,
    CELL_MAX,
    CELL_MIN,
    COOLANT_TEMP,
    HEALTH_PATHS,
    INDICATORS,
    LV_VOLTAGE,
    MOTOR_TEMP,
    PAD_WEAR,
    SOH,
    SPEED,
    TIRE_PRESSURE,
)
from drivetrain.cloud.lake import AGGREGATIONS, GROUP_BYS
from drivetrain.core.errors import QueryError

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import Column, DataFrame

#: Columns of :func:`vehicle_day_stats`.
STATS_COLUMNS: Final = ("vehicle", "path", "day", "samples", "min", "max", "mean")
#: Group key column of :func:`fleet_aggregate` per grouping (the DuckDB query's names).
_KEYS: Final = {"region": "region", "vehicle": "vehicle", "day": "date"}


def vehicle_day_stats(frame: DataFrame, paths: Sequence[str] = ()) -> DataFrame:
    """Per signal path, vehicle and day (UTC): samples (values present), min, max, mean of
    the values — the fleet's daily digest. Empty ``paths`` mean every path. Ordered by
    vehicle, path, day."""
    from pyspark.sql import functions as F

    if paths:
        frame = frame.where(F.col("path").isin(list(paths)))
    return (
        frame.groupBy("vehicle", "path", F.col("date").alias("day"))
        .agg(F.count("value").alias("samples"), F.min("value").alias("min"),
             F.max("value").alias("max"), F.avg("value").alias("mean"))
        .orderBy("vehicle", "path", "day")
    )


def _aggregate(agg: str) -> Column:
    from pyspark.sql import functions as F

    if agg == "mean":
        return F.avg("value")
    if agg == "min":
        return F.min("value")
    if agg == "max":
        return F.max("value")
    # "last": the latest sample that has a value (DuckDB: arg_max(value, ts) FILTER (WHERE
    # value IS NOT NULL)); a null ordering value is skipped by max_by.
    return F.max_by("value", F.when(F.col("value").isNotNull(), F.col("ts")))


def fleet_aggregate(frame: DataFrame, path: str, group_by: str, agg: str) -> DataFrame:
    """``agg`` of ``path`` per ``group_by`` (region, vehicle or day): key column (``region``,
    ``vehicle`` or ``day``), value, samples (values aggregated), vehicles (distinct) —
    ``Lake.fleet_aggregate``'s table. Ordered by the key.

    Raises:
        QueryError: unknown grouping or aggregation, or an empty path.
    """
    from pyspark.sql import functions as F

    if group_by not in GROUP_BYS:
        raise QueryError(f"group_by={group_by!r}; expected one of {', '.join(GROUP_BYS)}")
    if agg not in AGGREGATIONS:
        raise QueryError(f"agg={agg!r}; expected one of {', '.join(AGGREGATIONS)}")
    if not isinstance(path, str) or not path:
        raise QueryError(f"path={path!r}; expected a VSS path such as 'Vehicle.Speed'")
    return (
        frame.where(F.col("path") == F.lit(path))
        .groupBy(F.col(_KEYS[group_by]).alias(group_by))
        .agg(_aggregate(agg).alias("value"), F.count("value").alias("samples"),
             F.countDistinct("vehicle").alias("vehicles"))
        .orderBy(group_by)
    )


def downsample(frame: DataFrame, step_ns: int, paths: Sequence[str] = ()) -> DataFrame:
    """Mean of each vehicle's ``paths`` per bucket of ``step_ns`` aligned to the epoch:
    vehicle, path, ts (bucket start, ns), value, samples — ``Lake.signals(..., every=...)``.

    Raises:
        QueryError: ``step_ns`` not positive.
    """
    from pyspark.sql import functions as F

    if not isinstance(step_ns, int) or step_ns <= 0:
        raise QueryError(f"step_ns={step_ns!r}; expected a positive number of nanoseconds")
    if paths:
        frame = frame.where(F.col("path").isin(list(paths)))
    bucket = (F.col("ts") - F.pmod(F.col("ts"), F.lit(step_ns))).alias("ts")
    return (frame.groupBy("vehicle", "path", bucket)
            .agg(F.avg("value").alias("value"), F.count("value").alias("samples")))


def training_features(frame: DataFrame, step_ns: int) -> DataFrame:
    """The predictive-maintenance model's observation table: one row per vehicle and bucket
    of ``step_ns`` with any health signal, its health indicators
    (:data:`~drivetrain.cloud.insights.maintenance.INDICATORS`; null where a signal was not
    reported) — ``observation_frame(Lake.signals(tenant, None, HEALTH_PATHS, ...,
    every=...))`` computed on the cluster. Columns: vehicle, ts (bucket start, ns), then the
    indicators. Ordered by vehicle, ts.
    """
    from pyspark.sql import functions as F

    signals = downsample(frame, step_ns, HEALTH_PATHS)
    wide = (signals.groupBy("vehicle", "ts").pivot("path", list(HEALTH_PATHS))
            .agg(F.first("value")))

    def col(path: str) -> Column:
        return F.col(f"`{path}`")

    def greatest(paths: Sequence[str]) -> Column:
        return F.greatest(*(col(p) for p in paths))  # skips nulls, like np.nanmax

    def least(paths: Sequence[str]) -> Column:
        return F.least(*(col(p) for p in paths))

    motor, coolant = greatest(MOTOR_TEMP), greatest(COOLANT_TEMP)
    indicators = (
        least(TIRE_PRESSURE),
        greatest(TIRE_PRESSURE) - least(TIRE_PRESSURE),
        greatest(PAD_WEAR),
        col(LV_VOLTAGE),
        motor,
        coolant,
        motor - coolant,
        F.lit(1000.0) * (col(CELL_MAX) - col(CELL_MIN)),
        col(SOH),
        col(SPEED),
        col(AMBIENT),
    )
    assert len(indicators) == len(INDICATORS)
    named = [c.cast("double").alias(n) for c, n in zip(indicators, INDICATORS, strict=True)]
    return wide.select("vehicle", "ts", *named).orderBy("vehicle", "ts")


def to_arrow(frame: DataFrame) -> pa.Table:
    """Collect ``frame`` on the driver as an Arrow table (only for results that fit there)."""
    with quiet_pandas_check():
        return frame.toArrow()
