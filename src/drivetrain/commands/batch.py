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
    ShowOption,
    TenantOption,
    _hint_empty,
    _lake,
    _report,
    parse_when,
)
from drivetrain.commands.lake_hints import EmptyQuery
from drivetrain.commands.output import JsonOption

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame, SparkSession

    from drivetrain.cloud.batch import TimeRange

app = typer.Typer(
    help="Batch jobs over the telemetry lake on Apache Spark (local mode or a cluster): "
    "fleet aggregates and model training features, reading exactly the files DuckDB reads.",
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
    from drivetrain.cloud.batch import (
        check_master,
        check_runtime,
        run_on_live_files,
        spark_session,
        to_arrow,
    )
    from drivetrain.core.errors import DrivetrainError

    if out is not None and out.exists():
        fail(f"--out {out} exists; name a new directory", code=2)
    settings = load_settings_or_exit()
    chosen = master or settings.spark_master
    try:  # a bad master or a missing runtime is reported before anything is read
        check_master(chosen)
        check_runtime()
    except DrivetrainError as e:
        fail(e, code=2)
    with _lake(settings, reading=True) as lake, _steps(4) as step:
        step("listing the lake's live files")
        start_ns, end_ns = (None, None) if time_range is None else (time_range.start_ns,
                                                                    time_range.end_ns)
        # also refuses a bad tenant or region before a JVM starts
        listed = len(lake.live_paths(tenant, regions=regions, start_ns=start_ns, end_ns=end_ns))
        step(f"starting Spark on {chosen}")
        running = _running_session()
        try:
            spark = spark_session(chosen)
        except DrivetrainError as e:
            fail(e, code=2)
        try:
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
