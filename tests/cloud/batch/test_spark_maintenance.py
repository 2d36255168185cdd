"""Compaction and retention of the embedded lake as Spark jobs: the lake's answers do not
change, the files are the lake's own format, and the swap goes through the lake's index.

One Spark session (local mode) serves the module; each test works on a copy of one lake
filled by appends (two regions, three days, several small files per partition).
"""

from __future__ import annotations

import json
import shutil
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from drivetrain.cli import app
from drivetrain.cloud.batch.maintenance import compact_on_spark
from drivetrain.cloud.lake import LAKE_SCHEMA, Lake, RetentionPolicy, verify_bundle
from drivetrain.cloud.lake.compaction import compact_region
from drivetrain.cloud.lake.store import STAGING_DIR
from tests.cloud.lake.lake_rows import NS_DAY, T0_NS, make_rows

pytestmark = [pytest.mark.spark, pytest.mark.slow, pytest.mark.xdist_group("spark")]

TENANT = "acme"
#: Every row, and aggregates whose floats are summed in file order.
ROWS = ("SELECT vehicle, path, ts, value, text, category, batch_id, campaign, region, date "
        "FROM telemetry ORDER BY ALL")
AGGREGATES = ("SELECT region, date, category, count(*) AS n, count(value) AS v, sum(value) AS s, "
              "min(ts) AS lo, max(ts) AS hi FROM telemetry GROUP BY ALL ORDER BY ALL")


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A lake with four appends per region, each spanning three days: 4 small files per
    (region, date) partition."""
    data = tmp_path_factory.mktemp("filled") / "data"
    with Lake(data) as lake:
        for seed in range(4):
            for region in ("EU", "US"):
                lake.append(region, TENANT, make_rows(600, seed=seed * 10 + len(region),
                                                      span_s=3 * 86_400))
    return data


def _copy(filled: Path, tmp_path: Path, name: str = "data") -> Path:
    shutil.copytree(filled, tmp_path / name)
    return tmp_path / name


def _answers(lake: Lake) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    return lake.sql(TENANT, ROWS).to_pylist(), lake.sql(TENANT, AGGREGATES).to_pylist()


def _assert_same_aggregates(ours: list[dict[str, Any]], theirs: list[dict[str, Any]]) -> None:
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs, strict=True):
        assert {k: v for k, v in a.items() if k != "s"} == {k: v for k, v in b.items() if k != "s"}
        assert a["s"] == pytest.approx(b["s"], rel=1e-9)


def _staged(data: Path) -> list[Path]:
    return [p for p in (data / "lake").glob(f"*/{STAGING_DIR}/**/*.parquet")]


def test_a_spark_compaction_keeps_every_answer_and_a_concurrent_append(
    spark: Any, filled: Path, tmp_path: Path
) -> None:
    data = _copy(filled, tmp_path)
    appended = []

    def append_meanwhile(step: str) -> None:
        # after Spark wrote the merged files, before the lake commits them: another writer
        # appends (its own store, as another process would)
        if step == "compact.staged" and not appended:
            with Lake(data) as other:
                appended.append(other.append("EU", TENANT, make_rows(300, seed=99)))

    with Lake(data) as lake:
        rows, aggregates = _answers(lake)
        before = lake.files(TENANT)
        with Lake(data, checkpoint=append_meanwhile) as hooked:
            run = compact_on_spark(spark, hooked)
        assert run.discarded == ()
        assert sum(r.files_before for r in run.results) == len(before) == 24
        assert sum(r.files_after for r in run.results) == 6
        after = lake.files(TENANT)
        new = [f for f in after if f.name not in appended[0].files]
        assert len(new) == 6 and all(f.sorted for f in new)
        # the appended rows are there, next to the compacted ones
        assert lake.sql(TENANT, "SELECT count(*) AS n FROM telemetry").column("n")[0].as_py() \
            == len(rows) + appended[0].rows_written == len(rows) + 300
        # and every answer of the rows that were there is what it was (seed 99's batch ids
        # start with 00000063)
        others = "FROM telemetry WHERE batch_id NOT LIKE '00000063%'"
        assert lake.sql(TENANT, ROWS.replace("FROM telemetry", others)).to_pylist() == rows
        _assert_same_aggregates(
            lake.sql(TENANT, AGGREGATES.replace("FROM telemetry", others)).to_pylist(),
            aggregates)
        # the files are the lake's format: schema with dictionaries and ns timestamps, and
        # the in-process compaction's column encodings and compression
        reference = _in_process_compacted_file(filled, tmp_path)
        for f in new:
            path = lake.root_of(f.region) / f.name
            assert pq.read_schema(path).remove_metadata() == LAKE_SCHEMA.remove_metadata()
            assert pq.read_schema(path) == reference.schema_arrow
            meta = pq.ParquetFile(path).metadata
            assert meta.num_rows == f.rows
            assert _layout(meta) == _layout(reference.metadata)
        # and an export bundle reads them
        manifest = lake.export_bundle(TENANT, "US", tmp_path / "bundle")
        assert manifest.rows == 4 * 600 and verify_bundle(tmp_path / "bundle").rows == 2400
    assert _staged(data) == []


def _in_process_compacted_file(filled: Path, tmp_path: Path) -> pq.ParquetFile:
    with Lake(_copy(filled, tmp_path, "in-process")) as lake:
        lake.compact()
        f = lake.files(TENANT)[0]
        return pq.ParquetFile(lake.root_of(f.region) / f.name)


def _layout(meta: pq.FileMetaData) -> list[tuple[object, ...]]:
    """Per column of the first row group: its physical type, encodings and compression."""
    group = meta.row_group(0)
    return [(c.path_in_schema, c.physical_type, c.encodings, c.compression)
            for c in (group.column(i) for i in range(group.num_columns))]


def test_a_group_whose_files_changed_since_the_plan_is_discarded_not_half_swapped(
    spark: Any, filled: Path, tmp_path: Path
) -> None:
    data = _copy(filled, tmp_path)
    done = []

    def rewrite_meanwhile(step: str) -> None:
        # a process ignoring the maintenance lock compacts every file first
        if step == "compact.staged" and not done:
            with Lake(data) as other:
                store = other.region_stores()
                done.extend(compact_region(s) for s in store)

    with Lake(data) as lake:
        rows, _ = _answers(lake)
        with Lake(data, checkpoint=rewrite_meanwhile) as hooked:
            run = compact_on_spark(spark, hooked)
        # EU's three groups were planned and written, then refused at the commit; US was
        # already compacted by the other process when its plan was made
        assert [(d.region, len(d.files)) for d in run.discarded] == [("EU", 4)] * 3
        assert sum(r.files_before for r in run.results) == 0
        assert all("no longer live" in d.reason for d in run.discarded)
        assert lake.sql(TENANT, ROWS).to_pylist() == rows  # nothing lost, nothing twice
        assert len(lake.files(TENANT)) == 6
    assert _staged(data) == []


def test_a_spark_retention_run_equals_the_in_process_one(
    spark: Any, filled: Path, tmp_path: Path
) -> None:
    ours, theirs = _copy(filled, tmp_path, "spark"), _copy(filled, tmp_path, "local")
    today = date.fromordinal(date(1970, 1, 1).toordinal() + T0_NS // NS_DAY) + timedelta(days=3)
    # the first day has expired whole in the EU; location is kept one day there
    policy = RetentionPolicy.from_mapping({"EU:location": 1, "EU:*": 2})
    with Lake(ours) as lake:
        rows, _ = _answers(lake)
    runner = CliRunner(env={"DRIVETRAIN_DATA_DIR": str(ours), "COLUMNS": "200",
                            "DRIVETRAIN_CONFIG": str(tmp_path / "none.toml")})
    result = runner.invoke(app, ["batch", "retention", "--keep", "EU:location=1", "--keep",
                                 "EU:*=2", "--today", today.isoformat(), "--master",
                                 "local[2]", "--json"])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert printed["discarded"] == []
    actions = printed["report"]["actions"]
    assert sorted(a["action"] for a in actions) == ["delete"] * 4 + ["rewrite"] * 4
    with Lake(theirs) as local:
        report = local.apply_retention(today=today, policy=policy)
        expected = local.sql(TENANT, ROWS).to_pylist()
    assert sorted((a["name"], a["rows_dropped"]) for a in actions) == \
        sorted((a.name, a.rows_dropped) for a in report.actions)
    with Lake(ours) as lake:
        kept = lake.sql(TENANT, ROWS).to_pylist()
        assert kept == expected
        eu_days = {(r["date"], r["category"]) for r in kept if r["region"] == "EU"}
        first = today - timedelta(days=3)
        assert not [d for d in eu_days if d[0] == first]  # the first day expired whole
        assert (first + timedelta(days=1), "location") not in eu_days
        assert (first + timedelta(days=2), "location") in eu_days
        assert [r for r in rows if r["region"] == "US"] == [r for r in kept if r["region"] == "US"]
        assert len(kept) < len(rows)
    assert _staged(ours) == []


def test_the_compact_command_reports_the_runs_figures(
    spark: Any, filled: Path, tmp_path: Path
) -> None:
    data = _copy(filled, tmp_path)
    runner = CliRunner(env={"DRIVETRAIN_DATA_DIR": str(data), "COLUMNS": "200",
                            "DRIVETRAIN_CONFIG": str(tmp_path / "none.toml")})
    result = runner.invoke(app, ["batch", "compact", "-r", "US", "--json"])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert [(r["region"], r["files_before"], r["files_after"]) for r in printed["results"]] \
        == [("US", 12, 3)] and printed["discarded"] == []
    table = runner.invoke(app, ["batch", "compact", "--target-rows", "100000"])
    assert table.exit_code == 0, table.output
    assert "compaction" in table.stdout and "EU" in table.stdout


@pytest.mark.parametrize("command", ["compact", "retention"])
def test_the_encrypted_lake_is_refused_before_spark_starts(
    filled: Path, tmp_path: Path, command: str
) -> None:
    runner = CliRunner(env={"DRIVETRAIN_DATA_DIR": str(_copy(filled, tmp_path)),
                            "DRIVETRAIN_LAKE_ENCRYPTION": "per_vehicle",
                            "DRIVETRAIN_CONFIG": str(tmp_path / "none.toml")})
    result = runner.invoke(app, ["batch", command])
    assert result.exit_code == 1, result.output
    assert "plain embedded lake only" in result.output and "starting Spark" not in result.output
