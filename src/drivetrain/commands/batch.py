"""`drivetrain batch` commands: the lake's batch jobs on Apache Spark (local or a cluster)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from drivetrain.commands.db import fail, load_settings_or_exit
from drivetrain.commands.lake import (
    DEFAULT_TENANT,
    Agg,
    GroupBy,
    KeepOption,
    ShowOption,
    TenantOption,
    TodayOption,
    _hint_empty,
    _lake,
    _report,
    parse_when,
)
from drivetrain.commands.lake_hints import EmptyQuery
from drivetrain.commands.output import JsonOption, emit_json

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame, SparkSession

    from drivetrain.cloud.batch import TimeRange
    from drivetrain.cloud.batch.maintenance import Discarded
    from drivetrain.core.settings import Settings

app = typer.Typer(
    help="Batch jobs over the telemetry lake on Apache Spark (local mode or a cluster): "
    "fleet aggregates, model training features, compaction and retention, reading exactly "
    "the files DuckDB reads.",
    no_args_is_help=True,
)

_out = Console(highlight=False)
_err = Console(stderr=True, highlight=False)

MasterOption = Annotated[
    str | None,
    typer.Option("--master", help="Spark master: local[N] or a cluster URL such as "
                 "spark://host:7077. Default: the spark_master setting (local[2])."),
]
StartOption = Annotated[
    str | None, typer.Option("--start", help="From (inclusive), ISO 8601; UTC if no zone. "
                             "Default with no --end: all of the data.")]
EndOption = Annotated[
    str | None, typer.Option("--end", help="To (exclusive), ISO 8601; UTC if no zone.")]
RegionOption = Annotated[
    list[str] | None, typer.Option("--region", "-r", help="Only this region (repeat).")]
OutOption = Annotated[
    Path | None,
    typer.Option("--out", file_okay=False, help="Write every row as Parquet into this new "
                 "directory, from the Spark executors (for results too large to print)."),
]


def _time_range(start: str | None, end: str | None) -> TimeRange | None:
    from drivetrain.cloud.batch import TimeRange
    from drivetrain.core.errors import QueryError

    if start is None and end is None:
        return None
    if start is None or end is None:
        fail("give both --start and --end, or neither (all of the data)", code=2)
    try:
        return TimeRange.of(parse_when(start, "--start"), parse_when(end, "--end"))
    except QueryError as e:
        fail(e, code=2)


@contextmanager
def _steps(total: int) -> Iterator[Callable[[str], None]]:
    """A progress bar on stderr, one step per stage of the job."""
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=_err, transient=True)
    with progress:
        task = progress.add_task("", total=total)
        started = [False]

        def step(description: str) -> None:
            if started[0]:
                progress.advance(task)
            started[0] = True
            progress.update(task, description=description)

        yield step
        progress.advance(task)


def _run(
    master: str | None,
    tenant: str,
    time_range: TimeRange | None,
    regions: list[str] | None,
    job: Callable[[DataFrame], DataFrame],
    out: Path | None,
    what: str,
    paths_asked: Sequence[str] = (),
) -> pa.Table | None:
    """Start Spark, read the tenant's live files, run ``job``; collect the result, or write
    it under ``out`` (then None)."""
    from drivetrain.cloud.batch import run_on_live_files, to_arrow

    if out is not None and out.exists():
        fail(f"--out {out} exists; name a new directory", code=2)
    settings = load_settings_or_exit()
    chosen = _checked_master(master, settings)
    with _lake(settings, reading=True) as lake, _steps(4) as step:
        step("listing the lake's live files")
        start_ns, end_ns = (None, None) if time_range is None else (time_range.start_ns,
                                                                    time_range.end_ns)
        # also refuses a bad tenant or region before a JVM starts
        listed = len(lake.live_paths(tenant, regions=regions, start_ns=start_ns, end_ns=end_ns))
        step(f"starting Spark on {chosen}")
        with _session(chosen) as spark:
            step(f"{what} over {listed:,} file{'' if listed == 1 else 's'}")
            if out is not None:
                target = str(out)

                def write(frame: DataFrame) -> None:
                    # overwrite: a run retried after a file vanished replaces its partial
                    # output (the directory did not exist before this command)
                    job(frame).write.mode("overwrite").parquet(target)

                run_on_live_files(spark, lake, tenant, write, time_range=time_range,
                                  regions=regions)
                rows = spark.read.parquet(target).count()
                _out.print(f"wrote {rows:,} rows of {what} as Parquet to {out}")
                return None
            table, _ = run_on_live_files(spark, lake, tenant, lambda f: to_arrow(job(f)),
                                         time_range=time_range, regions=regions)
            if table.num_rows == 0:
                _hint_empty(settings, lake, EmptyQuery(
                    tenant, paths_asked, (), (), *_bounds(time_range), regions))
            return table


def _checked_master(master: str | None, settings: Settings) -> str:
    """``--master`` or the setting, checked with the runtime before anything is read."""
    from drivetrain.cloud.batch import check_master, check_runtime
    from drivetrain.core.errors import DrivetrainError

    chosen = master or settings.spark_master
    try:
        check_master(chosen)
        check_runtime()
    except DrivetrainError as e:
        fail(e, code=2)
    return chosen


@contextmanager
def _session(master: str) -> Iterator[SparkSession]:
    """The Spark session on ``master``; stopped after, unless it was already running."""
    from drivetrain.cloud.batch import spark_session
    from drivetrain.core.errors import DrivetrainError

    running = _running_session()
    try:
        spark = spark_session(master)
    except DrivetrainError as e:
        fail(e, code=2)
    try:
        yield spark
    finally:
        if running is None:  # a session this command started; one it joined lives on
            spark.stop()


def _bounds(time_range: TimeRange | None) -> tuple[datetime | None, datetime | None]:
    if time_range is None:
        return None, None
    return (datetime.fromtimestamp(time_range.start_ns / 1e9, UTC),
            datetime.fromtimestamp(time_range.end_ns / 1e9, UTC))


def _running_session() -> SparkSession | None:
    """The Spark session already running in this process, if any."""
    try:
        from pyspark.sql import SparkSession
    except ModuleNotFoundError:
        return None
    return SparkSession.getActiveSession()


def _with_times(table: pa.Table) -> pa.Table:
    """``ts`` (int64 ns) shown as a UTC timestamp."""
    import pyarrow as pa

    if "ts" not in table.column_names:
        return table
    index = table.column_names.index("ts")
    return table.set_column(index, "ts", table.column("ts").cast(pa.timestamp("ns", tz="UTC")))


@app.command("aggregate")
def aggregate_command(
    tenant: TenantOption = DEFAULT_TENANT,
    start: StartOption = None,
    end: EndOption = None,
    path: Annotated[list[str] | None, typer.Option("--path", "-p", help="VSS path (repeat); default all.")] = None,
    group_by: Annotated[
        GroupBy | None,
        typer.Option("--group-by", help="Fleet aggregate of one --path per region, vehicle or "
                     "day (as `lake query --group-by`), instead of the daily digest."),
    ] = None,
    agg: Annotated[Agg, typer.Option("--agg", help="Aggregate of --group-by.")] = Agg.mean,
    region: RegionOption = None,
    master: MasterOption = None,
    out: OutOption = None,
    show: ShowOption = 20,
    as_json: JsonOption = False,
) -> None:
    """Fleet aggregates on Spark: per vehicle, signal path and day the samples, min, max and
    mean (the daily digest), or with --group-by one path's aggregate per region, vehicle or
    day. Reads exactly the files `drivetrain lake query` reads."""
    from drivetrain.cloud.batch import fleet_aggregate, vehicle_day_stats

    time_range = _time_range(start, end)
    paths = list(path or [])
    if group_by is not None:
        if len(paths) != 1:
            fail("--group-by needs exactly one --path", code=2)
        key, aggregation = group_by.value, agg.value
        title = f"{aggregation} of {paths[0]} per {key}"

        def job(frame: DataFrame) -> DataFrame:
            return fleet_aggregate(frame, paths[0], key, aggregation)
    else:
        title = "daily digest per vehicle and path"

        def job(frame: DataFrame) -> DataFrame:
            return vehicle_day_stats(frame, paths)

    table = _run(master, tenant, time_range, region or None, job, out, title, paths)
    if table is not None:
        _report(table, title, show, as_json)


@app.command("features")
def features_command(
    tenant: TenantOption = DEFAULT_TENANT,
    every: Annotated[str, typer.Option("--every", help="Bucket of the features: 1m, 15m, 1h ...")] = "1h",
    start: StartOption = None,
    end: EndOption = None,
    region: RegionOption = None,
    master: MasterOption = None,
    out: OutOption = None,
    show: ShowOption = 20,
    as_json: JsonOption = False,
) -> None:
    """The predictive-maintenance model's training features on Spark: per vehicle and bucket
    of --every, the health indicators (tire pressure, pad wear, LV voltage, temperatures,
    cell spread, state of health, speed, ambient) the model learns from."""
    from drivetrain.cloud.batch import training_features
    from drivetrain.cloud.lake import parse_every
    from drivetrain.core.errors import QueryError

    try:
        step_ns = parse_every(every)
    except QueryError as e:
        fail(e, code=2)
    if step_ns is None:
        fail("--every is empty; expected an interval such as 1h", code=2)
    time_range = _time_range(start, end)
    title = f"training features every {every}"

    def job(frame: DataFrame) -> DataFrame:
        return training_features(frame, step_ns)

    table = _run(master, tenant, time_range, region or None, job, out, title)
    if table is not None:
        _report(_with_times(table), title, show, as_json)


def _print_discarded(discarded: Sequence[Discarded]) -> None:
    for d in discarded:
        _err.print(f"discarded {d.region}/{d.tenant}/{d.day} ({len(d.files)} file"
                   f"{'' if len(d.files) == 1 else 's'}): {d.reason}", markup=False)


@app.command("compact")
def compact_command(
    region: Annotated[str | None, typer.Option("--region", "-r", help="Only this region.")] = None,
    tenant: Annotated[str | None, typer.Option("--tenant", "-t", help="Only this tenant.")] = None,
    target_rows: Annotated[int, typer.Option("--target-rows", min=1, help="Rows per merged file.")] = 4_000_000,
    master: MasterOption = None,
    as_json: JsonOption = False,
) -> None:
    """`lake compact` as a Spark job (embedded lake): Spark reads each group's live files
    and writes the merged, sorted file into the region's staging area; the lake swaps it in
    through its index. A group whose files changed meanwhile is discarded and reported."""
    from drivetrain.cloud.batch.maintenance import compact_on_spark
    from drivetrain.commands.lake import print_compaction

    settings = load_settings_or_exit()
    chosen = _checked_master(master, settings)
    with _lake(settings) as lake:
        lake.region_stores()  # the table-format or encrypted lake is refused before Spark
        with _steps(2) as step:
            step(f"starting Spark on {chosen}")
            with _session(chosen) as spark:
                step("compacting on Spark")
                run = compact_on_spark(spark, lake, region, tenant=tenant,
                                       target_rows=target_rows)
    if as_json:
        emit_json(run)
        return
    print_compaction(run.results)
    _print_discarded(run.discarded)


@app.command("retention")
def retention_command(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only list what would be deleted (no Spark).")] = False,
    keep: KeepOption = None,
    today: TodayOption = None,
    region: RegionOption = None,
    master: MasterOption = None,
    as_json: JsonOption = False,
) -> None:
    """`lake retention` as a Spark job (embedded lake): files whose every row expired are
    deleted, files where some categories expired are rewritten on Spark without them and
    swapped in through the lake's index; then batch ids past the re-delivery window are
    forgotten."""
    from drivetrain.cloud.batch.maintenance import SparkRetention, retention_on_spark
    from drivetrain.commands.lake import parse_today, print_retention, retention_overrides

    extra = retention_overrides(keep or [])
    as_of = parse_today(today) or datetime.now(UTC).date()
    settings = load_settings_or_exit()
    chosen = _checked_master(master, settings)
    with _lake(settings) as lake:
        lake.region_stores()  # the table-format or encrypted lake is refused before Spark
        policy = lake.retention.merged(extra)
        if dry_run:
            run = SparkRetention(lake.apply_retention(today=as_of, dry_run=True, policy=policy,
                                                      regions=region or None), ())
        else:
            with _steps(2) as step:
                step(f"starting Spark on {chosen}")
                with _session(chosen) as spark:
                    step("expiring on Spark")
                    run = retention_on_spark(spark, lake, policy, as_of, regions=region or None)
        window = lake.batch_window_days
    if as_json:
        emit_json(run)
        return
    if not policy.days:
        _out.print("no retention policy (lake_retention_days or --keep): no telemetry expires")
    print_retention(run.report)
    _print_discarded(run.discarded)
    if not dry_run:
        _out.print(f"forgot {run.report.batch_ids_forgotten:,} batch ids past the {window}-day "
                   "re-delivery window")
