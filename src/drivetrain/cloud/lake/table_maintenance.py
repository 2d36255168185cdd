"""Compaction, retention and export on the table-format lake (``lake_url``).

The embedded lake swaps files through its index (compaction.py, retention.py); a table does
the same through its own commits, which are atomic across hosts and keep the batch ids (app
transactions) untouched:

- **compaction** is the table's optimize (delta-rs ``optimize.compact``: a partition's small
  files binned into files of about the target size, one commit), then a vacuum of the files
  compactions replaced longer ago than ``keep_replaced_hours`` — the time a running reader or
  time travel may still open them.
- **retention** plans exactly as on the embedded lake (``plan_retention`` over the table's
  files, with the rows per category read from the files whose date could have expired),
  then deletes the expired rows with one ``DELETE`` per region — ``category = c AND date <
  cutoff`` per expired category — purging the replaced files at once (expired data, like
  erased data, leaves no copy), and checkpoints the table. App ids older than the re-delivery
  window (``delta.setTransactionRetentionDuration``) are ignored by delta-rs when it reads
  the log; the checkpoint leaves them out of the state it writes and shortens the log
  replays of later look-ups.
- **export** writes the embedded lake's bundle from the table's current files.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date
from typing import Final

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from drivetrain.cloud.lake.confinement import literal
from drivetrain.cloud.lake.models import CompactionResult, LakeFile, RetentionAction
from drivetrain.cloud.lake.retention import RetentionPolicy, plan_retention
from drivetrain.cloud.lake.tables import RegionTable, TableFile
from drivetrain.core.errors import StorageError
from drivetrain.core.vss.privacy import PRIVACY_CATEGORIES

#: Hours a file replaced by a compaction stays in storage (Delta's default for
#: ``delta.deletedFileRetentionDuration``: a week).
KEEP_REPLACED_HOURS: Final = 168
#: Smallest target file size a compaction asks for, bytes.
_MIN_TARGET_BYTES: Final = 1 << 20
#: A category no policy key names explicitly (matches only ``*`` keys).
_OTHER_CATEGORY: Final = "\x00other"


def lake_file(
    region: str, f: TableFile, file_id: int, categories: dict[str, int] | None = None
) -> LakeFile:
    """``f`` as the lake describes a file (its name relative to the table)."""
    return LakeFile(
        file_id=file_id,
        region=region,
        tenant=f.tenant,
        day=f.day,
        name=f.name,
        rows=f.rows,
        bytes=f.bytes,
        min_ts_ns=f.min_ts_ns,
        max_ts_ns=f.max_ts_ns,
        sorted=False,
        categories=categories or {},
    )


def compact_table(
    table: RegionTable,
    region: str,
    *,
    tenant: str | None,
    target_rows: int,
    keep_replaced_hours: int = KEEP_REPLACED_HOURS,
) -> CompactionResult:
    """Optimize ``table`` (``tenant``'s partitions only, if given) into files of about
    ``target_rows`` rows — turned into the table's target file size from the mean bytes per
    row of its files — then vacuum files replaced more than ``keep_replaced_hours`` ago.

    Raises:
        StorageError: the table cannot be read or committed.
    """
    if target_rows < 1:
        raise ValueError(f"target_rows={target_rows}; expected a positive number")
    if keep_replaced_hours < 0:
        raise ValueError(f"keep_replaced_hours={keep_replaced_hours}; expected 0 or more")
    files = table.files(tenant)
    rows = sum(f.rows for f in files)
    per_row = sum(f.bytes for f in files) / rows if rows else 0.0
    target = max(_MIN_TARGET_BYTES, int(target_rows * per_row))
    done = table.compact(tenant, target_bytes=target, keep_replaced_hours=keep_replaced_hours)
    return CompactionResult(
        region,
        done.partitions,
        done.files_removed,
        done.files_added,
        done.rows,
        done.bytes_removed,
        done.bytes_added,
        files_purged=done.files_purged,
        orphans_purged=done.orphans_purged,
    )


def _latest_cutoff(policy: RetentionPolicy, region: str, today: date) -> date | None:
    cutoffs = [policy.cutoff(region, c, today) for c in (*PRIVACY_CATEGORIES, _OTHER_CATEGORY)]
    known = [c for c in cutoffs if c is not None]
    return max(known) if known else None


def _category_counts(dataset: ds.Dataset) -> dict[str, dict[str, int]]:
    """Rows per category of each file of ``dataset``, by the file's name in the table."""
    counts: dict[str, dict[str, int]] = {}
    for fragment in dataset.get_fragments():
        column = fragment.to_table(columns=["category"]).column("category")
        values = pc.value_counts(column.cast(pa.utf8())).to_pylist()
        counts[fragment.path] = {v["values"]: v["counts"] for v in values}
    return counts


def plan_table_retention(
    table: RegionTable, region: str, policy: RetentionPolicy, today: date
) -> list[RetentionAction]:
    """What retention deletes or rewrites in ``table`` on ``today`` (``plan_retention`` over
    the table's files; only files dated before the latest cutoff are opened)."""
    latest = _latest_cutoff(policy, region, today)
    if latest is None:
        return []
    candidates = [f for f in table.files() if f.day < latest]
    if not candidates:
        return []
    dataset = table.dataset_of([f.name for f in candidates])
    try:
        counts = {} if dataset is None else _category_counts(dataset)
    except (OSError, pa.ArrowException) as e:
        raise StorageError(f"cannot read the lake table {table.url}: {e}") from e
    files = [lake_file(region, f, i, counts.get(f.name, {})) for i, f in enumerate(candidates)]
    return plan_retention(files, policy, today)


def expiry_predicate(
    actions: Sequence[RetentionAction], policy: RetentionPolicy, region: str, today: date
) -> str | None:
    """The SQL predicate deleting the rows of the categories ``actions`` expire: per
    category, ``category = c AND date < cutoff`` (None: nothing expires)."""
    clauses = []
    for category in sorted({c for a in actions for c in a.categories}):
        cutoff = policy.cutoff(region, category, today)
        if cutoff is not None:
            clauses.append(
                f"(category = {literal(category)} AND date < {literal(cutoff.isoformat())})"
            )
    return " OR ".join(clauses) or None


def apply_table_retention(
    table: RegionTable, region: str, policy: RetentionPolicy, today: date, *, dry_run: bool
) -> list[RetentionAction]:
    """Enforce ``policy`` on ``table`` as of ``today`` (or, with ``dry_run``, only plan):
    one delete of the expired rows, the replaced files purged, then a checkpoint (without
    the app ids past the re-delivery window). Returns the planned actions; rows of an expired
    category a writer committed after the plan go too (the delete is by predicate).

    Raises:
        StorageError: the table cannot be read or committed.
    """
    actions = plan_table_retention(table, region, policy, today)
    if dry_run:
        return actions
    predicate = expiry_predicate(actions, policy, region, today)
    if predicate is not None:
        table.delete_rows(predicate, files={a.name for a in actions})
    if table.version() is not None:
        table.checkpoint()
    return actions


def table_files_opener(table: RegionTable) -> Callable[[Sequence[LakeFile]], ds.Dataset]:
    """``open_files`` for the bundle writer: exactly the named files of the table's latest
    version."""

    def open_files(files: Sequence[LakeFile]) -> ds.Dataset:
        dataset = table.dataset_of([f.name for f in files])
        found = 0 if dataset is None else len(dataset.files)
        if found != len(files):  # a compaction or retention replaced one since the listing
            raise StorageError(
                f"files of the lake table {table.url} changed during the export; run it again"
            )
        assert dataset is not None
        return dataset

    return open_files
