"""The app transactions of a Delta table, read from its log in one pass and kept up to date.

delta-rs answers ``transaction_version`` one app id at a time by replaying the log (8-28 ms
per id on the test S3 server, docs/scale.md), so checking the 500 batch ids of a micro-batch
cost seconds. :class:`TxnLog` instead reads the ``txn`` actions itself — the latest
checkpoint's ``txn`` column, then each JSON commit after it — and keeps them, so a writer's
next append only reads the commits made since (one GET each).

It may answer *more* ids than the snapshot being checked holds (a checkpoint or commits newer
than it): that is safe, an id committed in any version is stored. It never answers fewer,
because it reads every commit up to the snapshot's version. Whatever it cannot read the
usual way (an object store other than S3 or a local path, options it does not know, a
multi-part or V2 checkpoint, a missing commit file) makes it answer None, and the caller
falls back to delta-rs' per-id look-up.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Final
from urllib.parse import urlsplit
from urllib.request import url2pathname

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

#: Storage options the S3 reader understands; any other makes the look-up fall back.
_S3_OPTIONS: Final = frozenset(
    {"aws_endpoint_url", "aws_region", "aws_default_region", "aws_allow_http"}
)


def log_filesystem(url: str, options: Mapping[str, str]) -> tuple[pafs.FileSystem, str] | None:
    """A pyarrow filesystem and the ``_delta_log`` directory of the table at ``url``; None
    when the URL's store or the options are not ones this reader handles."""
    parts = urlsplit(url)
    if parts.scheme == "file":
        return pafs.LocalFileSystem(), url2pathname(parts.path).rstrip("/") + "/_delta_log"
    if parts.scheme not in ("s3", "s3a"):
        return None
    lowered = {k.lower(): v for k, v in options.items()}
    if set(lowered) - _S3_OPTIONS:
        return None
    endpoint = urlsplit(lowered.get("aws_endpoint_url", ""))
    # no region: pyarrow's S3 client finds it (environment, profile, the bucket's own)
    region = lowered.get("aws_region") or lowered.get("aws_default_region") or None
    fs = pafs.S3FileSystem(
        region=region,
        endpoint_override=endpoint.netloc or None,
        scheme=endpoint.scheme or "https",
        connect_timeout=10,
        request_timeout=30,
    )
    return fs, f"{parts.netloc}{parts.path}".rstrip("/") + "/_delta_log"


class TxnLog:
    """The app ids committed to one Delta table, with their ``lastUpdated`` (ms)."""

    def __init__(self, url: str, options: Mapping[str, str]) -> None:
        self._where = log_filesystem(url, options)
        self._version = -1
        self._seen: dict[str, int | None] = {}
        self._lock = threading.Lock()  # the lake's writer threads share a region's table

    def committed(
        self, version: int, app_ids: Sequence[str], retention_ms: int | None
    ) -> set[str] | None:
        """The ``app_ids`` committed up to (at least) ``version`` and not older than
        ``retention_ms`` (None: none expire); None when the log cannot be read here (use
        delta-rs' look-up)."""
        if self._where is None:
            return None
        with self._lock:
            try:
                self._catch_up(version)
            except (OSError, ValueError, KeyError, TypeError, pa.ArrowException):
                self._version, self._seen = -1, {}
                return None
            oldest = 0 if retention_ms is None else int(time.time() * 1000) - retention_ms
            found = set()
            for app in app_ids:
                if app in self._seen:
                    updated = self._seen[app]
                    if updated is None or updated >= oldest:
                        found.add(app)
            return found

    def _catch_up(self, version: int) -> None:
        assert self._where is not None
        fs, log = self._where
        if self._version < 0:
            self._version = self._from_checkpoint(fs, log)
        for v in range(self._version + 1, version + 1):
            with fs.open_input_stream(f"{log}/{v:020d}.json") as f:
                for line in f.read().splitlines():
                    if b'"txn"' in line:
                        self._note(json.loads(line).get("txn"))
            self._version = v

    def _from_checkpoint(self, fs: pafs.FileSystem, log: str) -> int:
        """Read the latest checkpoint's ``txn`` actions; its version (-1: none yet)."""
        try:
            with fs.open_input_stream(f"{log}/_last_checkpoint") as f:
                last = json.loads(f.read())
        except FileNotFoundError:
            return -1
        if last.get("parts") not in (None, 1) or "v2Checkpoint" in last:
            raise ValueError("a multi-part or V2 checkpoint")
        version = int(last["version"])
        table = pq.read_table(
            f"{log}/{version:020d}.checkpoint.parquet", columns=["txn"], filesystem=fs
        )
        for txn in table.column("txn").drop_null().to_pylist():
            self._note(txn)
        return version

    def _note(self, txn: object) -> None:
        if isinstance(txn, dict) and isinstance(txn.get("appId"), str):
            updated = txn.get("lastUpdated")
            self._seen[txn["appId"]] = None if updated is None else int(updated)
