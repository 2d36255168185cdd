"""A lake writer process of the object-storage tests: appends tables to a table-format lake.

    python lake_s3_writer.py LAKE_URL ENDPOINT SEED [SEED ...]

Appends ``make_rows(1500, seed=SEED, batches=5)`` (timestamps on whole microseconds) to region
EU, tenant acme, for each seed in order, and prints one JSON line per append (rows written and
skipped). AWS credentials come from the environment.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from lake_rows import make_rows

from drivetrain.cloud.lake import Lake
from drivetrain.core.settings import load_settings


def micro_rows(seed: int, n: int = 1500, batches: int = 5, **kwargs: Any) -> pa.Table:
    """``make_rows`` with timestamps cut to whole microseconds (what a Delta table keeps)."""

    table = make_rows(n, seed=seed, batches=batches, **kwargs)
    ts = pc.multiply(pc.divide(table.column("ts").cast(pa.int64()), 1000), 1000)
    return table.set_column(table.column_names.index("ts"), "ts",
                            ts.cast(pa.timestamp("ns", tz="UTC")))


def main(argv: list[str]) -> None:
    url, endpoint, seeds = argv[1], argv[2], [int(s) for s in argv[3:]]
    settings = load_settings(lake_url=url, lake_storage_options={
        "AWS_ENDPOINT_URL": endpoint, "AWS_ALLOW_HTTP": "true", "AWS_REGION": "us-east-1"})
    with Lake.open(settings) as lake:
        for seed in seeds:
            result = lake.append("EU", "acme", micro_rows(seed))
            print(json.dumps({"seed": seed, "written": result.rows_written,
                              "skipped": result.rows_skipped}), flush=True)


if __name__ == "__main__":
    main(sys.argv)
