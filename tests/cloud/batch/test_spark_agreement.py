"""Spark reads exactly the files DuckDB reads and computes the same aggregates.

The data comes through the real path: `drivetrain sim fleet` drives vehicles whose edge
agents send batches that ingestion validates and appends to the lake (three regions, several
files each). One Spark session (local mode) serves the module: a JVM takes seconds to start.
Without pyspark or Java 17+ the module fails, naming what is missing — it never skips.
"""

from __future__ import annotations

import functools
import json
import math
import re
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from typer.testing import CliRunner

from drivetrain.cli import app
from drivetrain.cloud.batch import (
    SparkUnavailableError,
    TimeRange,
    check_master,
    fleet_aggregate,
    lake_frame,
    run_on_live_files,
    to_arrow,
    training_features,
    vehicle_day_stats,
)
from drivetrain.cloud.batch.session import java_major
from drivetrain.cloud.insights.maintenance import HEALTH_PATHS, observation_frame
from drivetrain.cloud.lake import AGGREGATIONS, GROUP_BYS, Lake
from drivetrain.core.settings import load_settings

pytestmark = [pytest.mark.spark, pytest.mark.slow, pytest.mark.xdist_group("spark")]

TENANT = "default"
#: Floats summed in another order differ in the last bits, never more.
REL = 1e-9

@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A lake filled by a simulated fleet through ingestion (embedded: in-process transport,
    SQLite)."""
    root = tmp_path_factory.mktemp("fleet")
    env: dict[str, str | None] = {"DRIVETRAIN_DATA_DIR": str(root / "data"),
           "DRIVETRAIN_DATABASE_URL": f"sqlite:///{root / 'state.db'}",
           "DRIVETRAIN_CONFIG": str(root / "none.toml"), "DRIVETRAIN_BROKER_URL": None}
    result = CliRunner(env=env).invoke(app, [
        "sim", "fleet", "--vehicles", "3", "--duration", "60", "--speedup", "0", "--headless",
        "--out", str(root / "run"), "--consent", "all",
    ])
    assert result.exit_code == 0, result.output
    # as ingestion left it, before any test compacts it
    shutil.copytree(root / "data", root / "uncompacted")
    return root / "data"


@pytest.fixture
def lake(data_dir: Path) -> Iterator[Lake]:
    with Lake(data_dir) as opened:
        yield opened


def _span(lake: Lake) -> tuple[datetime, datetime]:
    files = lake.files(TENANT)
    lo, hi = min(f.min_ts_ns for f in files), max(f.max_ts_ns for f in files)
    return (datetime.fromtimestamp(lo // 10**9, UTC),
            datetime.fromtimestamp(hi // 10**9 + 1, UTC))


def _close(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=REL, abs_tol=REL)
    return a == b


def _assert_same(spark_rows: Sequence[dict[str, Any]], duck_rows: Sequence[dict[str, Any]],
                 keys: Sequence[str]) -> None:
    """Equal row sets: keys and counts exactly, floats within ``REL``."""
    def keyed(rows: Sequence[dict[str, Any]]) -> dict[tuple[object, ...], dict[str, Any]]:
        return {tuple(r[k] for k in keys): r for r in rows}

    ours, theirs = keyed(spark_rows), keyed(duck_rows)
    assert len(ours) == len(spark_rows) and len(theirs) == len(duck_rows)
    assert ours.keys() == theirs.keys()
    for key, row in ours.items():
        other = theirs[key]
        assert row.keys() == other.keys(), key
        different = {c: (row[c], other[c]) for c in row if not _close(row[c], other[c])}
        assert different == {}, key


def _local(path: str) -> str:
    return path.removeprefix("file://")


def test_the_fleet_landed_in_several_regions_and_files(lake: Lake) -> None:
    files = lake.files(TENANT)
    assert len({f.region for f in files}) >= 2 and len(files) >= 6
    assert set(lake.live_paths(TENANT)) == {
        str(lake.root_of(f.region) / f.name) for f in files}


def test_spark_reads_exactly_the_files_duckdb_reads(spark: Any, lake: Lake) -> None:
    from pyspark.sql import functions as F

    # a Parquet file in a partition folder that the index does not name (a stray copy, as a
    # crashed tool or a half-finished swap could leave): a directory glob would read it twice
    live = lake.live_paths(TENANT)
    stray = Path(live[0]).with_name("part-stray-copy.parquet")
    shutil.copyfile(live[0], stray)
    frame, paths = lake_frame(spark, lake, TENANT)
    assert str(stray) not in paths
    assert paths == lake.live_paths(TENANT)
    read = {_local(r[0]) for r in frame.select(F.input_file_name()).distinct().collect()}
    assert read == set(paths)
    duck = lake.sql(TENANT, "SELECT count(*) AS n, count(value) AS v FROM telemetry")
    assert duck.to_pylist() == [{"n": frame.count(), "v": frame.where("value IS NOT NULL").count()}]


def test_the_daily_digest_per_vehicle_and_path_agrees_with_duckdb(
    spark: Any, lake: Lake
) -> None:
    _assert_digest_agrees(spark, lake)


def test_fleet_aggregates_agree_with_the_lakes_duckdb_query(spark: Any, lake: Lake) -> None:
    _assert_fleet_aggregates_agree(spark, lake)


def _assert_fleet_aggregates_agree(spark: Any, lake: Lake) -> None:
    """Every grouping × aggregation of Vehicle.Speed over the middle half of the data: Spark
    equals the lake's DuckDB query."""
    from pyspark.sql import functions as F

    start, end = _span(lake)
    # the middle of the data: the time filter cuts through files
    begin, finish = start + (end - start) / 4, end - (end - start) / 4
    frame, _ = lake_frame(spark, lake, TENANT, time_range=TimeRange.of(begin, finish))
    # every grouping and aggregation in one Spark job: a round trip to the JVM costs more
    # than the work; the key column is renamed so the branches line up
    cases = [(g, a) for g in GROUP_BYS for a in AGGREGATIONS]
    jobs = [fleet_aggregate(frame, "Vehicle.Speed", g, a)
            .select(F.col(g).cast("string").alias("key"), "value", "samples", "vehicles",
                    F.lit(f"{g}/{a}").alias("case")) for g, a in cases]
    every = to_arrow(functools.reduce(lambda x, y: x.unionByName(y), jobs)).to_pylist()
    for group_by, agg in cases:
        ours = [{group_by: r["key"], "value": r["value"], "samples": r["samples"],
                 "vehicles": r["vehicles"]} for r in every if r["case"] == f"{group_by}/{agg}"]
        theirs = [{**r, group_by: str(r[group_by])} for r in
                  lake.fleet_aggregate(TENANT, "Vehicle.Speed", begin, finish, group_by,
                                       agg).to_pylist()]
        assert len(ours) >= 1, (group_by, agg)
        _assert_same(ours, theirs, (group_by,))


def _assert_digest_agrees(spark: Any, lake: Lake) -> list[str]:
    """Spark's daily digest equals DuckDB's; returns the files Spark read (all of
    ``Lake.live_paths``, nothing else)."""
    from pyspark.sql import functions as F

    frame, paths = lake_frame(spark, lake, TENANT)
    assert paths == lake.live_paths(TENANT)
    read = {_local(r[0]) for r in frame.select(F.input_file_name()).distinct().collect()}
    assert read == set(paths)
    ours = to_arrow(vehicle_day_stats(frame)).to_pylist()
    theirs = lake.sql(TENANT, (
        "SELECT vehicle, path, date AS day, count(value) AS samples, min(value) AS min, "
        "max(value) AS max, avg(value) AS mean FROM telemetry GROUP BY ALL"
    )).to_pylist()
    assert len(ours) >= 20
    _assert_same(ours, theirs, ("vehicle", "path", "day"))
    return paths


@contextmanager
def _delta_lake(url: str) -> Iterator[Lake]:
    settings = load_settings(data_dir=Path(url.removeprefix("file://")).parent / "data",
                             lake_url=url)
    with Lake.open(settings) as lake:
        yield lake


@pytest.fixture(scope="module")
def delta_url(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A Delta lake on the local filesystem holding the fleet's rows (the embedded lake as
    ingestion left it), two commits per region so partitions hold several files."""
    url = f"file://{tmp_path_factory.mktemp('delta')}/lake"
    with Lake(data_dir.with_name("uncompacted")) as source, _delta_lake(url) as target:
        rows = source.sql(TENANT, "SELECT vehicle, path, ts, value, text, category, batch_id, "
                                  "campaign, dimensions, region FROM telemetry")
        for region in sorted(set(rows.column("region").to_pylist())):
            part = rows.filter(pc.equal(rows.column("region"), region)).drop_columns(["region"])
            ids = sorted(set(part.column("batch_id").to_pylist()))
            for half in (ids[:len(ids) // 2], ids[len(ids) // 2:]):
                chosen = pc.is_in(part.column("batch_id").cast(pa.utf8()), pa.array(half))
                target.append(region, TENANT, part.filter(chosen))
    return url


def test_spark_over_the_delta_lake_reads_its_current_files_and_agrees_with_duckdb(
    spark: Any, delta_url: str,
) -> None:
    with _delta_lake(delta_url) as lake:
        assert len(lake.regions()) >= 2
        paths = _assert_digest_agrees(spark, lake)
        assert all("/_delta_log/" not in p and "/region=" in p for p in paths)
        _assert_fleet_aggregates_agree(spark, lake)
        # an optimize commits new files; the replaced ones stay on disk for running readers
        # (a week by default) but are no longer the table's, and Spark reads none of them
        lake.compact(tenant=TENANT)
        after = _assert_digest_agrees(spark, lake)
        assert len(after) < len(paths) and all(Path(p).is_file() for p in paths)


def test_a_fleet_aggregate_keeps_the_lakes_columns(spark: Any, lake: Lake) -> None:
    frame, _ = lake_frame(spark, lake, TENANT)
    for group_by in GROUP_BYS:
        start, end = _span(lake)
        theirs = lake.fleet_aggregate(TENANT, "Vehicle.Speed", start, end, group_by, "mean")
        assert fleet_aggregate(frame, "Vehicle.Speed", group_by, "mean").columns == \
            theirs.column_names


def test_training_features_equal_the_maintenance_models_observation_table(
    spark: Any, lake: Lake
) -> None:
    start, end = _span(lake)
    frame, _ = lake_frame(spark, lake, TENANT, time_range=TimeRange.of(start, end))
    ours = to_arrow(training_features(frame, 10 * 10**9))
    expected = observation_frame(
        lake.signals(TENANT, None, list(HEALTH_PATHS), start, end, every="10s"))
    assert ours.num_rows == len(expected) >= 10
    assert ours.column("vehicle").to_pylist() == expected.vehicle.tolist()
    assert [t // 10**9 for t in ours.column("ts").to_pylist()] == expected.ts_s.tolist()
    for j, name in enumerate(ours.column_names[2:]):
        column = [math.nan if v is None else v for v in ours.column(name).to_pylist()]
        reported = [v for v in column if not math.isnan(v)]
        assert reported or name in {"pad_wear_max_pct"}, f"{name} never reported"
        for got, want in zip(column, expected.indicators[:, j].tolist(), strict=True):
            assert (math.isnan(got) and math.isnan(want)) or _close(got, want), name


def test_after_compaction_spark_follows_the_new_file_list(
    spark: Any, data_dir: Path
) -> None:
    with Lake(data_dir) as lake:
        before = lake.live_paths(TENANT)
        digest = to_arrow(vehicle_day_stats(lake_frame(spark, lake, TENANT)[0])).to_pylist()
        lake.compact(tenant=TENANT)
        after = lake.live_paths(TENANT)
        assert len(after) < len(before)
        frame, paths = lake_frame(spark, lake, TENANT)
        assert paths == after
        _assert_same(to_arrow(vehicle_day_stats(frame)).to_pylist(), digest,
                     ("vehicle", "path", "day"))


def test_a_job_whose_files_a_compaction_swapped_away_reruns_on_the_new_list(
    spark: Any, data_dir: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "data"
    shutil.copytree(data_dir.with_name("uncompacted"), copy)
    calls: list[list[str]] = []
    with Lake(copy) as lake:
        expected = lake.sql(TENANT, "SELECT count(value) AS n FROM telemetry").to_pylist()

        def job(frame: Any) -> int:
            calls.append(lake.live_paths(TENANT))
            if len(calls) == 1:  # the files this frame lists are retired and deleted now
                lake.compact(tenant=TENANT)
            return int(frame.where("value IS NOT NULL").count())

        counted, paths = run_on_live_files(spark, lake, TENANT, job)
    assert len(calls) == 2 and paths == calls[1] != calls[0]
    assert [{"n": counted}] == expected


def test_the_batch_command_prints_the_aggregate_duckdb_computes(
    spark: Any, data_dir: Path, tmp_path: Path
) -> None:
    runner = CliRunner(env={"DRIVETRAIN_DATA_DIR": str(data_dir), "COLUMNS": "200",
                            "DRIVETRAIN_CONFIG": str(tmp_path / "none.toml")})
    result = runner.invoke(app, ["batch", "aggregate", "-p", "Vehicle.Speed", "--group-by",
                                 "vehicle", "--agg", "max", "--master", "local[2]", "--json"])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    with Lake(data_dir) as lake:
        start, end = _span(lake)
        theirs = lake.fleet_aggregate(TENANT, "Vehicle.Speed", start, end, "vehicle", "max")
    _assert_same(printed, theirs.to_pylist(), ("vehicle",))
    table = runner.invoke(app, ["batch", "aggregate", "--show", "3"])
    assert table.exit_code == 0, table.output
    assert "daily digest per vehicle and path" in table.stdout and "(showing 3)" in table.stdout
    assert spark.sparkContext._jsc is not None  # the command left the shared session running


def test_the_features_command_writes_parquet_from_spark(
    spark: Any, data_dir: Path, tmp_path: Path
) -> None:
    runner = CliRunner(env={"DRIVETRAIN_DATA_DIR": str(data_dir),
                            "DRIVETRAIN_CONFIG": str(tmp_path / "none.toml")})
    out = tmp_path / "features"
    result = runner.invoke(app, ["batch", "features", "--every", "30s", "--out", str(out)])
    assert result.exit_code == 0, result.output
    import pyarrow.parquet as pq

    written = pq.read_table(out)
    assert written.num_rows >= 1 and "tire_pressure_min_kpa" in written.column_names
    again = runner.invoke(app, ["batch", "features", "--out", str(out)])
    assert again.exit_code == 2 and "exists" in again.output


@pytest.mark.parametrize("master", ["", "local[two]", "http://spark:7077", "yarn; rm -rf /"])
def test_a_bad_master_is_refused_naming_what_is_expected(master: str) -> None:
    with pytest.raises(SparkUnavailableError, match="expected local"):
        check_master(master)


def test_a_bad_master_on_the_command_line_exits_2(data_dir: Path, tmp_path: Path) -> None:
    runner = CliRunner(env={"DRIVETRAIN_DATA_DIR": str(data_dir),
                            "DRIVETRAIN_CONFIG": str(tmp_path / "none.toml")})
    result = runner.invoke(app, ["batch", "aggregate", "--master", "nowhere"])
    assert result.exit_code == 2 and "spark_master 'nowhere'" in result.output


def test_a_bad_tenant_is_refused_before_spark_starts(data_dir: Path, tmp_path: Path) -> None:
    runner = CliRunner(env={"DRIVETRAIN_DATA_DIR": str(data_dir),
                            "DRIVETRAIN_CONFIG": str(tmp_path / "none.toml")})
    result = runner.invoke(app, ["batch", "features", "-t", "../other"])
    assert result.exit_code == 1 and "'../other'" in result.output
    assert "starting Spark" not in result.output


def test_a_missing_java_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JAVA_HOME", str(tmp_path))
    with pytest.raises(SparkUnavailableError, match="bin/java"):
        java_major()


def test_a_time_range_must_be_aware_and_ordered() -> None:
    from drivetrain.core.errors import QueryError

    with pytest.raises(QueryError, match="timezone-aware"):
        TimeRange.of(datetime(2024, 5, 1), datetime(2024, 5, 2, tzinfo=UTC))
    with pytest.raises(QueryError, match="not before"):
        TimeRange.of(datetime(2024, 5, 2, tzinfo=UTC), datetime(2024, 5, 1, tzinfo=UTC))
    assert TimeRange.of(datetime(2024, 5, 1, tzinfo=UTC),
                        datetime(2024, 5, 1, 0, 0, 1, 5, tzinfo=UTC)) == TimeRange(
        1714521600 * 10**9, 1714521601 * 10**9 + 5000)


def test_the_spark_schema_of_an_empty_lake_is_the_frames(spark: Any, tmp_path: Path) -> None:
    from drivetrain.cloud.batch import FRAME_COLUMNS, STATS_COLUMNS

    with Lake(tmp_path / "empty") as lake:
        frame, paths = lake_frame(spark, lake, TENANT)
        assert paths == [] and frame.count() == 0
        assert tuple(frame.columns) == FRAME_COLUMNS
        assert vehicle_day_stats(frame).columns == list(STATS_COLUMNS)


@pytest.mark.parametrize(("group_by", "agg", "path", "message"), [
    ("vin", "mean", "Vehicle.Speed", "group_by='vin'"),
    ("day", "median", "Vehicle.Speed", "agg='median'"),
    ("day", "mean", "", "path=''"),
])
def test_a_fleet_aggregate_with_bad_arguments_is_refused_naming_them(
    spark: Any, tmp_path: Path, group_by: str, agg: str, path: str, message: str
) -> None:
    from drivetrain.core.errors import QueryError

    with Lake(tmp_path / "empty") as lake:
        frame, _ = lake_frame(spark, lake, TENANT)
    with pytest.raises(QueryError, match=re.escape(message)):
        fleet_aggregate(frame, path, group_by, agg)


def test_a_path_outside_a_region_layout_is_not_read() -> None:
    from drivetrain.cloud.batch.frames import partition_base
    from drivetrain.core.errors import BadInputError

    assert partition_base("/srv/lake-eu/region=EU/tenant=a/date=2024-05-01/p.parquet") == \
        "/srv/lake-eu"
    with pytest.raises(BadInputError, match="not a lake file"):
        partition_base("/srv/lake-eu/tenant=a/p.parquet")


def test_a_lake_path_spark_would_read_as_a_glob_is_refused() -> None:
    from drivetrain.cloud.batch.frames import spark_path
    from drivetrain.core.errors import BadInputError

    assert spark_path("/srv/lake/region=EU/x.parquet") == "file:///srv/lake/region=EU/x.parquet"
    assert spark_path("s3a://bucket/region=EU/x.parquet") == "s3a://bucket/region=EU/x.parquet"
    # the lake on S3 lists s3:// URLs; Hadoop's S3 connector (hadoop-aws) reads s3a://
    assert spark_path("s3://bucket/region=EU/x.parquet") == "s3a://bucket/region=EU/x.parquet"
    for bad in ("/srv/lake[1]/region=EU/x.parquet", "/srv/*/region=EU/x.parquet"):
        with pytest.raises(BadInputError, match="glob pattern"):
            spark_path(bad)
