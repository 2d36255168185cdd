"""Reconciliation decisions — pure functions over desired items, no I/O.

A desired item is **pending** until the vehicle reports a value equal to it (then
**converged**, with its time to converge) or until it fails: the vehicle rejected the
desired-state message that carried it (its ``Ack``), or it was not converged before it
expired (``expires_at``, by default :data:`DEFAULT_TTL_S` after it was set). The **delta** is
the pending items that have not expired: what the vehicle still has to apply, and exactly what
the desired-state message carries.

Writing a value equal to a pending item, or to a converged item the vehicle still reports,
leaves the item as it is (its time to converge counts from the first write). Writing any other
value, re-writing a failed item, or re-writing a converged item whose reported value has
drifted away since starts a new item — converged at once if the vehicle already reports that
value, else pending and sent again. A converged item is not re-sent on its own when the
vehicle's value drifts (the twin shows it as out of sync); writing it again re-asserts it.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Final

from drivetrain.cloud.twins.models import DesiredItem, Scalar
from drivetrain.cloud.twins.values import to_ns, values_equal
from drivetrain.core.errors import BadInputError
from drivetrain.core.wire import DesiredStateDelta

#: How long a desired value is wanted when the writer names no TTL: 7 days, seconds.
DEFAULT_TTL_S: Final = 7 * 86_400
#: Longest TTL a writer may ask for: 365 days, seconds.
MAX_TTL_S: Final = 365 * 86_400
EXPIRED_REASON: Final = "expired before the vehicle reported the desired value"
#: Why a pending item waits where the process that reconciles has no vehicle link (the same
#: words the commands' deliveries use).
NO_LINK_REASON: Final = "not delivered: no vehicle link"


def check_ttl(ttl_s: int | None) -> int:
    """The TTL in force: ``ttl_s``, or the default when None.

    Raises:
        BadInputError: ``ttl_s`` is not an integer in [1, MAX_TTL_S].
    """
    if ttl_s is None:
        return DEFAULT_TTL_S
    if isinstance(ttl_s, bool) or not isinstance(ttl_s, int) or not 1 <= ttl_s <= MAX_TTL_S:
        raise BadInputError(
            f"ttl_s {ttl_s!r} is not valid; expected whole seconds in [1, {MAX_TTL_S}]"
        )
    return ttl_s


def effective_item(item: DesiredItem, now: datetime) -> DesiredItem:
    """``item`` as it stands at ``now``: a pending item past its expiry reads as failed."""
    if item.status == "pending" and item.expires_at is not None and item.expires_at <= now:
        return replace(item, status="failed", status_at=item.expires_at, reason=EXPIRED_REASON)
    return item


def effective_items(items: Iterable[DesiredItem], now: datetime) -> tuple[DesiredItem, ...]:
    """Every item as it stands at ``now`` (see :func:`effective_item`)."""
    return tuple(effective_item(item, now) for item in items)


def delta_values(items: Iterable[DesiredItem], now: datetime) -> dict[str, Scalar]:
    """The delta at ``now``: path → value of every pending, unexpired item."""
    return {
        item.path: item.value
        for item in items
        if effective_item(item, now).status == "pending"
    }


def build_delta(version: int, items: Iterable[DesiredItem], now: datetime) -> DesiredStateDelta:
    """The desired-state message body for a twin at desired ``version``.

    ``expires_ns`` is the earliest expiry among the values it carries (the vehicle may drop the
    message after that), or None when it carries none that expire.
    """
    live = [item for item in items if effective_item(item, now).status == "pending"]
    expiries = [item.expires_at for item in live if item.expires_at is not None]
    expires_ns = to_ns(min(expiries), where="expiry") if expiries else None
    return DesiredStateDelta(
        version=version, values={item.path: item.value for item in live}, expires_ns=expires_ns
    )


@dataclass(frozen=True, slots=True)
class DesiredPlan:
    """What a desired-state write does to a twin's items."""

    upserts: tuple[DesiredItem, ...]
    deletes: tuple[str, ...]

    @property
    def changes(self) -> bool:
        return bool(self.upserts or self.deletes)


def _same_value(a: Scalar, b: Scalar) -> bool:
    return type(a) is type(b) and a == b


def plan_desired(
    current: Mapping[str, DesiredItem],
    values: Mapping[str, Scalar | None],
    *,
    replace_all: bool,
    reported: Mapping[str, Scalar | None],
    version: int,
    now: datetime,
    actor: str,
    ttl_s: int,
) -> DesiredPlan:
    """The items to write and delete for a desired-state write at new ``version``.

    ``values`` maps paths to (already validated) values; None removes a path. With
    ``replace_all`` every current path not in ``values`` is removed too. ``reported`` holds
    the vehicle's latest values for the paths written (for immediate convergence).
    """
    upserts: list[DesiredItem] = []
    deletes: list[str] = []
    for path, value in values.items():
        existing = current.get(path)
        if value is None:
            if existing is not None:
                deletes.append(path)
            continue
        converged = values_equal(reported.get(path), value)
        if existing is not None and _same_value(existing.value, value) and (
            existing.status == "pending" or (existing.status == "converged" and converged)
        ):
            continue
        upserts.append(
            DesiredItem(
                path=path,
                value=value,
                set_version=version,
                set_at=now,
                set_by=actor,
                expires_at=now + timedelta(seconds=ttl_s),
                status="converged" if converged else "pending",
                status_at=now if converged else None,
            )
        )
    if replace_all:
        deletes.extend(p for p in current if p not in values)
    return DesiredPlan(tuple(upserts), tuple(deletes))


def rejected_paths(items: Iterable[DesiredItem], acked_version: int) -> tuple[str, ...]:
    """Paths a rejection of desired ``acked_version`` fails: pending items set at or before it
    (the rejected message carried every one of them)."""
    return tuple(
        item.path
        for item in items
        if item.status == "pending" and item.set_version <= acked_version
    )


@dataclass(frozen=True, slots=True)
class ItemCounts:
    """Items by status and the time-to-converge statistics of the converged ones (seconds)."""

    pending: int
    converged: int
    failed: int
    time_to_converge_p50_s: float | None
    time_to_converge_max_s: float | None

    @property
    def total(self) -> int:
        return self.pending + self.converged + self.failed


def count_items(items: Iterable[DesiredItem], now: datetime) -> ItemCounts:
    """Count ``items`` by their status at ``now`` with time-to-converge p50 and max."""
    counts = {"pending": 0, "converged": 0, "failed": 0}
    times: list[float] = []
    for item in effective_items(items, now):
        counts[item.status] += 1
        if item.time_to_converge_s is not None:
            times.append(item.time_to_converge_s)
    return ItemCounts(
        pending=counts["pending"],
        converged=counts["converged"],
        failed=counts["failed"],
        time_to_converge_p50_s=statistics.median(times) if times else None,
        time_to_converge_max_s=max(times) if times else None,
    )
