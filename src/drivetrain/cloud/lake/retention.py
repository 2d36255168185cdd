"""Retention: how long each region keeps each privacy category, and enforcing it.

A policy maps ``REGION:category`` to days (``*`` for any region or category; the most
specific key wins: ``EU:location`` over ``EU:*`` over ``*:location`` over ``*:*``). A sample
dated D (its UTC date) expires when D is before ``today - days``. Data no key covers is kept.

Enforcement works on whole files where it can: a file whose every category has expired is
deleted (a whole partition goes with its last file); a file where only some categories expired
is rewritten without them. Both swap through the index like a compaction, so readers never see
a half-applied run. ``plan_retention`` is pure — the dry run prints its plan.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

import pyarrow as pa
import pyarrow.compute as pc

from drivetrain.cloud.lake.compaction import read_lake_file, slice_of
from drivetrain.cloud.lake.keys import KeyDestroyedError
from drivetrain.cloud.lake.models import LakeFile, RetentionAction, RetentionReport
from drivetrain.cloud.lake.store import RegionStore
from drivetrain.core.errors import BadInputError, ConflictError
from drivetrain.core.regions import REGIONS
from drivetrain.core.vss.privacy import PRIVACY_CATEGORIES

_ANY = "*"


@dataclass(frozen=True)
class RetentionPolicy:
    """Days to keep, per (region, category); ``*`` matches any. Build with
    :meth:`from_mapping`."""

    days: Mapping[tuple[str, str], int] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, int]) -> RetentionPolicy:
        """Parse ``{"EU:location": 30, "*:diagnostics": 3650}``.

        Raises:
            BadInputError: a key that is not ``REGION:category`` (either part may be ``*``),
                an unknown region or category, or days that are not a whole number >= 0.
        """
        days: dict[tuple[str, str], int] = {}
        for key, value in mapping.items():
            region, sep, category = str(key).partition(":")
            if not sep:
                raise BadInputError(
                    f"retention key {key!r} is not 'REGION:category'; e.g. 'EU:location' or "
                    "'*:diagnostics'"
                )
            if region != _ANY and region not in REGIONS:
                raise BadInputError(f"retention key {key!r}: region {region!r} is not known; "
                                    f"expected one of {', '.join(REGIONS)} or '*'")
            if category != _ANY and category not in PRIVACY_CATEGORIES:
                raise BadInputError(f"retention key {key!r}: category {category!r} is not "
                                    f"known; expected one of {', '.join(PRIVACY_CATEGORIES)} "
                                    "or '*'")
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise BadInputError(f"retention {key!r} = {value!r}; expected whole days >= 0")
            days[(region, category)] = value
        return cls(days)

    def to_mapping(self) -> dict[str, int]:
        """The policy as ``{"REGION:category": days}`` (round-trips :meth:`from_mapping`)."""
        return {f"{r}:{c}": d for (r, c), d in sorted(self.days.items())}

    def merged(self, other: RetentionPolicy) -> RetentionPolicy:
        """This policy with ``other``'s keys taking precedence."""
        return RetentionPolicy({**self.days, **other.days})

    def days_for(self, region: str, category: str) -> int | None:
        """Days ``category`` is kept in ``region``, or None when kept until deleted."""
        for key in ((region, category), (region, _ANY), (_ANY, category), (_ANY, _ANY)):
            if key in self.days:
                return self.days[key]
        return None

    def cutoff(self, region: str, category: str, today: date) -> date | None:
        """Samples dated before this day have expired (None: nothing expires)."""
        days = self.days_for(region, category)
        return None if days is None else today - timedelta(days=days)


def plan_retention(
    files: Sequence[LakeFile], policy: RetentionPolicy, today: date
) -> list[RetentionAction]:
    """What retention deletes or rewrites among ``files`` on ``today``."""
    actions = []
    for f in files:
        expired = []
        for category in f.categories:
            cutoff = policy.cutoff(f.region, category, today)
            if cutoff is not None and f.day < cutoff:
                expired.append(category)
        if not expired:
            continue
        dropped = sum(f.categories[c] for c in expired)
        kept = f.rows - dropped
        actions.append(RetentionAction(
            region=f.region, tenant=f.tenant, day=f.day, name=f.name,
            action="delete" if kept == 0 else "rewrite",
            rows_dropped=dropped, rows_kept=kept, categories=tuple(sorted(expired)),
            bytes=f.bytes,
        ))
    return actions


def batch_horizon(policy: RetentionPolicy, region: str, today: date) -> date | None:
    """Batch ids whose samples are all dated before this day can be forgotten: every category
    of them has expired. None when some category is kept until deleted."""
    cutoffs = [policy.cutoff(region, c, today) for c in PRIVACY_CATEGORIES]
    if any(c is None for c in cutoffs):
        return None
    return min(c for c in cutoffs if c is not None)


def delete_expired_files(
    store: RegionStore, actions: Sequence[RetentionAction], by_name: Mapping[str, LakeFile]
) -> list[RetentionAction]:
    """Carry out the ``delete`` actions (files whose every row expired), one swap per tenant
    through the index; returns those done (a tenant's files another process is rewriting at
    the same moment are left for the next run)."""
    done: list[RetentionAction] = []
    deletions: dict[str, list[RetentionAction]] = defaultdict(list)
    for action in actions:
        if action.action == "delete":
            deletions[action.tenant].append(action)
    for tenant, group in sorted(deletions.items()):
        try:
            store.replace("retention", [by_name[a.name] for a in group], tenant, [],
                          sorted_rows=False)
            done.extend(group)
        except ConflictError:
            pass
    return done


def apply_retention(
    store: RegionStore,
    policy: RetentionPolicy,
    today: date,
    *,
    dry_run: bool,
    progress: Callable[[int, int], None] | None = None,
) -> RetentionReport:
    """Enforce ``policy`` on ``store`` as of ``today`` (or, with ``dry_run``, only report).

    Files another process is rewriting at the same moment are left for the next run.

    Raises:
        StorageError: a file cannot be read, written or deleted.
    """
    files = store.index.live_files(store.region)
    actions = plan_retention(files, policy, today)
    if dry_run:
        return RetentionReport(True, tuple(actions))
    by_name = {f.name: f for f in files}
    total = len(actions)
    done = delete_expired_files(store, actions, by_name)
    if progress is not None:
        progress(len(done), total)
    for action in actions:
        if action.action != "rewrite":
            continue
        f = by_name[action.name]
        try:
            table = read_lake_file(store, f)
        except KeyDestroyedError:
            continue  # its vehicle was erased meanwhile; the erasure deletes the file
        keep = pc.invert(pc.is_in(table.column("category").cast(pa.utf8()),
                                  value_set=pa.array(action.categories, pa.utf8())))
        kept = table.filter(keep)
        try:
            store.replace("retention", [f], f.tenant, [slice_of(kept, f)], sorted_rows=f.sorted)
            done.append(action)
        except ConflictError:
            pass
        if progress is not None:
            progress(len(done), total)
    return RetentionReport(False, tuple(done))
