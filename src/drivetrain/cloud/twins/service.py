"""The twins domain's read side: one twin, its delta, fleet queries and convergence summaries.

Writes live beside it: ``desired.py`` (desired state), ``reported.py`` (what vehicles report
and acknowledge), ``ecus.py`` (the ECU inventory). Every function takes an open session and,
where a caller acts for a tenant, that tenant: another tenant's twin answers exactly as a VIN
that does not exist.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

from sqlalchemy import ColumnElement, and_, case, func, select
from sqlalchemy.orm import Session

from drivetrain.cloud.fleet import validate_vin
from drivetrain.cloud.infra import READ_ONLY_INFO
from drivetrain.cloud.twins.desired_personal import REJECTED_IN_REGION, rejection_reasons
from drivetrain.cloud.twins.models import (
    DESIRED,
    TWINS,
    Twin,
    TwinPage,
    TwinRow,
    TwinSummary,
)
from drivetrain.cloud.twins.personal import personal_predicate
from drivetrain.cloud.twins.query import Node, parse_query
from drivetrain.cloud.twins.query_sql import compile_query
from drivetrain.cloud.twins.reconcile import EXPIRED_REASON, build_delta
from drivetrain.cloud.twins.registry import IN_CHUNK, sync_twins, twin_row
from drivetrain.cloud.twins.rows import load_items, load_twin
from drivetrain.core.errors import BadInputError
from drivetrain.core.vss import Catalog, builtin_catalog
from drivetrain.core.wire import DesiredStateDelta

#: Largest page a fleet query returns.
MAX_PAGE: Final = 1000


def get_twin(
    session: Session, vin: str, *, tenant: str, catalog: Catalog | None = None
) -> Twin:
    """The twin of ``vin`` as ``tenant`` may see it.

    Raises:
        BadInputError: ``vin`` is not a VIN.
        NotFoundError: no such vehicle in ``tenant``.
    """
    return load_twin(session, twin_row(session, vin, tenant=tenant), catalog)


def get_delta(
    session: Session, vin: str, *, tenant: str, now: datetime | None = None
) -> DesiredStateDelta:
    """What ``vin`` still has to apply: the pending, unexpired desired values, with the
    desired version they belong to (the body of the desired-state message).

    Raises:
        NotFoundError: no such vehicle in ``tenant``.
    """
    row = twin_row(session, vin, tenant=tenant)
    return build_delta(row.desired_version, load_items(session, vin), now or datetime.now(UTC))


def _status(now: datetime) -> ColumnElement[str]:
    """SQL: an item's status at ``now`` (a pending item past its expiry counts as failed)."""
    desired = DESIRED.c
    status: ColumnElement[str] = case(
        (and_(desired.status == "pending", desired.expires_at <= now), "failed"),
        else_=desired.status,
    )
    return status


def desired_status_counts(
    session: Session, now: datetime | None = None
) -> dict[tuple[str, str], int]:
    """Desired items of every tenant's twins by ``(tenant, status)`` at ``now`` — pending,
    converged or failed (a pending item past its expiry counts as failed): how far the fleet
    has converged, for monitoring. One aggregate query; nothing is written."""
    desired = DESIRED.c
    status = _status(now or datetime.now(UTC))
    query = (
        select(TWINS.c.tenant_id, status, func.count())
        .select_from(DESIRED.join(TWINS, TWINS.c.vin == desired.vin))
        .group_by(TWINS.c.tenant_id, status)
    )
    return {(tenant, name): int(count) for tenant, name, count in session.execute(query)}


def _counts(
    session: Session, vins: list[str], now: datetime
) -> dict[str, dict[str, int]]:
    desired = DESIRED.c
    status = _status(now)
    out: dict[str, dict[str, int]] = {}
    for start in range(0, len(vins), IN_CHUNK):
        query = (
            select(desired.vin, status, func.count())
            .where(desired.vin.in_(vins[start : start + IN_CHUNK]))
            .group_by(desired.vin, status)
        )
        for vin, name, count in session.execute(query):
            out.setdefault(vin, {})[name] = count
    return out


def _selected(
    session: Session, tenant: str, node: Node, among: Iterable[str] | None = None
) -> ColumnElement[bool]:
    condition = and_(TWINS.c.tenant_id == tenant,
                     compile_query(node, personal_predicate(session, tenant)))
    if among is not None:
        condition = and_(condition, TWINS.c.vin.in_(sorted(among)))
    return condition


def query_twins(
    session: Session,
    tenant: str,
    query: str = "",
    *,
    limit: int = 100,
    cursor: str | None = None,
    among: Iterable[str] | None = None,
    now: datetime | None = None,
    catalog: Catalog | None = None,
) -> TwinPage:
    """The twins of ``tenant`` that ``query`` selects, by VIN, ``limit`` at a time.

    ``cursor`` is the ``next_cursor`` of the previous page (None for the first). ``total``
    counts every match, not only this page. ``among`` restricts the matches to those VINs
    (the vehicles a purpose covers, when the query filters on personal data). Twins of
    vehicles registered meanwhile are created first (:func:`sync_twins`), except on a
    read-replica session: there the caller syncs on the primary beforehand.

    Raises:
        QuerySyntaxError: the query does not parse (names the token and column).
        BadInputError: ``limit`` outside [1, MAX_PAGE] or a malformed cursor.
    """
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise BadInputError(f"limit {limit!r} is not valid; expected 1 to {MAX_PAGE}")
    if cursor is not None:
        try:
            validate_vin(cursor)
        except BadInputError:
            raise BadInputError(
                f"cursor {cursor!r} is not valid; pass the next_cursor of the previous page"
            ) from None
    node = parse_query(query, catalog or builtin_catalog())
    now = now or datetime.now(UTC)
    if not session.info.get(READ_ONLY_INFO):
        sync_twins(session, tenant)
    twins = TWINS.c
    condition = _selected(session, tenant, node, among)
    total = int(session.scalar(select(func.count()).select_from(TwinRow).where(condition)) or 0)
    page = select(twins.vin, twins.model, twins.region, twins.owner, twins.desired_version).where(
        condition
    )
    if cursor is not None:
        page = page.where(twins.vin > cursor)
    rows = session.execute(page.order_by(twins.vin).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    counts = _counts(session, [r.vin for r in rows], now)
    summaries = tuple(
        TwinSummary(
            vin=r.vin, model=r.model, region=r.region, owner=r.owner, version=r.desired_version,
            pending=counts.get(r.vin, {}).get("pending", 0),
            converged=counts.get(r.vin, {}).get("converged", 0),
            failed=counts.get(r.vin, {}).get("failed", 0),
        )
        for r in rows
    )
    return TwinPage(summaries, total, rows[-1].vin if more and rows else None)


def matching_vins(
    session: Session, tenant: str, node: Node, vins: Iterable[str]
) -> set[str]:
    """Which of ``vins`` (twins of ``tenant``) the parsed query ``node`` selects."""
    wanted = sorted(set(vins))
    twins = TWINS.c
    condition = _selected(session, tenant, node)
    found: set[str] = set()
    for start in range(0, len(wanted), IN_CHUNK):
        query = select(twins.vin).where(condition, twins.vin.in_(wanted[start : start + IN_CHUNK]))
        found.update(session.scalars(query))
    return found


def select_twins(
    session: Session,
    tenant: str,
    query: str = "",
    *,
    among: Iterable[str] | None = None,
    limit: int | None = None,
    catalog: Catalog | None = None,
) -> list[str]:
    """The VINs of ``tenant``'s twins that ``query`` selects, in VIN order (every twin of a
    registered vehicle, synced from the registry first): what a job or a campaign targets.

    ``among`` restricts the answer to those VINs (another tenant's VIN is simply not in it);
    ``limit`` keeps the first ``limit`` VINs.

    Raises:
        QuerySyntaxError: the query does not parse (names the token and column).
        BadInputError: ``limit`` below 1.
    """
    if limit is not None and (isinstance(limit, bool) or limit < 1):
        raise BadInputError(f"limit {limit!r} is not valid; expected a whole number >= 1")
    node = parse_query(query, catalog or builtin_catalog())
    sync_twins(session, tenant, force=True)
    condition = _selected(session, tenant, node)
    vin = TWINS.c.vin
    if among is None:
        statement = select(vin).where(condition).order_by(vin)
        if limit is not None:
            statement = statement.limit(limit)
        return list(session.scalars(statement))
    wanted = sorted(set(among))
    found: list[str] = []
    for start in range(0, len(wanted), IN_CHUNK):
        chunk = wanted[start : start + IN_CHUNK]
        found.extend(session.scalars(select(vin).where(condition, vin.in_(chunk)).order_by(vin)))
    return found[:limit] if limit is not None else found


@dataclass(frozen=True, slots=True)
class ReconciliationSummary:
    """How the desired items of the twins a query selects stand.

    ``time_to_converge_*`` are over the converged items, in seconds; ``failure_reasons``
    counts failed items by reason, ``pending_reasons`` the pending items that say why they
    wait (e.g. ``not delivered: no vehicle link``).
    """

    twins: int
    pending: int
    converged: int
    failed: int
    time_to_converge_p50_s: float | None
    time_to_converge_max_s: float | None
    failure_reasons: dict[str, int]
    pending_reasons: dict[str, int] = field(default_factory=dict)

    @property
    def items(self) -> int:
        return self.pending + self.converged + self.failed


def reconciliation_summary(
    session: Session,
    tenant: str,
    query: str = "",
    *,
    path: str | None = None,
    among: Iterable[str] | None = None,
    now: datetime | None = None,
    catalog: Catalog | None = None,
) -> ReconciliationSummary:
    """Count the desired items (of ``path`` only, when given) of the twins ``query`` selects
    (among ``among`` only, when given) by status, with time-to-converge p50 and max.

    Raises:
        QuerySyntaxError: the query does not parse.
        UnknownSignalError: ``path`` is not a VSS signal.
    """
    catalog = catalog or builtin_catalog()
    if path is not None:
        catalog.get(path)
    node = parse_query(query, catalog)
    now = now or datetime.now(UTC)
    sync_twins(session, tenant)
    condition = _selected(session, tenant, node, among)
    twins = int(session.scalar(select(func.count()).select_from(TwinRow).where(condition)) or 0)
    desired = DESIRED.c
    status = _status(now)
    selected = select(TWINS.c.vin).where(condition)
    filters: list[ColumnElement[bool]] = [desired.vin.in_(selected)]
    if path is not None:
        filters.append(desired.path == path)
    rows = session.execute(
        select(status, desired.reason, desired.set_at, desired.status_at, desired.vin,
               desired.path).where(*filters)
    ).all()
    counts = {"pending": 0, "converged": 0, "failed": 0}
    reasons: dict[str, int] = {}
    waiting: dict[str, int] = {}
    times: list[float] = []
    in_region: dict[str, list[str]] = {}  # vin -> paths whose reason is in its region store
    for name, reason, set_at, status_at, vin, item_path in rows:
        counts[name] += 1
        if name == "converged" and status_at is not None:
            times.append(max(0.0, (status_at - set_at).total_seconds()))
        elif name == "failed" and reason == REJECTED_IN_REGION:
            in_region.setdefault(vin, []).append(item_path)
        elif name == "failed":
            key = reason or EXPIRED_REASON
            reasons[key] = reasons.get(key, 0) + 1
        elif name == "pending" and reason:
            waiting[reason] = waiting.get(reason, 0) + 1
    # The vehicles' own words, counted as they said them (read from each one's region store).
    said = rejection_reasons(session, in_region) if in_region else {}
    for vin, item_paths in in_region.items():
        for item_path in item_paths:
            key = said.get((vin, item_path), REJECTED_IN_REGION)
            reasons[key] = reasons.get(key, 0) + 1
    return ReconciliationSummary(
        twins=twins,
        pending=counts["pending"],
        converged=counts["converged"],
        failed=counts["failed"],
        time_to_converge_p50_s=statistics.median(times) if times else None,
        time_to_converge_max_s=max(times) if times else None,
        failure_reasons=reasons,
        pending_reasons=waiting,
    )
