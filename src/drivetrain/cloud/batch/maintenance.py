"""Compaction and retention of the embedded lake as Spark jobs.

The lake plans the run as its in-process maintenance does (``plan_compaction``,
``plan_retention``, under the region's maintenance lock); Spark then reads exactly the live
files of each group (the index's names, never a directory glob), leaves out the expired
categories (retention), and writes each group's rows as one file into this writer's staging
directory inside the region root; the lake commits each group's swap through its own index
(``RegionStore.commit_staged``: the same two transactions, renames and crash recovery as an
in-process compaction). Whole-file retention deletes need no data read and are swapped in
the lake's process.

Spark has no Parquet type for the lake's nanosecond timestamps and writes no Arrow
dictionary columns, so Spark's own Parquet writer is not used: each group's rows reach a
Python worker of the executor as Arrow (``applyInArrow``), are cast to the lake schema
(``ts`` int64 → ``timestamp[ns, UTC]``, the string columns → their dictionary types), sorted
by (path, vehicle, ts) with the in-process ``merge_sorted`` and written by pyarrow with the
lake's Parquet options (``write_parquet``): the files are the ones an in-process compaction
writes. On a cluster the executors therefore need drivetrain installed and the region root
mounted at the same path as on the driver.

A group whose files changed since the plan (another process rewrote or deleted one) fails
its commit: its staged file is deleted and it is reported as discarded; the old files stay.
A group whose written rows or categories differ from the index's counts is discarded too.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Final, TypedDict

from drivetrain.cloud.batch.frames import spark_path
from drivetrain.cloud.batch.session import quiet_pandas_check
from drivetrain.cloud.lake.compaction import TARGET_FILE_ROWS, plan_compaction
from drivetrain.cloud.lake.index import NewFile
from drivetrain.cloud.lake.models import (
    CompactionResult,
    LakeFile,
    RetentionAction,
    RetentionReport,
    parse_tenant,
    partition_path,
)
from drivetrain.cloud.lake.retention import RetentionPolicy, delete_expired_files, plan_retention
from drivetrain.core.errors import ConflictError, StorageError

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame, SparkSession

    from drivetrain.cloud.lake import Lake
    from drivetrain.cloud.lake.store import RegionStore

# The lake file columns as Spark reads them (ts: the raw int64 of nanoseconds, see
# session.SESSION_CONF); a column a file predates reads as null.
_FILE_SCHEMA: Final = ("vehicle string, path string, ts bigint, value double, text string, "
                       "category string, batch_id string, campaign string, dimensions string")
_RESULT_SCHEMA: Final = ("group int, staged string, rows long, bytes long, min_ts long, "
                         "max_ts long, categories string")


class _JobRow(TypedDict):
    """One result row of the Spark job (``_RESULT_SCHEMA``): the file written for a group."""

    group: int
    staged: str
    rows: int
    bytes: int
    min_ts: int
    max_ts: int
    categories: str


@dataclass(frozen=True, slots=True)
class Rewrite:
    """Files of one partition to rewrite as one file, without the ``drop`` categories."""

    tenant: str
    day: date
    files: tuple[LakeFile, ...]
    drop: tuple[str, ...] = ()

    def expected(self) -> Counter[str]:
        """Rows per category the new file must hold (from the index)."""
        counts: Counter[str] = Counter()
        for f in self.files:
            counts.update({c: n for c, n in f.categories.items() if c not in self.drop})
        return +counts


@dataclass(frozen=True, slots=True)
class Discarded:
    """A group whose rewrite was not committed: its old files stay as they were."""

    region: str
    tenant: str
    day: date
    files: tuple[str, ...]
    reason: str


@dataclass(frozen=True, slots=True)
class SparkCompaction:
    """A Spark compaction run: per region what was merged, and the groups discarded."""

    results: tuple[CompactionResult, ...]
    discarded: tuple[Discarded, ...]


@dataclass(frozen=True, slots=True)
class SparkRetention:
    """A Spark retention run: what was deleted or rewritten, and the files discarded."""

    report: RetentionReport
    discarded: tuple[Discarded, ...]


def _lake_table(rows: pa.Table) -> pa.Table:
    """Spark's Arrow rows (plain or large strings, ts as int64 ns) in the lake schema."""
    import pyarrow as pa

    from drivetrain.cloud.lake.models import LAKE_SCHEMA

    columns = []
    for field in LAKE_SCHEMA:
        column = rows.column(field.name)
        if pa.types.is_timestamp(field.type):
            column = column.cast(pa.int64()).cast(field.type)
        elif pa.types.is_dictionary(field.type):
            column = column.cast(pa.utf8()).cast(field.type)
        else:
            column = column.cast(field.type)
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=LAKE_SCHEMA)


def _group_writer(staging: str):  # type: ignore[no-untyped-def]  # pickled to the executors
    """The function each executor runs on one group's rows: write them as a lake file under
    ``staging`` and return its name and statistics."""

    def write(rows: pa.Table) -> pa.Table:
        import pyarrow as pa
        import pyarrow.compute as pc

        from drivetrain.cloud.lake.compaction import merge_sorted
        from drivetrain.cloud.lake.store import write_parquet

        group = rows.column("group")[0].as_py()
        table = merge_sorted([_lake_table(rows)])
        name = f"{uuid.uuid4().hex}.parquet"
        size = write_parquet(table, Path(staging) / name)
        ts = table.column("ts").combine_chunks().view(pa.int64())
        counts = pc.value_counts(table.column("category").combine_chunks().cast(pa.utf8()))
        categories = {c["values"]: c["counts"] for c in counts.to_pylist()}
        return pa.table({
            "group": pa.array([group], pa.int32()), "staged": [name],
            "rows": pa.array([table.num_rows], pa.int64()), "bytes": pa.array([size], pa.int64()),
            "min_ts": [pc.min(ts).as_py()], "max_ts": [pc.max(ts).as_py()],
            "categories": [json.dumps(categories, sort_keys=True)],
        })

    return write


def _frame(spark: SparkSession, store: RegionStore, rewrites: Sequence[Rewrite]) -> DataFrame:
    """The rows of every group's files, each with its group number, without the groups'
    dropped categories."""
    from pyspark.sql import functions as F

    group_of = {f.name.rsplit("/", 1)[-1]: i for i, r in enumerate(rewrites) for f in r.files}
    paths = [spark_path(str(store.path_of(f.name))) for r in rewrites for f in r.files]
    frame = spark.read.schema(_FILE_SCHEMA).parquet(*paths)
    # the group of a row: its file's name (part-<uuid>.parquet, unique in the region)
    name = F.regexp_extract(F.input_file_name(), r"([^/]+)$", 1)
    lookup = F.create_map(*(x for n, i in sorted(group_of.items()) for x in (F.lit(n), F.lit(i))))
    frame = frame.withColumn("group", F.element_at(lookup, name).cast("int"))
    drops = {i: r.drop for i, r in enumerate(rewrites) if r.drop}
    if drops:
        dropped = F.create_map(*(x for i, cats in sorted(drops.items())
                                 for x in (F.lit(i), F.array(*map(F.lit, cats)))))
        frame = frame.where(~F.coalesce(
            F.array_contains(F.element_at(dropped, F.col("group")), F.col("category")),
            F.lit(False)))
    return frame


def _run_job(
    spark: SparkSession, store: RegionStore, rewrites: Sequence[Rewrite], job_dir: Path
) -> dict[int, _JobRow]:
    """Run the Spark job writing each group's file under ``job_dir``; returns its result
    row per group number.

    Raises:
        StorageError: Spark failed (its message quoted).
    """
    from py4j.protocol import Py4JJavaError
    from pyspark.errors import PySparkException

    frame = _frame(spark, store, rewrites)
    try:
        with quiet_pandas_check():
            written = frame.groupBy("group").applyInArrow(
                _group_writer(str(job_dir)), _RESULT_SCHEMA).toArrow()
    except (PySparkException, Py4JJavaError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else repr(e)
        raise StorageError(f"the Spark {store.region} maintenance job failed: {first}") from e
    return {r["group"]: r for r in written.to_pylist()}


def _rewrite(
    spark: SparkSession, store: RegionStore, kind: str, rewrites: Sequence[Rewrite],
    discarded: list[Discarded],
) -> list[tuple[Rewrite, NewFile]]:
    """Rewrite ``rewrites`` on Spark and commit each through the index; returns the
    committed ones with their new file, and appends the others to ``discarded``."""
    if not rewrites:
        return []
    job_dir = store.staging / f"spark-{uuid.uuid4().hex}"
    job_dir.mkdir()
    committed = []
    try:
        results = _run_job(spark, store, rewrites, job_dir)
    except BaseException:
        shutil.rmtree(job_dir, ignore_errors=True)  # nothing of it was committed
        raise
    for i, rewrite in enumerate(rewrites):
        names = tuple(f.name for f in rewrite.files)
        row = results.get(i)
        if row is None:
            discarded.append(Discarded(store.region, rewrite.tenant, rewrite.day, names,
                                       "Spark wrote no rows for it"))
            continue
        staged = job_dir / str(row["staged"])
        new = NewFile(
            name=f"{partition_path(store.region, rewrite.tenant, rewrite.day)}/"
                 f"part-{staged.stem}.parquet",
            staged=str(staged.relative_to(store.root)), tenant=rewrite.tenant,
            day=rewrite.day, rows=int(row["rows"]), bytes=int(row["bytes"]),
            min_ts_ns=int(row["min_ts"]), max_ts_ns=int(row["max_ts"]), sorted=True,
            categories=json.loads(str(row["categories"])),
        )
        if Counter(new.categories) != rewrite.expected():
            store.discard_staged([new])
            discarded.append(Discarded(store.region, rewrite.tenant, rewrite.day, names,
                                       "the rows Spark wrote differ from the index's"))
            continue
        try:
            store.commit_staged(kind, rewrite.files, [new])
            committed.append((rewrite, new))
        except ConflictError as e:  # a file changed since the plan: nothing swapped
            discarded.append(Discarded(store.region, rewrite.tenant, rewrite.day, names,
                                       str(e)))
    # what is left was not committed: groups discarded, files of failed task attempts.
    # (Should a commit fail otherwise, the files stay for the writer's recovery: a
    # committed swap's staged files must not go before they are renamed.)
    shutil.rmtree(job_dir, ignore_errors=True)
    return committed


def compact_on_spark(
    spark: SparkSession,
    lake: Lake,
    region: str | None = None,
    *,
    tenant: str | None = None,
    target_rows: int = TARGET_FILE_ROWS,
) -> SparkCompaction:
    """``Lake.compact`` as a Spark job: the same groups, the same sorted files, swapped
    through the index under each region's maintenance lock.

    Raises:
        ConfigurationError: the lake is the table-format or the encrypted one.
        ConflictError: another maintenance run held a region for longer than an hour.
        StorageError: Spark failed, or a file cannot be written.
    """
    tenant = None if tenant is None else parse_tenant(tenant)
    results: list[CompactionResult] = []
    discarded: list[Discarded] = []
    for store in lake.region_stores(None if region is None else [region]):
        with store.maintenance():
            groups = plan_compaction(store.index.live_files(store.region, tenant=tenant),
                                     target_rows)
            rewrites = [Rewrite(g.tenant, g.files[0].day, g.files) for g in groups]
            done = _rewrite(spark, store, "compact", rewrites, discarded)
        results.append(CompactionResult(
            store.region, len({(r.tenant, r.day) for r, _ in done}),
            sum(len(r.files) for r, _ in done), len(done), sum(n.rows for _, n in done),
            sum(f.bytes for r, _ in done for f in r.files), sum(n.bytes for _, n in done)))
    return SparkCompaction(tuple(results), tuple(discarded))


def retention_on_spark(
    spark: SparkSession,
    lake: Lake,
    policy: RetentionPolicy,
    today: date,
    *,
    regions: Sequence[str] | None = None,
) -> SparkRetention:
    """``Lake.apply_retention`` as a Spark job: files whose every row expired are deleted in
    the lake's process (no data to read), files where some categories expired are rewritten
    on Spark without them; then batch ids past the re-delivery window are forgotten.

    Raises:
        ConfigurationError: the lake is the table-format or the encrypted one.
        ConflictError: another maintenance run held a region for longer than an hour.
        StorageError: Spark failed, or a file cannot be written or deleted.
    """
    actions: list[RetentionAction] = []
    discarded: list[Discarded] = []
    forgotten = 0
    for store in lake.region_stores(regions):
        with store.maintenance():
            files = store.index.live_files(store.region)
            by_name = {f.name: f for f in files}
            planned = plan_retention(files, policy, today)
            deleted = delete_expired_files(store, planned, by_name)
            gone = {a.name for a in deleted}
            for a in planned:
                if a.action == "delete" and a.name not in gone:
                    discarded.append(Discarded(store.region, a.tenant, a.day, (a.name,),
                                               "another process rewrote or removed it"))
            actions.extend(deleted)
            rewrites = {a.name: a for a in planned if a.action == "rewrite"}
            done = _rewrite(spark, store, "retention", [
                Rewrite(a.tenant, a.day, (by_name[a.name],), a.categories)
                for a in rewrites.values()], discarded)
            actions.extend(rewrites[r.files[0].name] for r, _ in done)
            forgotten += store.index.prune_batches(lake.batch_cutoff(store.region, policy,
                                                                     today))
    return SparkRetention(RetentionReport(False, tuple(actions), forgotten), tuple(discarded))
