"""Export a tenant's (or a data subject's) data as an open, self-describing bundle, and import
a tenant bundle into another installation — idempotently, so a re-run changes nothing.

State rows go to ``data/<table>.json`` with a JSON Schema each; lake telemetry goes to
Parquet bundles per region (and, for a subject, per vehicle). See :mod:`.manifest` for the
layout and :mod:`.tables` for which rows belong to whom.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import pyarrow as pa
import pyarrow.dataset as ds
import sqlalchemy as sa
from sqlalchemy.orm import Session

from drivetrain.cloud.infra import Database, get_tenant, record_audit
from drivetrain.cloud.infra.region_rows import insert_missing
from drivetrain.cloud.infra.service import validate_tenant_id
from drivetrain.cloud.lake import Lake
from drivetrain.cloud.lake.export import verify_bundle
from drivetrain.cloud.lake.models import LAKE_SCHEMA, VSS_VERSION
from drivetrain.cloud.portability.manifest import (
    ExportManifest,
    Section,
    TelemetryPart,
    file_entries,
    inside,
    verify,
    write_manifest,
)
from drivetrain.cloud.portability.tables import (
    REGIONAL,
    Subject,
    from_json_row,
    json_schema,
    portable_tables,
    primary_key,
    registered_regions,
    subject_rows,
    table_named,
    tables_for,
    to_json_row,
)
from drivetrain.cloud.privacy import pseudonymiser
from drivetrain.cloud.twins.personal import write_personal
from drivetrain.core.errors import BadInputError, ConflictError, NotFoundError, StorageError

#: Largest data file an import reads, bytes.
MAX_SECTION_BYTES: Final = 1 << 30
#: Rows per existence check and insert on import.
_CHUNK: Final = 500
#: Batch ids per lake append on import (a batch's rows always travel in one append).
_BATCHES_PER_APPEND: Final = 2_000

Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class ImportReport:
    """What an import did: per table, rows inserted and rows already there (identical)."""

    tenant: str
    inserted: dict[str, int] = field(default_factory=dict)
    unchanged: dict[str, int] = field(default_factory=dict)
    telemetry_written: int = 0
    telemetry_skipped: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"tenant": self.tenant, "inserted": self.inserted, "unchanged": self.unchanged,
                "telemetry_written": self.telemetry_written,
                "telemetry_skipped": self.telemetry_skipped}


def _dump_rows(rows: list[dict[str, Any]]) -> str:
    """One row per line, keys sorted: equal content, equal bytes."""
    if not rows:
        return "[]\n"
    return "[\n" + ",\n".join(json.dumps(r, sort_keys=True) for r in rows) + "\n]\n"


def export_data(
    database: Database,
    lake: Lake,
    subject: Subject,
    out_dir: Path,
    *,
    actor: str,
    progress: Progress | None = None,
) -> ExportManifest:
    """Write ``subject``'s state rows and telemetry as a bundle in ``out_dir`` (new or
    empty); records ``portability.export`` in the tenant's audit log.

    Raises:
        BadInputError: ``out_dir`` exists and is not empty.
        NotFoundError: the tenant does not exist.
        StorageError: files cannot be written.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise BadInputError(f"export directory {out_dir} exists and is not empty; expected a "
                            "new or empty directory")
    sections: list[Section] = []
    try:
        (out_dir / "data").mkdir(parents=True, exist_ok=True)
        (out_dir / "schemas").mkdir(exist_ok=True)
        with database.session() as session:
            get_tenant(session, subject.tenant)  # NotFoundError when there is none
            for table in tables_for(subject):
                rows = [to_json_row(table, r) for r in subject_rows(session, table, subject)]
                data, schema = f"data/{table.name}.json", f"schemas/{table.name}.schema.json"
                (out_dir / data).write_text(_dump_rows(rows), encoding="utf-8")
                (out_dir / schema).write_text(
                    json.dumps(json_schema(table), indent=1, sort_keys=True) + "\n",
                    encoding="utf-8")
                sections.append(Section(table.name, data, schema, len(rows)))
                if progress is not None:
                    progress(f"{table.name}: {len(rows)} rows")
            pseudonym = pseudonymiser(session, subject.tenant)
        telemetry = _export_telemetry(lake, subject, out_dir, pseudonym.every, progress)
        manifest = ExportManifest(
            tenant=subject.tenant, subject="tenant" if subject.whole_tenant else "vehicles",
            vins=tuple(sorted(subject.vins or ())), created_at=datetime.now(UTC).isoformat(),
            vss_version=VSS_VERSION, sections=tuple(sections), telemetry=tuple(telemetry),
            files=file_entries(out_dir),
        )
        write_manifest(out_dir, manifest)
    except OSError as e:
        raise StorageError(f"cannot write the export in {out_dir}: {e}") from e
    with database.session() as session:
        record_audit(session, tenant=subject.tenant, actor=actor, action="portability.export",
                     target="tenant:" + subject.tenant if subject.whole_tenant
                     else "vehicles:" + ",".join(manifest.vins),
                     details={"sections": len(sections),
                              "rows": sum(s.rows for s in sections),
                              "telemetry_rows": sum(t.rows for t in telemetry)})
    return manifest


def _export_telemetry(
    lake: Lake, subject: Subject, out_dir: Path, pseudonyms: Callable[[str], tuple[str, ...]],
    progress: Progress | None,
) -> list[TelemetryPart]:
    """The telemetry of ``subject``; a vehicle's under each of its pseudonyms (one per
    pseudonym key version): ``telemetry/REGION/VIN`` under the current key,
    ``telemetry/REGION/VIN-PSEUDONYM`` under an earlier one."""
    parts = []
    regions = [r for r in lake.regions() if lake.files(subject.tenant, regions=[r])]
    for region in regions:
        if subject.vins is None:
            targets: list[tuple[str, str | None]] = [(f"telemetry/{region}", None)]
        else:
            targets = [(f"telemetry/{region}/{vin}" + (f"-{p}" if i else ""), p)
                       for vin in sorted(subject.vins) for i, p in enumerate(pseudonyms(vin))]
        for relative, vehicle in targets:
            bundle = lake.export_bundle(subject.tenant, region, out_dir / relative, vehicle)
            if vehicle is not None and bundle.rows == 0:  # not this vehicle's region
                shutil.rmtree(out_dir / relative)
                continue
            parts.append(TelemetryPart(region, relative, bundle.rows))
            if progress is not None:
                progress(f"telemetry {relative}: {bundle.rows} rows")
    return parts


def _read_section(root: Path, section: Section) -> list[Any]:
    path = inside(root, section.path)
    if path.stat().st_size > MAX_SECTION_BYTES:
        raise BadInputError(f"{section.path} is larger than {MAX_SECTION_BYTES} bytes")
    try:
        data = json.loads(path.read_bytes())
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError, ValueError) as e:
        raise BadInputError(f"{section.path} is not readable JSON: {e}") from e
    if not isinstance(data, list):
        raise BadInputError(f"{section.path} holds {type(data).__name__}; expected an array")
    if len(data) != section.rows:
        raise BadInputError(f"{section.path} holds {len(data)} rows; the manifest says "
                            f"{section.rows}")
    return data


def import_bundle(
    database: Database,
    lake: Lake,
    bundle_dir: Path,
    *,
    actor: str,
    tenant: str | None = None,
    progress: Progress | None = None,
) -> ImportReport:
    """Load a whole-tenant bundle (into ``tenant``, default the bundle's own).

    Idempotent: a row already present and identical is left alone, a batch of telemetry
    already stored is skipped; a row present with *other* content (e.g. a VIN registered to
    another tenant, another pseudonym key) refuses the whole state import, naming it, and
    nothing changes. State is committed before telemetry is appended; after a failure in
    between, running the import again completes it.

    Raises:
        BadInputError: not a bundle, a subject archive, a malformed file or row.
        VerificationError: a file is missing or altered.
        ConflictError: a row that exists with other content.
        StorageError: the lake cannot be written.
    """
    root = Path(bundle_dir)
    manifest = verify(root)
    if manifest.subject != "tenant":
        raise BadInputError("this bundle is a data subject's access archive (subject "
                            f"{manifest.subject!r}); import takes a whole-tenant export")
    target = validate_tenant_id(tenant or manifest.tenant)
    allowed = portable_tables()
    parsed: dict[str, list[dict[str, Any]]] = {}
    for section in manifest.sections:
        table = table_named(section.table, allowed)
        rows = [from_json_row(table, item, f"{section.path}[{i}]")
                for i, item in enumerate(_read_section(root, section))]
        if "tenant_id" in table.c:
            for row in rows:
                if row["tenant_id"] != manifest.tenant:
                    raise BadInputError(f"{section.path}: a row of tenant "
                                        f"{row['tenant_id']!r:.70}; the bundle is "
                                        f"{manifest.tenant!r}'s")
                row["tenant_id"] = target
        parsed[table.name] = rows
    report = ImportReport(target)
    with database.session() as session:
        if _tenant_exists(session, target):
            parsed.pop("tenants", None)  # merging into a tenant that exists: keep its row
        for table in allowed:
            if table.name in parsed:
                inserted, same = _load_rows(session, table, parsed[table.name], target)
                report.inserted[table.name], report.unchanged[table.name] = inserted, same
                if progress is not None:
                    progress(f"{table.name}: {inserted} inserted, {same} already there")
        _advance_sequences(session, [t for t in allowed if t.name in parsed])
        record_audit(session, tenant=target, actor=actor, action="portability.import",
                     target=f"tenant:{target}",
                     details={"from_tenant": manifest.tenant, "created_at": manifest.created_at,
                              "inserted": sum(report.inserted.values())})
    written = skipped = 0
    for part in manifest.telemetry:
        done, kept = _import_telemetry(lake, inside(root, part.path), part.region, target)
        written, skipped = written + done, skipped + kept
        if progress is not None:
            progress(f"telemetry {part.path}: {done} rows stored, {kept} already there")
    return ImportReport(target, report.inserted, report.unchanged, written, skipped)


def _tenant_exists(session: Session, tenant: str) -> bool:
    try:
        get_tenant(session, tenant)
    except NotFoundError:
        return False
    return True


def _load_rows(
    session: Session, table: sa.Table, rows: list[dict[str, Any]], tenant: str
) -> tuple[int, int]:
    if table.name == "twin_reported_personal":  # into each vehicle's store, newer value wins
        changed = write_personal(session, [
            (r["vin"], r["path"], r["kind"], r["num"], r["text"], r["ts_ns"], r["updated_ns"])
            for r in rows])
        return len(changed), len(rows) - len(changed)
    if table.name in REGIONAL:  # into each vehicle's region store, rows already there kept
        vins = {r["vin"] for r in rows}
        regions = registered_regions(session, Subject(tenant, frozenset(vins)))
        strangers = sorted(vins - set(regions))
        if strangers:
            raise BadInputError(f"{table.name}: rows of vehicle(s) {', '.join(strangers[:5])} "
                                f"that tenant {tenant} has not registered")
        return insert_missing(session, table, rows, regions)
    keys = list(table.primary_key.columns)
    inserted = same = 0
    for start in range(0, len(rows), _CHUNK):
        chunk = rows[start:start + _CHUNK]
        wanted = [primary_key(table, r) for r in chunk]
        if len(keys) == 1:
            condition = keys[0].in_([k[0] for k in wanted])
        else:
            condition = sa.tuple_(*keys).in_(wanted)
        existing = {primary_key(table, r._mapping): dict(r._mapping)
                    for r in session.execute(sa.select(table).where(condition))}
        fresh = []
        for row, key in zip(chunk, wanted):
            there = existing.get(key)
            if there is None:
                fresh.append(row)
            elif there == row:
                same += 1
            else:
                differs = sorted(c for c in row if row[c] != there.get(c))
                raise ConflictError(f"{table.name} {key!r:.120} exists with other content "
                                    f"({', '.join(differs)}); nothing was imported")
        if fresh:
            session.execute(sa.insert(table), fresh)
            inserted += len(fresh)
    session.flush()
    return inserted, same


def _advance_sequences(session: Session, tables: Iterable[sa.Table]) -> None:
    """PostgreSQL: move each serial key's sequence past the imported ids (SQLite needs
    nothing), so the next id the installation hands out does not collide."""
    if session.get_bind().dialect.name != "postgresql":
        return
    for table in tables:
        for column in table.primary_key.columns:
            if column.autoincrement is True and isinstance(column.type, sa.Integer):
                session.execute(sa.text(
                    f"SELECT setval(pg_get_serial_sequence('{table.name}', '{column.name}'), "
                    f"GREATEST((SELECT COALESCE(MAX({column.name}), 0) FROM {table.name}), 1))"))


def _import_telemetry(lake: Lake, part: Path, region: str, tenant: str) -> tuple[int, int]:
    """Append one region's Parquet bundle, whole batches per call (a batch split over two
    files would otherwise count as stored after its first half)."""
    manifest = verify_bundle(part)
    if manifest.region != region:
        raise BadInputError(f"{part}: telemetry of region {manifest.region!r:.20}, listed as "
                            f"{region!r}")
    if not manifest.files:
        return 0, 0
    dataset = ds.dataset([str(inside(part, f.path)) for f in manifest.files],
                         schema=LAKE_SCHEMA, format="parquet")
    batch_ids = sorted(set(dataset.to_table(columns=["batch_id"]).column("batch_id")
                           .cast(pa.utf8()).to_pylist()))
    written = skipped = 0
    for start in range(0, len(batch_ids), _BATCHES_PER_APPEND):
        chunk = batch_ids[start:start + _BATCHES_PER_APPEND]
        table = dataset.to_table(filter=ds.field("batch_id").isin(chunk))
        result = lake.append(region, tenant, table)
        written, skipped = written + result.rows_written, skipped + result.rows_skipped
    return written, skipped
