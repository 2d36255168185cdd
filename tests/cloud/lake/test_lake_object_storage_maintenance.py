"""Compaction, retention and export on the lake on object storage (Delta tables on moto's S3
server), held against the embedded lake given the same rows: the same retention plan and
outcome, the same export bundle, and batch ids still skipped after a compaction."""

from __future__ import annotations

import json
import os
import shutil
import time
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from lake_rows import NS_DAY, T0_NS, plain, sorted_rows, vehicle_id
from lake_s3_writer import micro_rows
from s3_helpers import s3_keys, s3_options
from typer.testing import CliRunner

from drivetrain.cli import app
from drivetrain.cloud.lake import Lake, RetentionPolicy, RetentionReport
from drivetrain.cloud.lake.export import verify_bundle
from drivetrain.core.settings import load_settings
from tests.conftest import MOTO_BUCKET

ALL = "SELECT vehicle, path, ts, value, category, batch_id FROM telemetry"


def _data_keys(endpoint: str, prefix: str) -> list[str]:
    return [k for k in s3_keys(endpoint, prefix) if k.endswith(".parquet")]


def _rows(lake: Lake, where: str = "") -> list[tuple[object, ...]]:
    return sorted_rows(lake.sql("acme", ALL + where))


def _both(s3_lake: Lake, local: Lake, region: str, table: pa.Table) -> None:
    s3_lake.append(region, "acme", table)
    local.append(region, "acme", table)


def test_compaction_merges_a_partitions_files_and_keeps_rows_and_batch_ids(
    s3_lake: Lake,
    s3_endpoint: str,
    prefix: str,
) -> None:
    seeds = (21, 22, 23, 24)
    for seed in seeds:
        s3_lake.append("EU", "acme", micro_rows(seed, n=500))
    s3_lake.append("EU", "other", micro_rows(25, n=500))
    before = _rows(s3_lake)
    files_before = _data_keys(s3_endpoint, prefix)
    assert len(files_before) == 5

    [result] = s3_lake.compact("EU", tenant="acme")
    assert (result.region, result.partitions, result.files_before, result.files_after) == (
        "EU",
        1,
        4,
        1,
    )
    assert result.rows == 2000 and result.bytes_before > 0 and result.bytes_after > 0
    assert result.files_purged == 0  # replaced files stay for readers (a week by default)
    assert _rows(s3_lake) == before
    assert [f.tenant for f in s3_lake.files("acme")] == ["acme"]
    assert len(s3_lake.files("other")) == 1  # another tenant's partition was not touched
    # the batch ids are table state, not files: a re-delivery is still skipped
    again = s3_lake.append("EU", "acme", micro_rows(22, n=500))
    assert again.rows_written == 0 and again.rows_skipped == 500
    # replaced files are deleted once older than the time kept for readers
    assert len(_data_keys(s3_endpoint, prefix)) == 6
    [purge] = s3_lake.compact("EU", keep_replaced_hours=0)
    assert purge.files_purged == 4
    live = {f"{prefix}/region=EU/{f.name}" for t in ("acme", "other") for f in s3_lake.files(t)}
    assert set(_data_keys(s3_endpoint, prefix)) == live


def _three_days(s3_lake: Lake, local: Lake) -> pa.Table:
    table = micro_rows(31, n=6_000, batches=12, span_s=3 * 86400)
    _both(s3_lake, local, "EU", table)
    _both(s3_lake, local, "US", micro_rows(32, n=1_000))
    return plain(table)


def _plan(report: RetentionReport) -> list[tuple[object, ...]]:
    return sorted(
        (a.tenant, a.day, a.action, a.rows_dropped, a.rows_kept, a.categories)
        for a in report.actions
    )


def test_retention_plans_and_deletes_what_the_embedded_lake_does(
    s3_lake: Lake,
    lake: Lake,
    s3_endpoint: str,
    prefix: str,
) -> None:
    table = _three_days(s3_lake, lake)
    today = date(2024, 5, 4)
    dry = RetentionPolicy.from_mapping({"EU:location": 1})
    planned = s3_lake.apply_retention(today=today, dry_run=True, policy=dry)
    assert planned.dry_run and planned.files_rewritten == 2
    assert _plan(planned) == _plan(lake.apply_retention(today=today, dry_run=True, policy=dry))
    assert len(_rows(s3_lake)) == 7_000

    policy = RetentionPolicy.from_mapping({"EU:location": 1, "EU:*": 2})
    report = s3_lake.apply_retention(today=today, policy=policy)
    local = lake.apply_retention(today=today, policy=policy)
    # 2024-05-01 is older than 2 days: deleted whole; 05-02 loses location; 05-03 stays
    assert report.files_deleted == 1 and report.files_rewritten == 1
    assert _plan(report) == _plan(local)
    assert _rows(s3_lake) == _rows(lake)
    days = (table.column("ts").cast(pa.int64()).to_numpy() - T0_NS) // NS_DAY
    category = table.column("category").to_pylist()
    kept = sum((d == 1 and c != "location") or d == 2 for d, c in zip(days, category))
    assert len(_rows(s3_lake, " WHERE region = 'EU'")) == kept
    assert report.rows_dropped == 6_000 - kept
    assert len(_rows(s3_lake, " WHERE region = 'US'")) == 1_000  # no US policy
    # expired rows leave no copy: the replaced files are purged from the bucket at once
    keys = _data_keys(s3_endpoint, prefix)
    assert not [k for k in keys if "region=EU/tenant=acme/date=2024-05-01/" in k]
    assert len([k for k in keys if "region=EU/tenant=acme/date=2024-05-02/" in k]) == 1
    assert "_delta_log/" in "".join(s3_keys(s3_endpoint, f"{prefix}/region=EU/_delta_log/"))
    assert any(k.endswith(".checkpoint.parquet") for k in s3_keys(s3_endpoint, prefix))


def _bundle(out: Path) -> tuple[dict[str, object], list[tuple[object, ...]]]:
    manifest = verify_bundle(out).to_dict()
    rows = [pq.read_table(out / f["path"]) for f in manifest["files"]]
    for key in ("created_at", "files"):
        manifest.pop(key)
    return manifest, sorted_rows(pa.concat_tables(rows)) if rows else []


def test_an_export_from_the_table_is_the_bundle_the_embedded_lake_writes(
    s3_lake: Lake,
    lake: Lake,
    tmp_path: Path,
) -> None:
    _three_days(s3_lake, lake)
    s3_lake.append("EU", "acme", micro_rows(33, n=500))  # a second file in a partition
    lake.append("EU", "acme", micro_rows(33, n=500))
    for vehicle in (None, vehicle_id(2)):
        name = vehicle or "all"
        from_s3 = s3_lake.export_bundle("acme", "EU", tmp_path / f"s3-{name}", vehicle)
        local = lake.export_bundle("acme", "EU", tmp_path / f"local-{name}", vehicle)
        assert from_s3.rows == local.rows > 0
        assert [(f.path, f.rows) for f in from_s3.files] == [(f.path, f.rows) for f in local.files]
        assert _bundle(tmp_path / f"s3-{name}") == _bundle(tmp_path / f"local-{name}")
    empty = s3_lake.export_bundle("acme", "JP", tmp_path / "empty")
    assert empty.rows == 0 and empty.files == ()


def test_the_lake_commands_compact_expire_and_export_with_lake_url_set(
    s3_lake: Lake,
    s3_endpoint: str,
    prefix: str,
    tmp_path: Path,
) -> None:
    for seed in (41, 42):
        s3_lake.append("EU", "acme", micro_rows(seed, n=300, span_s=2 * 86400))
    config = tmp_path / "drivetrain.toml"
    options = "\n".join(f"{k} = {json.dumps(v)}" for k, v in s3_options(s3_endpoint).items())
    config.write_text(
        f'lake_url = "s3://{MOTO_BUCKET}/{prefix}"\n\n[lake_storage_options]\n{options}\n'
    )
    runner = CliRunner(
        env={
            "COLUMNS": "200",
            "NO_COLOR": "1",
            "DRIVETRAIN_DATA_DIR": str(tmp_path / "data"),
            "DRIVETRAIN_CONFIG": str(config),
        }
    )

    compacted = runner.invoke(app, ["lake", "compact", "-r", "EU", "--keep-replaced-hours", "0"])
    assert compacted.exit_code == 0, compacted.output
    assert "deleted 4 files replaced more than 0 h ago and 0 never committed" in compacted.output
    assert len(s3_lake.files("acme")) == 2  # one per date

    expired = runner.invoke(app, ["lake", "retention", "--keep", "EU:*=1", "--today", "2024-05-03"])
    assert expired.exit_code == 0, expired.output
    assert "1 files deleted" in expired.output and "checkpointed" in expired.output
    assert [f.day for f in s3_lake.files("acme")] == [date(2024, 5, 2)]

    out = tmp_path / "bundle"
    exported = runner.invoke(app, ["lake", "export", "-r", "EU", "-t", "acme", "-o", str(out)])
    assert exported.exit_code == 0, exported.output
    rows = len(_rows(s3_lake))
    assert f"exported {rows:,} rows in 1 files" in exported.output
    assert verify_bundle(out).rows == rows


def test_compaction_deletes_a_killed_writers_uploads_once_a_day_old(tmp_path: Path) -> None:
    # on a Delta lake on the local filesystem, where a file's age can be set
    settings = load_settings(data_dir=tmp_path / "data", lake_url=f"file://{tmp_path}/lake")
    with Lake.open(settings) as delta:
        delta.append("EU", "acme", micro_rows(52, n=300))
        [live] = delta.live_paths("acme")
        # what a writer killed between its upload and its commit leaves: files in no version
        old, young = (Path(live).with_name(f"part-orphan-{n}.parquet") for n in ("old", "new"))
        for orphan in (old, young):
            shutil.copyfile(live, orphan)
        two_days_ago = time.time() - 2 * 86_400
        os.utime(old, (two_days_ago, two_days_ago))
        [result] = delta.compact("EU", keep_replaced_hours=0)
        assert result.orphans_purged == 1 and result.files_purged == 0
        assert not old.exists() and young.exists()  # a young one may be a running append's
        assert delta.live_paths("acme") == [live] and len(_rows(delta)) == 300


@pytest.mark.parametrize("hours", [-1])
def test_a_negative_keep_replaced_hours_is_refused(s3_lake: Lake, hours: int) -> None:
    s3_lake.append("EU", "acme", micro_rows(51, n=100))
    with pytest.raises(ValueError, match="keep_replaced_hours"):
        s3_lake.compact("EU", keep_replaced_hours=hours)
