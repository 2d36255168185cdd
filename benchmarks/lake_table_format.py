"""Delta Lake (deltalake) against Apache Iceberg (pyiceberg + SQL catalog) for the lake on
object storage: the measurement the table-format choice in docs/scale.md rests on.

Against a real S3-compatible server (moto's ThreadedMotoServer on loopback), for each format:

- ``append_ms``: latency of appending one typical ingest micro-batch (``--batches`` vehicle
  batches of ``--samples`` samples, one commit carrying every batch id for exactly-once),
  median of ``--repeats`` appends;
- two writer processes appending concurrently (distinct batches, plus one batch id both
  write): rows stored, lost, duplicated, and how often a commit had to be retried;
- ``read_ms``: DuckDB reading the table through the table library's file list (a pyarrow
  dataset; DuckDB's delta/iceberg extensions need a download, impossible offline).

Run: ``python benchmarks/lake_table_format.py [--quick]``; the last stdout line is JSON.
Needs the ``lake-s3`` extra and pyiceberg (``pip install 'pyiceberg[sql-sqlite,pyarrow]'``).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import duckdb
import pyarrow as pa

KEY = "testing"


def _batch_table(batches: int, samples: int, tag: str) -> tuple[pa.Table, list[str]]:
    ids = [uuid.uuid5(uuid.NAMESPACE_OID, f"{tag}-{i}").hex for i in range(batches)]
    n = batches * samples
    base = int(datetime(2024, 5, 1, tzinfo=UTC).timestamp() * 1e9)
    return pa.table({
        "tenant": pa.array(["acme"] * n),
        "date": pa.array([datetime(2024, 5, 1).date()] * n, pa.date32()),
        "vehicle": pa.array([f"veh{i % 50}" for i in range(n)]),
        "path": pa.array(["Vehicle.Speed"] * n),
        "ts": pa.array([base + i * 1_000_000 for i in range(n)], pa.timestamp("ns", "UTC")),
        "value": pa.array([float(i % 120) for i in range(n)]),
        "batch_id": pa.array([ids[i // samples] for i in range(n)]),
    }), ids


def _s3_options(endpoint: str) -> dict[str, str]:
    return {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": KEY, "AWS_SECRET_ACCESS_KEY": KEY,
            "AWS_REGION": "us-east-1", "AWS_ALLOW_HTTP": "true"}


# --- Delta Lake --------------------------------------------------------------------------------
#: The lake's batch look-up of app transactions per table URL, kept across a process's appends
#: as a writer keeps it (drivetrain.cloud.lake.delta_txns).
_TXN_LOGS: dict[str, Any] = {}


def _committed(target: Any, uri: str, endpoint: str, ids: list[str]) -> set[str]:
    """The ``ids`` committed in ``target`` (a DeltaTable): through the lake's one-pass read of
    the log, or delta-rs' per-id look-up where that cannot read it."""
    from drivetrain.cloud.lake.delta_txns import TxnLog

    log = _TXN_LOGS.setdefault(uri, TxnLog(uri, {
        k: v for k, v in _s3_options(endpoint).items() if not k.endswith(("_ID", "_KEY"))}))
    found = log.committed(target.version(), [f"acme/{b}" for b in ids], None)
    if found is not None:
        return {a.removeprefix("acme/") for a in found}
    return {b for b in ids if target.transaction_version(f"acme/{b}") is not None}


def delta_append(uri: str, endpoint: str, table: pa.Table, ids: list[str]) -> int:
    """Append with one app transaction per batch id; returns commit retries needed."""
    from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
    from deltalake.exceptions import CommitFailedError, TableNotFoundError

    opts = _s3_options(endpoint)
    retries = 0
    while True:
        target: str | DeltaTable = uri
        try:
            # the commit below is made against this snapshot, so a batch id committed by
            # another writer after it conflicts (delta-rs' app-transaction conflict check)
            target = DeltaTable(uri, storage_options=opts)
            done = _committed(target, uri, endpoint, ids)
        except TableNotFoundError:
            done = set()
        todo = [b for b in ids if b not in done]
        if not todo:
            return retries
        part = table.filter(pa.compute.is_in(table["batch_id"], pa.array(todo)))
        try:
            write_deltalake(target, part, mode="append", partition_by=["tenant", "date"],
                            storage_options=opts, commit_properties=CommitProperties(
                                app_transactions=[Transaction(f"acme/{b}", 1) for b in todo]))
            return retries
        except CommitFailedError as e:
            # a plain version race is rebased and retried inside delta-rs; what comes out is
            # a batch id another writer committed after our snapshot: re-plan without it
            if "Concurrent transaction" not in str(e):
                raise
            retries += 1


def delta_read(uri: str, endpoint: str) -> pa.Table:
    from deltalake import DeltaTable
    dt = DeltaTable(uri, storage_options=_s3_options(endpoint))
    dataset = dt.to_pyarrow_dataset()
    con = duckdb.connect()
    con.register("t", dataset)
    return con.sql("SELECT count(*) AS n, count(DISTINCT batch_id) AS b FROM t").to_arrow_table()


# --- Iceberg -----------------------------------------------------------------------------------
def _iceberg_catalog(catalog_db: str, endpoint: str) -> Any:
    from pyiceberg.catalog.sql import SqlCatalog
    return SqlCatalog("lake", uri=f"sqlite:///{catalog_db}", warehouse="s3://bench/iceberg",
                      **{"s3.endpoint": endpoint, "s3.access-key-id": KEY,
                         "s3.secret-access-key": KEY, "s3.region": "us-east-1"})


def iceberg_append(catalog_db: str, endpoint: str, table: pa.Table, ids: list[str]) -> int:
    """Append with the batch ids in the snapshot summary, checked against every snapshot's
    summary before an optimistic commit; returns commit retries needed."""
    from pyiceberg.exceptions import CommitFailedException

    catalog = _iceberg_catalog(catalog_db, endpoint)
    retries = 0
    while True:
        t = catalog.load_table("lake.telemetry")
        done: set[str] = set()
        for snap in t.metadata.snapshots:
            summary = snap.summary
            if summary is not None and "drivetrain.batches" in summary.additional_properties:
                done.update(summary.additional_properties["drivetrain.batches"].split(","))
        todo = [b for b in ids if b not in done]
        if not todo:
            return retries
        part = table.filter(pa.compute.is_in(table["batch_id"], pa.array(todo)))
        try:
            t.append(part, snapshot_properties={"drivetrain.batches": ",".join(todo)})
            return retries
        except CommitFailedException:
            retries += 1


def iceberg_read(catalog_db: str, endpoint: str) -> pa.Table:
    catalog = _iceberg_catalog(catalog_db, endpoint)
    t = catalog.load_table("lake.telemetry")
    arrow = t.scan().to_arrow()
    con = duckdb.connect()
    con.register("t", arrow)
    return con.sql("SELECT count(*) AS n, count(DISTINCT batch_id) AS b FROM t").to_arrow_table()


def iceberg_create(catalog_db: str, endpoint: str, schema: pa.Schema) -> None:
    from pyiceberg.partitioning import PartitionField, PartitionSpec
    from pyiceberg.transforms import IdentityTransform
    catalog = _iceberg_catalog(catalog_db, endpoint)
    catalog.create_namespace_if_not_exists("lake")
    # pyiceberg writes format v2 only, which has no ns timestamps: the lake's ns ``ts`` is cut
    # to microseconds (PYICEBERG_DOWNCAST_NS_TIMESTAMP_TO_US_ON_WRITE, set in main).
    t = catalog.create_table("lake.telemetry", schema=schema)
    ids = {f.name: f.field_id for f in t.schema().fields}
    spec = PartitionSpec(PartitionField(ids["tenant"], 1000, IdentityTransform(), "tenant"),
                         PartitionField(ids["date"], 1001, IdentityTransform(), "date"))
    with t.update_spec() as update:
        for f in spec.fields:
            update.add_identity(f.name)


# --- the runs ----------------------------------------------------------------------------------
def _writer(fmt: str, target: str, endpoint: str, tag: str, rounds: int, batches: int,
            samples: int, queue: Any) -> None:
    retries = 0
    for r in range(rounds):
        table, ids = _batch_table(batches, samples, f"{tag}-{r}")
        if r == rounds // 2:  # one batch id both writers deliver
            shared, shared_ids = _batch_table(1, samples, "shared")
            table, ids = pa.concat_tables([table, shared]), ids + shared_ids
        append = delta_append if fmt == "delta" else iceberg_append
        retries += append(target, endpoint, table, ids)
    queue.put(retries)


def measure(fmt: str, endpoint: str, work: str, args: argparse.Namespace) -> dict[str, Any]:
    target = f"s3://bench/{fmt}" if fmt == "delta" else f"{work}/catalog-{uuid.uuid4().hex}.db"
    table, ids = _batch_table(args.batches, args.samples, "warm")
    if fmt == "iceberg":
        iceberg_create(target, endpoint, table.schema)
    append = delta_append if fmt == "delta" else iceberg_append
    append(target, endpoint, table, ids)
    latencies = []
    for r in range(args.repeats):
        table, ids = _batch_table(args.batches, args.samples, f"seq-{r}")
        start = time.perf_counter()
        append(target, endpoint, table, ids)
        latencies.append((time.perf_counter() - start) * 1000)
    # the same batch ids again: stored once
    append(target, endpoint, table, ids)
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(fmt, target, endpoint, tag, args.rounds,
                                               args.batches, args.samples, queue))
             for tag in ("w1", "w2")]
    for p in procs:
        p.start()
    retries = sum(queue.get(timeout=600) for _ in procs)
    for p in procs:
        p.join()
    start = time.perf_counter()
    read = delta_read(target, endpoint) if fmt == "delta" else iceberg_read(target, endpoint)
    read_ms = (time.perf_counter() - start) * 1000
    expected_batches = (1 + args.repeats + 2 * args.rounds) * args.batches + 1
    rows, batches = read.column("n")[0].as_py(), read.column("b")[0].as_py()
    return {f"{fmt}_append_ms": round(statistics.median(latencies), 1),
            f"{fmt}_read_ms": round(read_ms, 1),
            f"{fmt}_concurrent_retries": retries,
            f"{fmt}_rows": rows, f"{fmt}_rows_expected": expected_batches * args.samples,
            f"{fmt}_batches": batches, f"{fmt}_batches_expected": expected_batches}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--batches", type=int, default=500, help="vehicle batches per append")
    parser.add_argument("--samples", type=int, default=20, help="samples per vehicle batch")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=8, help="appends per concurrent writer")
    parser.add_argument("--formats", default="delta,iceberg")
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.rounds = 3, 4
    os.environ["PYICEBERG_DOWNCAST_NS_TIMESTAMP_TO_US_ON_WRITE"] = "true"
    # the local test server's keys, where pyarrow's S3 client (the lake's look-up) reads them
    os.environ.update({"AWS_ACCESS_KEY_ID": KEY, "AWS_SECRET_ACCESS_KEY": KEY})
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=KEY,
                 aws_secret_access_key=KEY, region_name="us-east-1").create_bucket(Bucket="bench")
    figures: dict[str, Any] = {"server": "moto ThreadedMotoServer", "rows_per_append":
                               args.batches * args.samples}
    try:
        with tempfile.TemporaryDirectory() as work:
            for fmt in args.formats.split(","):
                print(f"measuring {fmt}...", file=sys.stderr)
                try:
                    figures.update(measure(fmt, endpoint, work, args))
                except Exception as e:  # noqa: BLE001 - a format that cannot do it says why
                    figures[f"{fmt}_error"] = f"{type(e).__name__}: {str(e)[:300]}"
                print(json.dumps(figures), file=sys.stderr)
    finally:
        server.stop()
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
