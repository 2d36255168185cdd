"""`drivetrain lake` commands: query, raw SQL, counts, compaction, retention and export."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from drivetrain.commands.data_dir import no_platform_data
from drivetrain.commands.db import fail, load_settings_or_exit, open_migrated_database
from drivetrain.commands.lake_hints import EmptyQuery, explain_empty
from drivetrain.commands.output import (
    Column,
    JsonOption,
    arrow_columns,
    arrow_records,
    emit_json,
    print_renderable,
    print_table,
    stderr_console,
)

if TYPE_CHECKING:
    import pyarrow as pa

    from drivetrain.cloud.lake import CompactionResult, Lake, RetentionPolicy, RetentionReport
    from drivetrain.core.settings import Settings

app = typer.Typer(
    help="The fleet data lake: query telemetry, run SQL, compact, expire and export.",
    no_args_is_help=True,
)

_out = Console(highlight=False)
_err = Console(stderr=True, highlight=False)


class Agg(str, Enum):
    """Aggregations, as a command-line choice."""

    mean = "mean"
    min = "min"
    max = "max"
    last = "last"


class GroupBy(str, Enum):
    """Fleet aggregate groupings, as a command-line choice."""

    region = "region"
    vehicle = "vehicle"
    day = "day"


#: The tenant `drivetrain sim fleet` and the embedded bootstrap use, as every command defaults.
DEFAULT_TENANT = "default"
#: ``lake query`` reads this far back from ``--end`` unless ``--start`` says otherwise.
DEFAULT_WINDOW = timedelta(hours=24)

TenantOption = Annotated[
    str, typer.Option("--tenant", "-t", help="The tenant whose data to read.")
]
CsvOption = Annotated[
    Path | None, typer.Option("--csv", dir_okay=False, help="Write all rows to this CSV file.")
]
ParquetOption = Annotated[
    Path | None,
    typer.Option("--parquet", dir_okay=False, help="Write all rows to this Parquet file."),
]
ShowOption = Annotated[
    int, typer.Option("--show", min=0, help="Rows to print in the table (the files get all).")
]


@contextmanager
def _lake(settings: Settings | None = None, *, reading: bool = False) -> Iterator[Lake]:
    """The configured lake; with ``reading``, exit 1 saying where it looked when no region
    of it holds any data (most likely the command runs in another folder)."""
    from drivetrain.cloud.lake import Lake
    from drivetrain.core.errors import DrivetrainError

    settings = settings or load_settings_or_exit()
    try:
        lake = Lake.open(settings)
    except DrivetrainError as e:
        fail(e, code=2)
    if reading and not lake.regions():
        lake.close()
        no_platform_data(settings, "telemetry lake (lake/<REGION>/ with an index)")
    try:
        yield lake
    except DrivetrainError as e:
        fail(e)
    finally:
        lake.close()


def parse_when(text: str, name: str) -> datetime:
    """An ISO 8601 date or date-time; without a timezone it is taken as UTC."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        fail(f"{name} {text!r} is not an ISO 8601 date or date-time, e.g. 2024-05-01T08:00Z",
             code=2)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    console=_err, transient=True)


def _print_arrow(table: pa.Table, title: str, show: int) -> None:
    """Print the first ``show`` rows of ``table`` as a table, then the row count."""
    from drivetrain.commands.output import build_table

    head = arrow_records(table.slice(0, show)) if show else []
    out = _out
    if head:
        columns = arrow_columns(table)
        print_renderable(build_table(title, columns, [list(r.values()) for r in head]), out)
    more = f" (showing {len(head)})" if table.num_rows > len(head) else ""
    out.print(f"{table.num_rows:,} row{'' if table.num_rows == 1 else 's'}{more}")


def _report(table: pa.Table, title: str, show: int, as_json: bool) -> None:
    if as_json:
        emit_json(arrow_records(table))
    else:
        _print_arrow(table, title, show)


def _hint_empty(settings: Settings, lake: Lake, asked: EmptyQuery) -> None:
    console = stderr_console()
    for hint in explain_empty(settings, lake, asked):
        console.print("[yellow]why no rows:[/] ", markup=True, end="")
        console.print(hint, markup=False)


def write_outputs(table: pa.Table, csv: Path | None, parquet: Path | None) -> None:
    """Write ``table`` to the CSV and/or Parquet file asked for."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    try:
        if csv is not None:
            pacsv.write_csv(table, csv)
            _out.print(f"wrote {table.num_rows:,} rows to {csv}")
        if parquet is not None:
            pq.write_table(table, parquet, compression="zstd")
            _out.print(f"wrote {table.num_rows:,} rows to {parquet}")
    except OSError as e:
        fail(f"cannot write the output: {e}")


def _pseudonyms(tenant: str, vins: list[str], *, every_key: bool = False) -> list[str]:
    """The vehicles' pseudonyms under the current key (``every_key``: under every key version
    the tenant has had, so rows written before a key rotation are found too)."""
    if not vins:
        return []
    from drivetrain.cloud.privacy import vehicle_pseudonym, vehicle_pseudonyms
    from drivetrain.core.errors import DrivetrainError

    database = open_migrated_database(load_settings_or_exit())
    try:
        with database.session() as session:
            if every_key:
                return [p for vin in vins for p in vehicle_pseudonyms(session, tenant, vin)]
            return [vehicle_pseudonym(session, tenant, vin) for vin in vins]
    except DrivetrainError as e:
        fail(e)
    finally:
        database.dispose()


@app.command("query")
def query_command(
    tenant: TenantOption = DEFAULT_TENANT,
    start: Annotated[
        str | None,
        typer.Option("--start", help="From (inclusive), ISO 8601; UTC if no zone. "
                     "Default: 24 hours before --end."),
    ] = None,
    end: Annotated[
        str | None,
        typer.Option("--end", help="To (exclusive), ISO 8601; UTC if no zone. Default: now."),
    ] = None,
    path: Annotated[list[str] | None, typer.Option("--path", "-p", help="VSS path (repeat); default all.")] = None,
    vehicle: Annotated[list[str] | None, typer.Option("--vehicle", help="Vehicle pseudonym (repeat).")] = None,
    vin: Annotated[list[str] | None, typer.Option("--vin", help="VIN, pseudonymised for the tenant (repeat).")] = None,
    every: Annotated[str | None, typer.Option("--every", help="Down-sample: 1m, 15s, 1h, 1d ...")] = None,
    agg: Annotated[Agg, typer.Option("--agg", help="Aggregate per bucket or group.")] = Agg.mean,
    group_by: Annotated[
        GroupBy | None,
        typer.Option("--group-by", help="Fleet aggregate of one --path per region, vehicle or day."),
    ] = None,
    region: Annotated[list[str] | None, typer.Option("--region", "-r", help="Only this region (repeat).")] = None,
    csv: CsvOption = None,
    parquet: ParquetOption = None,
    show: ShowOption = 20,
    as_json: JsonOption = False,
) -> None:
    """Signals of vehicles over a time range (default: the last 24 hours), raw or
    down-sampled, or a fleet aggregate.

    With --every the samples are down-sampled per bucket (--agg); with --group-by one --path is
    aggregated per region, vehicle or day. Prints a table (--json: every row as a JSON array
    of objects); --csv/--parquet write all rows. An empty result says why on stderr.
    """
    finish = parse_when(end, "--end") if end is not None else datetime.now(UTC)
    begin = parse_when(start, "--start") if start is not None else finish - DEFAULT_WINDOW
    settings = load_settings_or_exit()
    vehicles = list(vehicle or []) + _pseudonyms(tenant, list(vin or []), every_key=True)
    with _lake(settings, reading=True) as lake:
        if group_by is not None:
            if not path or len(path) != 1:
                fail("--group-by needs exactly one --path", code=2)
            table = lake.fleet_aggregate(tenant, path[0], begin, finish, group_by.value,
                                         agg.value, regions=region or None)
            title = f"{agg.value} of {path[0]} per {group_by.value}"
        else:
            table = lake.signals(tenant, vehicles, list(path or []), begin, finish, every,
                                 agg.value, regions=region or None)
            title = f"signals{f' every {every} ({agg.value})' if every else ''}"
        if table.num_rows == 0:
            _hint_empty(settings, lake, EmptyQuery(
                tenant, list(path or []), list(vehicle or []), list(vin or []), begin, finish,
                region or None,
            ))
    _report(table, title, show, as_json)
    write_outputs(table, csv, parquet)


@app.command("sql")
def sql_command(
    statement: Annotated[str, typer.Argument(help="One SELECT over the view 'telemetry'.")],
    tenant: TenantOption = DEFAULT_TENANT,
    max_rows: Annotated[int, typer.Option("--max-rows", min=1, help="Refuse larger results.")] = 1_000_000,
    timeout_s: Annotated[float, typer.Option("--timeout", min=0.1, help="Stop after this many seconds.")] = 300.0,
    csv: CsvOption = None,
    parquet: ParquetOption = None,
    show: ShowOption = 20,
    as_json: JsonOption = False,
) -> None:
    """Run one SELECT over the view 'telemetry' in DuckDB, confined to the tenant's files.

    Columns of 'telemetry': vehicle, path, ts, value, text, category, batch_id, campaign,
    region, date.
    """
    settings = load_settings_or_exit()
    with _lake(settings, reading=True) as lake:
        table = lake.sql(tenant, statement, max_rows=max_rows, timeout_s=timeout_s)
        if table.num_rows == 0:
            _hint_empty(settings, lake, EmptyQuery(tenant))
    _report(table, "sql", show, as_json)
    write_outputs(table, csv, parquet)


@app.command("counts")
def counts_command(tenant: TenantOption = DEFAULT_TENANT, as_json: JsonOption = False) -> None:
    """Stored samples per region and privacy category (from the lake index, no scan)."""
    settings = load_settings_or_exit()
    with _lake(settings, reading=True) as lake:
        table = lake.counts(tenant)
        if table.num_rows == 0:
            _hint_empty(settings, lake, EmptyQuery(tenant))
    _report(table, f"samples of {tenant}", table.num_rows, as_json)


def _reporter(progress: Progress, verb: str) -> Callable[[str, int, int], None]:
    tasks: dict[str, object] = {}

    def report(region: str, done: int, total: int) -> None:
        if region not in tasks:
            tasks[region] = progress.add_task(f"{verb} {region}", total=total)
        progress.update(tasks[region], completed=done, total=total)  # type: ignore[arg-type]

    return report


KeepOption = Annotated[
    list[str] | None,
    typer.Option("--keep", help="REGION:category=DAYS, overriding the settings (repeat); "
                 "'*' matches any region or category."),
]
TodayOption = Annotated[
    str | None, typer.Option("--today", help="Apply as of this date (YYYY-MM-DD).")]


def print_compaction(results: Sequence[CompactionResult]) -> bool:
    """Print a compaction's table per region; False (and says so) when there was none."""
    if not results:
        _out.print("no region holds data yet")
        return False
    print_table("compaction", [
        Column("region"), Column("partitions", "number"), Column("files before", "number"),
        Column("files after", "number"), Column("rows", "number"),
        Column("MB before", "number"), Column("MB after", "number"),
    ], (
        (r.region, r.partitions, r.files_before, r.files_after, r.rows,
         round(r.bytes_before / 1e6, 1), round(r.bytes_after / 1e6, 1)) for r in results
    ))
    return True


def retention_overrides(keep: Sequence[str]) -> RetentionPolicy:
    """The policy of ``--keep REGION:category=DAYS`` options (exit 2 on a bad one)."""
    from drivetrain.cloud.lake import RetentionPolicy
    from drivetrain.core.errors import DrivetrainError

    overrides: dict[str, int] = {}
    for item in keep:
        key, sep, days = item.partition("=")
        if not sep or not days.strip().isdigit():
            fail(f"--keep {item!r} is not REGION:category=DAYS, e.g. EU:location=30", code=2)
        overrides[key.strip()] = int(days)
    try:
        return RetentionPolicy.from_mapping(overrides)
    except DrivetrainError as e:
        fail(e, code=2)


def parse_today(today: str | None) -> date | None:
    """``--today`` as a date (exit 2 when it is not YYYY-MM-DD)."""
    if today is None:
        return None
    try:
        return date.fromisoformat(today)
    except ValueError:
        fail(f"--today {today!r} is not a date (YYYY-MM-DD)", code=2)


def print_retention(report: RetentionReport) -> None:
    """Print a retention run's actions and what it dropped."""
    dry_run = report.dry_run
    if report.actions:
        print_table(
            "retention (dry run: nothing deleted)" if dry_run else "retention",
            [Column("region"), Column("tenant"), Column("date", "time"), Column("action"),
             Column("expired categories"), Column("rows dropped", "number"),
             Column("rows kept", "number")],
            ((a.region, a.tenant, a.day, a.action, ", ".join(a.categories), a.rows_dropped,
              a.rows_kept) for a in report.actions),
        )
    verb = "would drop" if dry_run else "dropped"
    _out.print(f"{verb} {report.rows_dropped:,} rows: {report.files_deleted:,} files deleted, "
               f"{report.files_rewritten:,} rewritten")


@app.command("compact")
def compact_command(
    region: Annotated[str | None, typer.Option("--region", "-r", help="Only this region.")] = None,
    tenant: Annotated[str | None, typer.Option("--tenant", "-t", help="Only this tenant.")] = None,
    target_rows: Annotated[int, typer.Option("--target-rows", min=1, help="Rows per merged file.")] = 4_000_000,
    keep_replaced_hours: Annotated[int, typer.Option(
        "--keep-replaced-hours", min=0,
        help="Lake on object storage (lake_url): hours a replaced file stays for running "
             "readers and time travel before it is deleted (Delta's default: a week).")] = 168,
) -> None:
    """Merge small files of each partition into sorted files (atomic swap via the index).

    With lake_url set, each region's Delta table is optimized (one commit) and files that
    compactions replaced more than --keep-replaced-hours ago are deleted from storage.
    """
    with _lake() as lake, _progress() as progress:
        results = lake.compact(region, tenant=tenant, target_rows=target_rows,
                               progress=_reporter(progress, "compacting"),
                               keep_replaced_hours=keep_replaced_hours)
        table_format = lake.table_format
    if not print_compaction(results):
        return
    if table_format:
        _out.print(f"deleted {sum(r.files_purged for r in results):,} files replaced more "
                   f"than {keep_replaced_hours} h ago and "
                   f"{sum(r.orphans_purged for r in results):,} never committed")


@app.command("retention")
def retention_command(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only list what would be deleted.")] = False,
    keep: KeepOption = None,
    today: TodayOption = None,
    region: Annotated[list[str] | None, typer.Option("--region", "-r", help="Only this region (repeat).")] = None,
) -> None:
    """Delete telemetry older than the retention policy per region and privacy category, and
    forget batch ids past the re-delivery window (run it daily).

    The policy is the settings' lake_retention_days with --keep on top. Files whose every row
    expired are deleted; files where only some categories expired are rewritten without them.
    Batch ids are remembered lake_batch_window_days after their last sample, so that a
    re-delivered batch is not stored twice; this is what keeps the lake index bounded.
    """
    extra = retention_overrides(keep or [])
    as_of = parse_today(today)
    with _lake() as lake, _progress() as progress:
        policy = lake.retention.merged(extra)
        if not policy.days:
            _out.print("no retention policy (lake_retention_days or --keep): no telemetry "
                       "expires")
        report = lake.apply_retention(today=as_of, dry_run=dry_run, policy=policy,
                                      regions=region or None,
                                      progress=_reporter(progress, "expiring"))
        window = lake.batch_window_days
        table_format = lake.table_format
    print_retention(report)
    if not dry_run and table_format:
        _out.print(f"checkpointed; the tables expire batch ids older than the {window}-day "
                   "re-delivery window themselves")
    elif not dry_run:
        _out.print(f"forgot {report.batch_ids_forgotten:,} batch ids past the {window}-day "
                   "re-delivery window")


@app.command("export")
def export_command(
    region: Annotated[str, typer.Option("--region", "-r", help="The region to export.")],
    out: Annotated[Path, typer.Option("--out", "-o", file_okay=False, help="New directory for the bundle.")],
    tenant: TenantOption = DEFAULT_TENANT,
    vehicle: Annotated[str | None, typer.Option("--vehicle", help="Only this vehicle (pseudonym).")] = None,
    vin: Annotated[str | None, typer.Option("--vin", help="Only this vehicle (VIN).")] = None,
) -> None:
    """Export a region's or one vehicle's telemetry as a self-describing bundle.

    The bundle holds one Parquet file per date and manifest.json (schema, VSS version, rows,
    time range, SHA-256 of each file).
    """
    if vehicle and vin:
        fail("give --vehicle or --vin, not both", code=2)
    pseudonym = vehicle or (_pseudonyms(tenant, [vin])[0] if vin else None)
    with _lake() as lake, _progress() as progress:
        task = progress.add_task(f"exporting {region}", total=None)
        manifest = lake.export_bundle(
            tenant, region, out, pseudonym,
            progress=lambda done, total: progress.update(task, completed=done, total=total),
        )
    _out.print(f"exported {manifest.rows:,} rows in {len(manifest.files)} files to {out} "
               f"({manifest.start or '-'} .. {manifest.end or '-'})")


@app.command("verify")
def verify_command(
    bundle: Annotated[Path, typer.Argument(file_okay=False, help="An export bundle directory.")],
) -> None:
    """Check an export bundle's files against its manifest (SHA-256 and row counts)."""
    from drivetrain.cloud.lake import verify_bundle
    from drivetrain.core.errors import DrivetrainError

    try:
        manifest = verify_bundle(bundle)
    except DrivetrainError as e:
        fail(e)
    _out.print(f"ok: {len(manifest.files)} files, {manifest.rows:,} rows, tenant "
               f"{manifest.tenant}, region {manifest.region}, VSS {manifest.vss_version}")
