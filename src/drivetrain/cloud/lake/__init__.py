"""The fleet data lake: telemetry as hive-partitioned Parquet, queried with DuckDB.

Public surface (everything else in this package is internal):

- :class:`Lake` — ``append`` (exactly-once per batch id), ``signals``, ``fleet_aggregate``,
  ``live_paths`` (the files every reader must read),
  ``counts``, ``sql``, ``compact``, ``apply_retention``, ``erase_vehicles``,
  ``shred_vehicles``, ``export_bundle``.
- :class:`KeyService`, :class:`LocalKeyService`, :class:`KeyDestroyedError` — the per-vehicle
  data keys of the encrypted lake (``lake_encryption = "per_vehicle"``, crypto-shredding;
  embedded, or Delta tables with ``lake_url``).
- :data:`LAKE_SCHEMA` and :data:`LAKE_COLUMNS` — the row schema ingestion hands to ``append``.
- :class:`AppendResult`, :class:`CompactionResult`, :class:`RetentionReport`,
  :class:`RetentionAction`, :class:`LakeFile`, :class:`ErasureResult` — results.
- :class:`RetentionPolicy` — days per region and privacy category.
- :class:`BundleManifest`, :func:`read_manifest`, :func:`verify_bundle` — export bundles.

See docs/lake.md and docs/lake-schema.md.
"""

from drivetrain.cloud.lake.erasure import ErasureResult
from drivetrain.cloud.lake.export import BundleManifest, read_manifest, verify_bundle
from drivetrain.cloud.lake.keys import KeyDestroyedError, KeyService, LocalKeyService
from drivetrain.cloud.lake.models import (
    AGGREGATIONS,
    GROUP_BYS,
    LAKE_COLUMNS,
    LAKE_FORMAT_VERSION,
    LAKE_SCHEMA,
    VSS_VERSION,
    AppendResult,
    CompactionResult,
    LakeFile,
    RetentionAction,
    RetentionReport,
    parse_every,
)
from drivetrain.cloud.lake.retention import RetentionPolicy
from drivetrain.cloud.lake.service import Lake

__all__ = [
    "AGGREGATIONS",
    "GROUP_BYS",
    "LAKE_COLUMNS",
    "LAKE_FORMAT_VERSION",
    "LAKE_SCHEMA",
    "VSS_VERSION",
    "AppendResult",
    "BundleManifest",
    "CompactionResult",
    "ErasureResult",
    "KeyDestroyedError",
    "KeyService",
    "Lake",
    "LakeFile",
    "LocalKeyService",
    "RetentionAction",
    "RetentionPolicy",
    "RetentionReport",
    "parse_every",
    "read_manifest",
    "verify_bundle",
]
