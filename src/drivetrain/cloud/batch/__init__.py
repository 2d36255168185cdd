"""Batch jobs over the telemetry lake on Apache Spark (the ``spark`` extra, Java 17+).

Spark reads exactly the files DuckDB reads (``Lake.live_paths``), in local mode on one host
or on a cluster by URL (``spark_master``), and runs the fleet's batch jobs: the daily digest
per vehicle and signal, ``Lake.fleet_aggregate``'s aggregates, and the predictive-maintenance
model's training features; and, in :mod:`drivetrain.cloud.batch.maintenance`, the embedded
lake's compaction and retention (``compact_on_spark``, ``retention_on_spark``), committed
through the lake's index. See docs/scale.md.

Public surface:

- :func:`spark_session`, :func:`check_master`, :func:`check_runtime`, :class:`SparkUnavailableError` — the session.
- :func:`lake_frame`, :func:`run_on_live_files` (re-lists when a compaction swapped a file
  away mid-job), :class:`TimeRange`, :data:`FRAME_COLUMNS` — the lake as a DataFrame.
- :func:`vehicle_day_stats`, :func:`fleet_aggregate`, :func:`downsample`,
  :func:`training_features`, :func:`to_arrow` — the jobs.

Importing this package does not import pyspark; each function that needs it does.
"""

from drivetrain.cloud.batch.frames import FRAME_COLUMNS, TimeRange, lake_frame, run_on_live_files
from drivetrain.cloud.batch.jobs import (
    STATS_COLUMNS,
    downsample,
    fleet_aggregate,
    to_arrow,
    training_features,
    vehicle_day_stats,
)
from drivetrain.cloud.batch.session import (
    SparkUnavailableError,
    check_master,
    check_runtime,
    spark_session,
)

__all__ = [
    "FRAME_COLUMNS",
    "STATS_COLUMNS",
    "SparkUnavailableError",
    "TimeRange",
    "check_master",
    "check_runtime",
    "downsample",
    "fleet_aggregate",
    "lake_frame",
    "run_on_live_files",
    "spark_session",
    "to_arrow",
    "training_features",
    "vehicle_day_stats",
]
