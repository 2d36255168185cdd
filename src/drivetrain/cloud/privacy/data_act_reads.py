"""Reading what a Data Act :class:`Access` allows: the lake over a time window, the twin's
latest values, and the open formats a download is written in (JSON, CSV, Parquet), each with
the VSS metadata of its signals (name, unit, datatype, description).

The lake is read with the same row filter as every purpose-bound read: a
:class:`~drivetrain.cloud.privacy.purposes.ReadPermit` of purpose ``owner_access`` over the
vehicle's pseudonyms (every key version) and the categories of the allowed paths, and only
those paths. A download answers the VIN, never the lake's pseudonym.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from sqlalchemy.orm import Session

from drivetrain.cloud.lake import Lake
from drivetrain.cloud.privacy.data_act import Access
from drivetrain.cloud.privacy.purposes import DATA_ACT_PURPOSE, read_permit
from drivetrain.cloud.privacy.service import vehicle_pseudonyms
from drivetrain.cloud.twins.reported import reported_values
from drivetrain.cloud.twins.values import decode_value
from drivetrain.core.errors import BadInputError
from drivetrain.core.vss import Catalog

Format = Literal["json", "csv", "parquet"]
FORMATS: Final[tuple[Format, ...]] = ("json", "csv", "parquet")
MEDIA_TYPES: Final[Mapping[Format, str]] = {
    "json": "application/json", "csv": "text/csv; charset=utf-8",
    "parquet": "application/vnd.apache.parquet",
}
#: Longest window one download covers.
MAX_WINDOW: Final = timedelta(days=31)
#: Most values one download holds (narrow the window or the containers beyond it).
MAX_VALUES: Final = 500_000
DOWNLOAD_SCHEMA: Final = pa.schema([
    pa.field("vin", pa.utf8()), pa.field("path", pa.utf8()),
    pa.field("ts", pa.timestamp("ns", tz="UTC")), pa.field("value", pa.float64()),
    pa.field("text", pa.utf8()),
])


def signal_metadata(catalog: Catalog, paths: list[str] | tuple[str, ...]
                    ) -> dict[str, dict[str, Any]]:
    """Per path: its VSS name, unit, datatype, description and privacy category."""
    out: dict[str, dict[str, Any]] = {}
    for path in paths:
        spec = catalog.get(path)
        out[path] = {"unit": spec.unit, "datatype": str(spec.datatype),
                     "description": spec.description, "category": spec.privacy_category}
    return out


def read_window(
    session: Session, lake: Lake, tenant: str, access: Access, start: datetime, end: datetime,
) -> pa.Table:
    """The vehicle's values of ``access.paths`` in [start, end), as :data:`DOWNLOAD_SCHEMA`.

    Raises:
        BadInputError: an empty or reversed window, or one over :data:`MAX_WINDOW`.
        QueryError: more than :data:`MAX_VALUES` values.
    """
    if end <= start:
        raise BadInputError(f"end {end.isoformat()} is not after start {start.isoformat()}")
    if end - start > MAX_WINDOW:
        raise BadInputError(f"the window is {end - start}; at most {MAX_WINDOW.days} days")
    pseudonyms = vehicle_pseudonyms(session, tenant, access.vin)
    permit = read_permit(DATA_ACT_PURPOSE, dict.fromkeys(pseudonyms, access.categories))
    table = lake.signals(tenant, list(pseudonyms), list(access.paths), start, end,
                         max_rows=MAX_VALUES, permit=permit.allowed)
    vins = pa.array([access.vin] * table.num_rows, pa.utf8())
    return pa.table([vins, table["path"], table["ts"], table["value"], table["text"]],
                    schema=DOWNLOAD_SCHEMA)


def latest_values(session: Session, access: Access) -> dict[str, dict[str, Any]]:
    """The twin's latest reported value of each allowed path that has one."""
    out: dict[str, dict[str, Any]] = {}
    for path, row in sorted(reported_values(session, access.vin, access.paths).items()):
        value = decode_value(row.kind, row.num, row.text)
        if isinstance(value, float) and not math.isfinite(value):
            value = None
        out[path] = {"value": value,
                     "at": datetime.fromtimestamp(row.ts_ns / 1e9, UTC).isoformat()}
    return out


def _columns(table: pa.Table) -> tuple[list[Any], ...]:
    """The download's columns as Python lists, times as ISO 8601 UTC text (Arrow formats
    them: far faster than a datetime per value), non-finite numbers as None."""
    stamps = pc.strftime(table["ts"], format="%Y-%m-%dT%H:%M:%SZ").to_pylist()
    values = [v if v is None or math.isfinite(v) else None for v in table["value"].to_pylist()]
    return (table["vin"].to_pylist(), table["path"].to_pylist(), stamps, values,
            table["text"].to_pylist())


def render(
    table: pa.Table, fmt: Format, *, access: Access, catalog: Catalog, start: datetime,
    end: datetime,
) -> bytes:
    """``table`` in ``fmt`` with the VSS metadata of ``access``'s paths: in the JSON body,
    as Parquet key-value metadata (``vss``, ``data_act``), or (CSV) a ``unit`` column."""
    metadata = signal_metadata(catalog, access.paths)
    about = {"vin": access.vin, "containers": list(access.containers), "start":
             start.isoformat(), "end": end.isoformat(), "withheld": access.withheld,
             "rows": table.num_rows}
    if fmt == "json":
        names = ("vin", "path", "ts", "value", "text")
        body = {**about, "signals": metadata,
                "data": [dict(zip(names, row, strict=True)) for row in zip(*_columns(table))]}
        return json.dumps(body, separators=(",", ":")).encode()
    if fmt == "csv":
        vins, paths, stamps, values, texts = _columns(table)
        units = {p: m["unit"] or "" for p, m in metadata.items()}
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["vin", "path", "ts", "value", "text", "unit"])
        writer.writerows(zip(vins, paths, stamps, ("" if v is None else repr(v) for v in values),
                             (x or "" for x in texts), (units[p] for p in paths), strict=True))
        return out.getvalue().encode()
    if fmt != "parquet":
        raise BadInputError(f"format {fmt!r} is not known; expected one of {', '.join(FORMATS)}")
    described = table.replace_schema_metadata({
        "vss": json.dumps(metadata), "data_act": json.dumps(about)})
    sink = io.BytesIO()
    pq.write_table(described, sink)
    return sink.getvalue()
