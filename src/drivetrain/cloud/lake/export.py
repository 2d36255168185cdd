"""Export bundles: a vehicle's or a whole region's telemetry as self-describing files.

A bundle is a directory::

    manifest.json                                  what it holds (below)
    data/date=2024-05-01/telemetry.parquet         one Parquet file per UTC date

The Parquet files have the lake's row schema (docs/lake-schema.md). ``manifest.json`` names
the bundle format, the lake schema (column names, types, descriptions), the VSS release, the
tenant, region and (for a vehicle export) the vehicle pseudonym, row counts per file and per
privacy category, the time range, and the SHA-256 of every file, so a recipient can check the
bundle with any tool (:func:`verify_bundle` does it here).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from drivetrain.cloud.lake.crypto import key_id_of
from drivetrain.cloud.lake.models import (
    LAKE_FORMAT_VERSION,
    LAKE_SCHEMA,
    VSS_VERSION,
    LakeFile,
)
from drivetrain.cloud.lake.store import PARQUET_OPTIONS, ROW_GROUP_ROWS
from drivetrain.core.errors import BadInputError, StorageError, VerificationError

BUNDLE_FORMAT: Final = "drivetrain-telemetry-bundle"
BUNDLE_FORMAT_VERSION: Final = 1
MANIFEST_NAME: Final = "manifest.json"


@dataclass(frozen=True, slots=True)
class BundleFile:
    """One data file of a bundle: path relative to the bundle, date, rows, size, SHA-256."""

    path: str
    date: str
    rows: int
    bytes: int
    sha256: str


@dataclass(frozen=True, slots=True)
class BundleManifest:
    """The contents of ``manifest.json``; :meth:`to_dict`/:meth:`from_dict` round-trip."""

    tenant: str
    region: str
    vehicle: str | None
    created_at: str
    rows: int
    start: str | None
    end: str | None
    categories: Mapping[str, int]
    files: tuple[BundleFile, ...]
    schema: tuple[Mapping[str, Any], ...]
    vss_version: str = VSS_VERSION
    lake_format_version: int = LAKE_FORMAT_VERSION
    format: str = BUNDLE_FORMAT
    format_version: int = BUNDLE_FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        data = asdict(self)
        data["files"] = [asdict(f) for f in self.files]
        data["schema"] = [dict(s) for s in self.schema]
        data["categories"] = dict(self.categories)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BundleManifest:
        """Parse a manifest dictionary.

        Raises:
            BadInputError: not a bundle manifest, a newer format, or a missing field.
        """
        if data.get("format") != BUNDLE_FORMAT:
            raise BadInputError(f"manifest format {data.get('format')!r}; expected "
                                f"{BUNDLE_FORMAT!r}")
        if not isinstance(data.get("format_version"), int) or \
                data["format_version"] > BUNDLE_FORMAT_VERSION:
            raise BadInputError(f"manifest format_version {data.get('format_version')!r}; this "
                                f"version reads up to {BUNDLE_FORMAT_VERSION}")
        try:
            return cls(
                tenant=str(data["tenant"]), region=str(data["region"]),
                vehicle=None if data["vehicle"] is None else str(data["vehicle"]),
                created_at=str(data["created_at"]), rows=int(data["rows"]),
                start=data["start"], end=data["end"],
                categories={str(k): int(v) for k, v in data["categories"].items()},
                files=tuple(BundleFile(str(f["path"]), str(f["date"]), int(f["rows"]),
                                       int(f["bytes"]), str(f["sha256"]))
                            for f in data["files"]),
                schema=tuple(dict(s) for s in data["schema"]),
                vss_version=str(data["vss_version"]),
                lake_format_version=int(data["lake_format_version"]),
                format=str(data["format"]), format_version=int(data["format_version"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise BadInputError(f"manifest field missing or malformed: {e}") from e


def schema_description() -> tuple[dict[str, Any], ...]:
    """The lake row schema as manifest entries: name, Arrow type, nullable, description."""
    return tuple(
        {
            "name": f.name,
            "type": str(f.type),
            "nullable": f.nullable,
            "description": (f.metadata or {}).get(b"description", b"").decode(),
        }
        for f in LAKE_SCHEMA
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _iso(ns: int) -> str:
    """ISO 8601 UTC with all nine fractional digits (datetime would round to microseconds)."""
    stamp = pa.array([ns], pa.timestamp("ns", tz="UTC"))
    return str(pc.strftime(stamp, format="%Y-%m-%dT%H:%M:%SZ")[0].as_py())


def local_files(
    path_of: Callable[[LakeFile], Path], file_format: ds.FileFormat | str = "parquet"
) -> Callable[[Sequence[LakeFile]], ds.Dataset]:
    """``open_files`` for :func:`write_bundle` over local Parquet files at ``path_of``;
    encrypted files (a key id in the name) are read through ``file_format`` (the encrypted
    lake's decrypting format), plain ones as plain Parquet."""
    def open_files(files: Sequence[LakeFile]) -> ds.Dataset:
        children = [
            ds.dataset([str(path_of(f)) for f in files
                        if (key_id_of(f.name) is not None) == encrypted],
                       schema=LAKE_SCHEMA, format=file_format if encrypted else "parquet")
            for encrypted in (True, False)
        ]
        return ds.dataset(children)
    return open_files


def in_lake_schema(batch: pa.RecordBatch) -> pa.Table:
    """``batch`` with exactly the lake schema's columns and types (a table-format lake
    stores plain strings and microseconds, and has partition and merged columns besides);
    a column it lacks is null."""
    columns = [
        batch.column(f.name).cast(f.type) if f.name in batch.schema.names
        else pa.nulls(batch.num_rows, f.type)
        for f in LAKE_SCHEMA
    ]
    return pa.Table.from_arrays(columns, schema=LAKE_SCHEMA)


def write_bundle(
    files: Sequence[LakeFile],
    open_files: Callable[[Sequence[LakeFile]], ds.Dataset],
    *,
    tenant: str,
    region: str,
    vehicle: str | None,
    out_dir: Path,
    progress: Callable[[int, int], None] | None = None,
) -> BundleManifest:
    """Write the rows of ``files`` (of ``vehicle`` only, if given) as a bundle in ``out_dir``
    (plain Parquet, for its recipient, also from the encrypted lake).

    ``open_files`` gives the dataset of some of ``files`` (one date's): local Parquet files
    on the embedded lake, exactly those files of the table's version on the table-format
    lake. Its rows are written in the lake schema, whatever the stored types.

    Raises:
        BadInputError: ``out_dir`` exists and is not empty (a bundle never overwrites).
        StorageError: a file cannot be read or written.
    """
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise BadInputError(f"export directory {out_dir} exists and is not empty; expected a "
                            "new or empty directory")
    by_day: dict[str, list[LakeFile]] = {}
    for f in files:
        by_day.setdefault(f.day.isoformat(), []).append(f)
    written: list[BundleFile] = []
    categories: dict[str, int] = {}
    low, high = None, None
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for done, (day, day_files) in enumerate(sorted(by_day.items()), start=1):
            dataset = open_files(day_files)
            condition = None if vehicle is None else ds.field("vehicle") == vehicle
            relative = f"data/date={day}/telemetry.parquet"
            target = out_dir / relative
            rows = 0
            writer: pq.ParquetWriter | None = None
            try:
                # decrypting calls the key service (Python): read in this thread, which
                # releases the interpreter lock (shredding.py says why)
                encrypted = any(key_id_of(f.name) is not None for f in day_files)
                batches = dataset.to_table(filter=condition).to_batches() if encrypted \
                    else dataset.to_batches(filter=condition)
                for batch in batches:
                    if batch.num_rows == 0:
                        continue
                    if writer is None:
                        target.parent.mkdir(parents=True, exist_ok=True)
                        writer = pq.ParquetWriter(target, LAKE_SCHEMA, **PARQUET_OPTIONS)
                    table = in_lake_schema(batch)
                    writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
                    rows += batch.num_rows
                    ts = table.column("ts").cast(pa.int64())
                    lo, hi = pc.min(ts).as_py(), pc.max(ts).as_py()
                    low = lo if low is None else min(low, lo)
                    high = hi if high is None else max(high, hi)
                    cats = pc.value_counts(table.column("category").cast(pa.utf8()))
                    for item in cats.to_pylist():
                        categories[item["values"]] = categories.get(item["values"], 0) + \
                            item["counts"]
            finally:
                if writer is not None:
                    writer.close()
            if rows:
                written.append(BundleFile(relative, day, rows, target.stat().st_size,
                                          _sha256(target)))
            if progress is not None:
                progress(done, len(by_day))
        manifest = BundleManifest(
            tenant=tenant, region=region, vehicle=vehicle,
            created_at=datetime.now(UTC).isoformat(),
            rows=sum(f.rows for f in written),
            start=None if low is None else _iso(low),
            end=None if high is None else _iso(high),
            categories=dict(sorted(categories.items())),
            files=tuple(written),
            schema=schema_description(),
        )
        (out_dir / MANIFEST_NAME).write_text(json.dumps(manifest.to_dict(), indent=2) + "\n")
    except (OSError, pa.ArrowInvalid) as e:
        raise StorageError(f"cannot write the export bundle in {out_dir}: {e}") from e
    return manifest


def read_manifest(bundle_dir: Path) -> BundleManifest:
    """The manifest of the bundle in ``bundle_dir``.

    Raises:
        BadInputError: no manifest, or one that is not valid JSON or not a bundle manifest.
    """
    path = bundle_dir / MANIFEST_NAME
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as e:
        raise BadInputError(f"{bundle_dir} has no {MANIFEST_NAME}; not an export bundle") from e
    except (OSError, json.JSONDecodeError) as e:
        raise BadInputError(f"{path} is not readable JSON: {e}") from e
    if not isinstance(data, dict):
        raise BadInputError(f"{path} holds {type(data).__name__}; expected an object")
    return BundleManifest.from_dict(data)


def verify_bundle(bundle_dir: Path) -> BundleManifest:
    """Check every file of the bundle against its manifest (SHA-256 and row count).

    Raises:
        BadInputError: the manifest is missing or malformed, or names a path outside the bundle.
        VerificationError: a file is missing, altered, or holds another number of rows.
    """
    manifest = read_manifest(bundle_dir)
    root = bundle_dir.resolve()
    for f in manifest.files:
        path = (root / f.path).resolve()
        if not path.is_relative_to(root):
            raise BadInputError(f"manifest names {f.path!r}, outside the bundle")
        if not path.is_file():
            raise VerificationError(f"bundle file {f.path} is missing")
        if _sha256(path) != f.sha256:
            raise VerificationError(f"bundle file {f.path} does not match its SHA-256")
        rows = pq.ParquetFile(path).metadata.num_rows
        if rows != f.rows:
            raise VerificationError(f"bundle file {f.path} holds {rows} rows; the manifest "
                                    f"says {f.rows}")
    if sum(f.rows for f in manifest.files) != manifest.rows:
        raise VerificationError(f"manifest rows {manifest.rows} differ from the sum over its "
                                "files")
    return manifest
