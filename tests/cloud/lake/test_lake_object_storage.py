"""The lake on object storage: Delta Lake tables on a real S3-compatible server.

The server is moto's S3 in server mode (``moto.server.ThreadedMotoServer``) on loopback: a real
HTTP S3 endpoint, with the conditional writes (``If-None-Match``) Delta commits rely on. Every
test writes through the lake's normal API (``Lake.open`` with ``lake_url``) and reads back
with DuckDB; writers in other processes show exactly-once across hosts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from lake_rows import T0, sorted_rows
from lake_s3_writer import micro_rows
from s3_helpers import s3_client, s3_keys, s3_options

from drivetrain.cloud.lake import Lake
from drivetrain.cloud.lake.delta import DeltaRegionTable
from drivetrain.cloud.lake.rows import normalize_rows
from drivetrain.core.errors import ConfigurationError, QueryError
from drivetrain.core.settings import load_settings
from tests.conftest import MOTO_BUCKET as BUCKET
from tests.conftest import MOTO_CREDENTIALS as CREDENTIALS

HERE = Path(__file__).parent


def _count(lake: Lake, **kwargs: object) -> int:
    table = lake.sql("acme", "SELECT count(*) AS n FROM telemetry", **kwargs)  # type: ignore[arg-type]
    return int(table.column("n")[0].as_py())


def test_batches_appended_to_s3_are_read_back_by_duckdb_in_the_lake_layout(
    s3_lake: Lake, s3_endpoint: str, prefix: str,
) -> None:
    rows = micro_rows(1, n=2000)
    result = s3_lake.append("EU", "acme", rows)
    assert result.rows_written == 2000 and result.rows_skipped == 0
    assert len(result.batches_written) == 5

    back = s3_lake.signals("acme", None, None, T0, T0 + timedelta(days=1))
    assert sorted_rows(back, ("vehicle", "path", "ts", "value")) == \
        sorted_rows(rows, ("vehicle", "path", "ts", "value"))
    per_region = s3_lake.fleet_aggregate("acme", "Vehicle.Speed", T0, T0 + timedelta(days=1))
    assert per_region.column("region").to_pylist() == ["EU"]
    assert _count(s3_lake) == 2000
    assert s3_lake.regions() == ["EU"]

    keys = s3_keys(s3_endpoint, prefix)
    data = [k for k in keys if k.endswith(".parquet")]
    assert data and all(k.startswith(f"{prefix}/region=EU/tenant=acme/date=2024-05-01/part-")
                        for k in data)
    assert f"{prefix}/region=EU/_delta_log/00000000000000000000.json" in keys


def test_the_same_batch_ids_appended_twice_are_stored_once(s3_lake: Lake) -> None:
    rows = micro_rows(2)
    first = s3_lake.append("EU", "acme", rows)
    again = s3_lake.append("EU", "acme", rows)
    assert again.rows_written == 0 and again.rows_skipped == first.rows_written == 1500
    assert again.batches_skipped == first.batches_written
    assert _count(s3_lake) == 1500
    # another tenant's identical batch ids are its own
    assert s3_lake.append("EU", "other", rows).rows_written == 1500


def _writers(s3_endpoint: str, prefix: str, tmp_path: Path,
             seeds: list[list[int]]) -> list[list[dict[str, int]]]:
    env = {**os.environ, **CREDENTIALS, "PYTHONPATH": os.pathsep.join(
        [str(HERE), *sys.path])}
    procs = [subprocess.Popen(
        [sys.executable, str(HERE / "lake_s3_writer.py"), f"s3://{BUCKET}/{prefix}",
         s3_endpoint, *map(str, own)], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True) for own in seeds]
    out = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, stderr[-3000:]
        out.append([json.loads(line) for line in stdout.splitlines()])
    return out


def test_two_writer_processes_append_concurrently_without_loss_or_duplicates(
    s3_lake: Lake, s3_endpoint: str, prefix: str, tmp_path: Path,
) -> None:
    # each writer appends its own batches; both deliver seeds 100 and 101 (re-delivery to two
    # workers at once), which must be stored once
    results = _writers(s3_endpoint, prefix, tmp_path, [[10, 100, 11, 101, 12],
                                                       [20, 100, 21, 101, 22]])
    expected = micro_rows(10)
    for seed in (11, 12, 20, 21, 22, 100, 101):
        expected = pa.concat_tables([expected, micro_rows(seed)])
    stored = s3_lake.sql("acme", "SELECT vehicle, path, ts, value FROM telemetry")
    assert sorted_rows(stored, ("vehicle", "path", "ts", "value")) == \
        sorted_rows(expected, ("vehicle", "path", "ts", "value"))
    per_batch = s3_lake.sql("acme", "SELECT batch_id, count(*) AS n FROM telemetry "
                                    "GROUP BY batch_id")
    assert per_batch.num_rows == 8 * 5 and set(per_batch.column("n").to_pylist()) == {300}
    shared = [r for own in results for r in own if r["seed"] in (100, 101)]
    assert sum(r["written"] for r in shared) == 2 * 1500
    assert sum(r["skipped"] for r in shared) == 2 * 1500


def test_a_batch_id_delivered_to_two_processes_at_once_is_stored_once(
    s3_lake: Lake, s3_endpoint: str, prefix: str, tmp_path: Path,
) -> None:
    _writers(s3_endpoint, prefix, tmp_path, [[7, 7], [7, 7]])
    assert _count(s3_lake) == 1500


def test_time_travel_reads_the_table_as_it_was_at_an_earlier_version(s3_lake: Lake) -> None:
    s3_lake.append("EU", "acme", micro_rows(3))
    first = s3_lake.table_version("EU")
    assert first is not None
    s3_lake.append("EU", "acme", micro_rows(4))
    assert _count(s3_lake, as_of={"EU": first}) == 1500
    assert _count(s3_lake) == 3000
    # an erasure purges the files it replaced: the versions before it no longer read them
    s3_lake.erase_vehicles("acme", [f"{0:024x}"])
    assert _count(s3_lake) < 3000
    with pytest.raises(QueryError, match="not found"):
        _count(s3_lake, as_of={"EU": first})
    with pytest.raises(ConfigurationError, match="lake_url"):
        Lake(Path("/nonexistent")).sql("acme", "SELECT 1", as_of={"EU": 0})


def test_a_new_column_is_merged_into_the_schema_and_old_rows_read_it_as_null(
    s3_endpoint: str, prefix: str,
) -> None:
    table = DeltaRegionTable("EU", f"s3://{BUCKET}/{prefix}/region=EU", s3_options(s3_endpoint),
                             batch_window_days=35)
    old = normalize_rows(micro_rows(5))
    assert table.append("acme", old) is not None
    new = normalize_rows(micro_rows(6))
    new = new.append_column("quality", pa.array([0.5] * new.num_rows))
    assert table.append("acme", new) is not None
    dataset = table.dataset()
    assert dataset is not None and "quality" in dataset.schema.names
    quality = dataset.to_table(columns=["quality"]).column("quality")
    assert quality.null_count == old.num_rows
    assert pc.sum(quality).as_py() == pytest.approx(0.5 * new.num_rows)


def test_erasing_a_vehicle_deletes_its_rows_and_purges_every_file_that_held_them(
    s3_lake: Lake, s3_endpoint: str, prefix: str,
) -> None:
    s3_lake.append("EU", "acme", micro_rows(8))
    s3_lake.append("EU", "acme", micro_rows(9))
    gone = f"{1:024x}"
    before = s3_lake.sql("acme", "SELECT count(*) AS n FROM telemetry WHERE vehicle = "
                                 f"'{gone}'").column("n")[0].as_py()
    assert before > 0
    [result] = s3_lake.erase_vehicles("acme", [gone])
    assert result.region == "EU" and result.rows_removed == before
    after = s3_lake.sql("acme", "SELECT count(DISTINCT vehicle) AS v, count(*) AS n, "
                                f"count(*) FILTER (WHERE vehicle = '{gone}') AS g FROM telemetry")
    assert after.column("g")[0].as_py() == 0 and after.column("v")[0].as_py() == 4
    s3 = s3_client(s3_endpoint)
    for key in s3_keys(s3_endpoint, prefix):
        if key.endswith(".parquet"):
            body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
            vehicles = pq.read_table(pa.BufferReader(body), columns=["vehicle"])
            assert gone not in vehicles.column("vehicle").to_pylist(), key


@pytest.mark.parametrize("url", ["bucket/prefix", "ftp://host/x", "s3://", "http://x/y"])
def test_a_lake_url_that_is_not_an_object_store_url_is_refused_at_start(
    url: str, tmp_path: Path,
) -> None:
    with pytest.raises(ConfigurationError, match="lake_url"):
        Lake.open(load_settings(data_dir=tmp_path, lake_url=url))


def test_samples_keep_microseconds_on_the_table_backend(s3_lake: Lake) -> None:
    rows = micro_rows(12, n=10, batches=1)
    ts = rows.column("ts").cast(pa.int64())
    rows = rows.set_column(rows.column_names.index("ts"), "ts",
                           pc.add(ts, 999).cast(pa.timestamp("ns", tz="UTC")))
    s3_lake.append("EU", "acme", rows)
    back = s3_lake.signals("acme", None, None, T0, datetime(2024, 5, 2, tzinfo=UTC))
    # Delta's timestamp is microseconds: the sub-microsecond digits are not stored
    assert sorted(back.column("ts").cast(pa.int64()).to_pylist()) == sorted(ts.to_pylist())


def test_committed_batch_ids_are_found_after_a_checkpoint_by_a_fresh_process(
    s3_endpoint: str, prefix: str,
) -> None:
    from deltalake import DeltaTable

    url = f"s3://{BUCKET}/{prefix}/region=EU"
    first = DeltaRegionTable("EU", url, s3_options(s3_endpoint), batch_window_days=35)
    rows = normalize_rows(micro_rows(13))
    assert first.append("acme", rows) is not None
    first.append("acme", normalize_rows(micro_rows(14)))
    DeltaTable(url, storage_options=s3_options(s3_endpoint)).create_checkpoint()
    first.append("acme", normalize_rows(micro_rows(15)))
    fresh = DeltaRegionTable("EU", url, s3_options(s3_endpoint), batch_window_days=35)
    ids = [f"{seed:08x}{i:024x}" for seed in (13, 14, 15, 16) for i in range(5)]
    assert fresh.committed_batches("acme", ids) == set(ids[:15])
    again = fresh.append("acme", rows)
    assert again is not None and not again.plan.slices and again.plan.skipped_rows == 1500


@pytest.mark.parametrize("key", ["AWS_SECRET_ACCESS_KEY", "aws_access_key_id",
                                 "AZURE_STORAGE_ACCOUNT_KEY", "AWS_SESSION_TOKEN"])
def test_credentials_in_lake_storage_options_are_refused(key: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="credential"):
        load_settings(data_dir=tmp_path, lake_url="s3://b/p", lake_storage_options={key: "x"})
