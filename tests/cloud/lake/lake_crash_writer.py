"""A lake writer the crash tests run as a subprocess and kill (SIGKILL) at a chosen point.

    python lake_crash_writer.py DATA_DIR MODE [STEP NTH]

MODE ``append`` appends the tables of :func:`crash_tables` in order; ``compact`` compacts;
``loop`` appends them over and over (the test kills it at a random moment). With STEP, the
process kills itself the NTH time the lake reports that write step (e.g. ``append.committed``).
With ``LAKE_URL`` and ``S3_ENDPOINT`` in the environment the lake is the Delta lake on that
S3 server (the tables with timestamps on whole microseconds, what Delta keeps).
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
from lake_rows import make_rows

from drivetrain.cloud.lake import Lake

SPAN_S = 2 * 86_400.0  # every table spans two dates, so each append writes two files


def crash_tables(*, micro: bool = False) -> list[pa.Table]:
    """The tables every crash scenario appends (deterministic); ``micro``: timestamps cut to
    whole microseconds."""
    if micro:
        from lake_s3_writer import micro_rows

        return [micro_rows(seed, n=3000, batches=6, span_s=SPAN_S) for seed in range(3)]
    return [make_rows(3000, seed=seed, batches=6, span_s=SPAN_S) for seed in range(3)]


def open_lake(data_dir: Path, checkpoint: Callable[[str], None] | None = None) -> Lake:
    """The embedded lake in ``data_dir``, or the Delta lake the environment names."""
    url, endpoint = os.environ.get("LAKE_URL"), os.environ.get("S3_ENDPOINT")
    if url is None or endpoint is None:
        return Lake(data_dir, checkpoint=checkpoint)
    from drivetrain.core.settings import load_settings

    settings = load_settings(data_dir=data_dir, lake_url=url, lake_storage_options={
        "AWS_ENDPOINT_URL": endpoint, "AWS_ALLOW_HTTP": "true", "AWS_REGION": "us-east-1"})
    return Lake.open(settings, checkpoint=checkpoint)


def main(argv: list[str]) -> None:
    data_dir, mode = Path(argv[1]), argv[2]
    step, nth = (argv[3], int(argv[4])) if len(argv) > 3 else (None, 0)
    seen = 0

    def checkpoint(name: str) -> None:
        nonlocal seen
        if name == step:
            seen += 1
            if seen == nth:
                os.kill(os.getpid(), signal.SIGKILL)

    lake = open_lake(data_dir, checkpoint)
    tables = crash_tables(micro=lake.table_format)
    if mode == "append":
        for table in tables:
            lake.append("EU", "acme", table)
    elif mode == "compact":
        lake.compact("EU", target_rows=100_000)
    elif mode == "loop":
        while True:
            for table in tables:
                lake.append("EU", "acme", table)
            lake.compact("EU", target_rows=100_000)
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    lake.close()


if __name__ == "__main__":
    main(sys.argv)
