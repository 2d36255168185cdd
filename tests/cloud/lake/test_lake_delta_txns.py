"""The batch look-up of a Delta table's app transactions (``delta_txns.TxnLog``) answers what
delta-rs' one-id-at-a-time ``transaction_version`` answers — on moto's S3 server and on a
local table, across a checkpoint, incrementally, and with expired ids left out — and says
so (None) where it cannot read the log, so the lake falls back to delta-rs."""

from __future__ import annotations

import time
from pathlib import Path

import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
from lake_s3_writer import micro_rows
from s3_helpers import s3_options

from drivetrain.cloud.lake.delta import DeltaRegionTable, _retention_ms, app_id
from drivetrain.cloud.lake.delta_txns import TxnLog
from drivetrain.cloud.lake.rows import normalize_rows
from tests.conftest import MOTO_BUCKET

DAY_MS = 86_400_000


def _per_id(table: DeltaTable, apps: list[str]) -> set[str]:
    return {a for a in apps if table.transaction_version(a) is not None}


def test_the_log_read_in_one_pass_answers_what_delta_rs_answers_id_by_id_on_s3(
    s3_endpoint: str,
    prefix: str,
) -> None:
    url = f"s3://{MOTO_BUCKET}/{prefix}/region=EU"
    options = s3_options(s3_endpoint)
    writer = DeltaRegionTable("EU", url, options, batch_window_days=35)
    log = TxnLog(url, options)
    apps = [app_id("acme", f"{seed:08x}{i:024x}") for seed in (61, 62, 63, 64) for i in range(5)]
    for seed in (61, 62):
        assert writer.append("acme", normalize_rows(micro_rows(seed))) is not None
    table = DeltaTable(url, storage_options=options)
    assert log.committed(table.version(), apps, None) == _per_id(table, apps) == set(apps[:10])
    table.create_checkpoint()
    writer.append("acme", normalize_rows(micro_rows(63)))
    table = DeltaTable(url, storage_options=options)
    # the same reader catches up on the new commit; a fresh one starts from the checkpoint
    assert log.committed(table.version(), apps, None) == _per_id(table, apps) == set(apps[:15])
    fresh = TxnLog(url, options)
    assert fresh.committed(table.version(), apps, None) == set(apps[:15])


def test_ids_older_than_the_tables_retention_are_left_out_as_delta_rs_does(
    tmp_path: Path,
) -> None:
    url = f"file://{tmp_path}/t"
    rows = pa.table({"v": [1]})
    DeltaTable.create(
        url, rows.schema, configuration={"delta.setTransactionRetentionDuration": "interval 1 days"}
    )
    now = int(time.time() * 1000)
    for app, updated in (("old", now - 3 * DAY_MS), ("new", now), ("undated", None)):
        write_deltalake(
            url,
            rows,
            mode="append",
            commit_properties=CommitProperties(app_transactions=[Transaction(app, 1, updated)]),
        )
    table = DeltaTable(url)
    assert _retention_ms(table) == DAY_MS
    apps = ["old", "new", "undated", "never"]
    assert TxnLog(url, {}).committed(table.version(), apps, _retention_ms(table)) == _per_id(
        table, apps
    )


def test_a_log_it_cannot_read_makes_it_answer_none(tmp_path: Path) -> None:
    assert TxnLog("gs://bucket/lake/region=EU", {}).committed(3, ["a"], None) is None
    odd = {"AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_S3_ADDRESSING_STYLE": "path"}
    assert TxnLog("s3://bucket/lake/region=EU", odd).committed(3, ["a"], None) is None
    # a commit file missing from the log (cleaned up, or never there)
    assert TxnLog(f"file://{tmp_path}/none", {}).committed(2, ["a"], None) is None
