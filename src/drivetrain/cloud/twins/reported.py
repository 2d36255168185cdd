"""What vehicles report: latest values (bulk, newer measurement wins) and desired-state acks.

:func:`apply_reported` is on the ingestion hot path: it writes a whole batch with
``INSERT ... ON CONFLICT (vin, path) DO UPDATE ... WHERE excluded.ts_ns > ts_ns RETURNING``,
then marks converged, in one ``UPDATE``, every pending desired item of the batch's vehicles
that the stored values now satisfy. When no subscriber wants reported changes (the usual
case), only the rows of vehicles with a pending item are named (``RETURNING``), for that
step; the others are upserted apart and counted, not named. No ORM objects are built per value;
ingestion hands its values over already encoded (:func:`apply_stored_rows`). The rows reach the
database the way each engine takes them fastest:

- SQLite: multi-row ``VALUES`` lists of :data:`UPSERT_CHUNK` rows (sqlite3 binds natively).
- PostgreSQL (psycopg 3): the whole batch in one statement, one array per column as a
  binary parameter (``INSERT ... SELECT * FROM unnest(...)``), sorted by (vin, path) so that
  concurrent workers lock rows in the same order and cannot deadlock on each other. A
  multi-row ``VALUES`` list would cost psycopg more client time parsing 35,000 placeholders
  than the server spends on the rows. Other drivers take the ``VALUES`` lists.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import (
    ColumnElement,
    String,
    and_,
    bindparam,
    case,
    cast,
    exists,
    func,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from drivetrain.cloud.fleet import validate_vin
from drivetrain.cloud.twins.desired_personal import keep_reasons
from drivetrain.cloud.twins.feed import TwinChange, queue_changes, wants
from drivetrain.cloud.twins.models import (
    DESIRED,
    PATH_LENGTH,
    REPORTED,
    DesiredRow,
    PersonalReportedRow,
    ReportedRow,
)
from drivetrain.cloud.twins.personal import (
    converge_personal,
    count_personal,
    is_personal_path,
    personal_values,
    split_personal,
    vehicle_regions,
    write_personal,
)
from drivetrain.cloud.twins.reconcile import rejected_paths
from drivetrain.cloud.twins.registry import IN_CHUNK, ensure_homes, twin_row
from drivetrain.cloud.twins.rows import load_items
from drivetrain.cloud.twins.upsert import Row, upsert_count, upsert_rows
from drivetrain.cloud.twins.values import FLOAT_TOLERANCE, encode_value, to_ns
from drivetrain.core.errors import BadInputError
from drivetrain.core.wire import Ack

_PATH: Final = re.compile(r"[A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*")

#: One reported value: (value, when the vehicle measured it — an aware datetime).
Report = tuple[Any, datetime]


def _rows(reports: Mapping[str, Mapping[str, Report]], now_ns: int) -> list[Row]:
    """The stored rows of a batch, every value checked first (pure; raises BadInputError)."""
    rows: list[Row] = []
    known_paths: set[str] = set()
    ts_ns: dict[datetime, int] = {}  # a batch usually shares a few timestamps
    for vin, paths in reports.items():
        validate_vin(vin)
        if not isinstance(paths, Mapping):
            raise BadInputError(f"reports of {vin}: expected a mapping of VSS paths")
        for path, report in paths.items():
            if path not in known_paths:
                if not isinstance(path, str) or len(path) > PATH_LENGTH or not _PATH.fullmatch(path):
                    raise BadInputError(
                        f"reported {vin} {path!r}: not a VSS path of at most {PATH_LENGTH} characters"
                    )
                known_paths.add(path)
            if type(report) is not tuple or len(report) != 2:
                raise BadInputError(f"reported {vin} {path!r}: expected a (value, measured datetime) pair")
            value, ts = report
            kind = type(value)
            # Exact types first (the hot path); anything else through the checked encoder.
            if kind is float and math.isfinite(value):
                stored: tuple[str, float | None, str | None] = ("f", value, None)
            elif kind is int:
                stored = ("i", float(value), None)
            elif kind is str:
                stored = ("s", None, value)
            elif kind is bool:
                stored = ("b", 1.0 if value else 0.0, None)
            else:
                encoded = encode_value(value, where=f"reported {vin} {path!r}")
                stored = (encoded.kind, encoded.num, encoded.text)
            measured = ts_ns.get(ts) if type(ts) is datetime else None
            if measured is None:
                measured = ts_ns[ts] = to_ns(ts, where=f"reported {vin} {path!r}")
            rows.append((vin, path, *stored, measured, now_ns))
    return rows


def value_matches(reported: Any, desired: Any) -> Any:
    """SQL: the reported row's value satisfies the desired row's (numbers within the relative
    tolerance of ``values.values_equal``, strings exactly)."""
    scale = case((func.abs(desired.num) > 1.0, func.abs(desired.num)), else_=1.0)
    return or_(
        and_(desired.kind == "s", reported.kind == "s", reported.text == desired.text),
        and_(
            desired.kind != "s",
            reported.kind != "s",
            func.abs(reported.num - desired.num) <= FLOAT_TOLERANCE * scale,
        ),
    )


def _with_pending(
    session: Session, vins: Sequence[str], conditions: list[ColumnElement[bool]]
) -> list[str]:
    """Which of ``vins`` have a desired item that meets ``conditions`` (``conditions[1]``
    is the VIN list), sorted. On PostgreSQL one index probe per VIN into its own hash
    partition (a LATERAL subquery, as ``registry.twin_homes`` does): ``vin IN (...)`` of a
    whole batch reaches every partition of ``twin_desired`` with the whole list."""
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        return sorted(set(connection.execute(select(DESIRED.c.vin).where(*conditions)).scalars()))
    batch = (
        func.unnest(cast(bindparam("vins", list(vins), type_=ARRAY(String)), ARRAY(String)))
        .table_valued("vin")
        .render_derived(name="v")
    )
    others = [c for i, c in enumerate(conditions) if i != 1]
    found = select(DESIRED.c.vin).where(DESIRED.c.vin == batch.c.vin, *others).limit(1).lateral("found")
    query = select(found.c.vin).select_from(batch).join(found, true())
    return sorted(set(connection.execute(query).scalars()))


def _pending_vins(session: Session, vins: Sequence[str], now: datetime) -> set[str]:
    """Which of ``vins`` have a pending, unexpired desired item."""
    desired = DESIRED.c
    unexpired = or_(desired.expires_at.is_(None), desired.expires_at > now)
    found: set[str] = set()
    for start in range(0, len(vins), IN_CHUNK):
        chunk = vins[start : start + IN_CHUNK]
        conditions = [desired.status == "pending", desired.vin.in_(chunk), unexpired]
        found.update(_with_pending(session, chunk, conditions))
    return found


def converge_pending(
    session: Session, vins: Sequence[str], now: datetime, paths: Sequence[str] | None = None
) -> list[tuple[str, str, datetime]]:
    """Mark converged every pending, unexpired desired item of ``vins`` (optionally only
    ``paths``) whose reported value now matches; returns (vin, path, set_at) of each."""
    desired = DESIRED.c
    reported = REPORTED.c
    unexpired = or_(desired.expires_at.is_(None), desired.expires_at > now)
    converged: list[tuple[str, str, datetime]] = []
    for start in range(0, len(vins), IN_CHUNK):
        # First which of the VINs have a pending item at all (few, mostly none: one cheap
        # query), then the update for those only. The VIN list is repeated inside EXISTS so
        # that PostgreSQL prunes twin_reported's hash partitions there too: without it the
        # planner hashed every partition of twin_reported (seconds per batch at 100,000 twins).
        conditions = [desired.status == "pending", desired.vin.in_(vins[start : start + IN_CHUNK]),
                      unexpired]  # fmt: skip
        if paths is not None:
            conditions.append(desired.path.in_(paths))
        pending = _with_pending(session, vins[start : start + IN_CHUNK], conditions)
        if not pending:
            continue
        # Items on personal paths: their values are in the region stores (personal.py).
        converged += converge_personal(session, pending, now, paths)
        matched = exists().where(
            reported.vin == desired.vin, reported.vin.in_(pending), reported.path == desired.path,
            value_matches(reported, desired),
        )  # fmt: skip
        conditions[1] = desired.vin.in_(pending)
        statement = (
            update(DESIRED)
            .where(*conditions, matched)
            .values(status="converged", status_at=now, reason=None)
            .returning(desired.vin, desired.path, desired.set_at)
        )
        converged.extend(tuple(row) for row in session.connection().execute(statement))
    return converged


def apply_reported(
    session: Session,
    reports: Mapping[str, Mapping[str, Report]],
    *,
    now: datetime | None = None,
) -> int:
    """Store the latest reported values: VIN → VSS path → (value, measured at).

    A value replaces the stored one only if it was measured later (newer measurement wins,
    so a late, buffered batch never overwrites fresher state). Values are bool, int, float or
    str. Pending desired items that the new values satisfy become converged. Twins are
    created for registered vehicles seen for the first time.

    Returns:
        How many stored values changed (values older than the stored ones change nothing).

    Raises:
        BadInputError: a malformed VIN or path, a value that is not a finite scalar, or a
            naive timestamp — checked for the whole batch before anything is written.
        NotFoundError: a VIN that is not registered (nothing is written).
    """
    now = now or datetime.now(UTC)
    rows = _rows(reports, to_ns(now, where="now"))
    return _store(session, rows, reports.keys(), now)


def apply_stored_rows(session: Session, rows: list[Row], *, now: datetime) -> int:
    """:func:`apply_reported` for values already in stored form (ingestion builds them from
    its columns): (vin, path, kind, num, text, measured ns, stored ns) per row, at most one
    row per (vin, path), ``stored ns`` being ``now``'s. The VINs and the distinct paths are
    checked; the values are the caller's to have encoded as :func:`encode_value` does.

    Returns how many stored values changed. Raises as :func:`apply_reported`.
    """
    for path in {row[1] for row in rows}:
        if not isinstance(path, str) or len(path) > PATH_LENGTH or not _PATH.fullmatch(path):
            raise BadInputError(
                f"reported {path!r}: not a VSS path of at most {PATH_LENGTH} characters"
            )
    return _store(session, rows, {row[0] for row in rows}, now)


def _store(session: Session, rows: list[Row], vins: Iterable[str], now: datetime) -> int:
    """Upsert checked ``rows`` of ``vins`` (twins created as needed), converge, queue."""
    if not rows:
        return 0
    homes = ensure_homes(session, vins)
    tenants = {vin: tenant for vin, (tenant, _region) in homes.items()}
    regions = {vin: region for vin, (_t, region) in homes.items()}
    counted = 0
    if not wants(session, "reported"):
        # Nobody is told which values changed: only the rows of twins with a pending item
        # (none in most batches, a tenth of them in a fleet mid-rollout) are named, for the
        # convergence below; the others are counted (no RETURNING: a result row per value).
        pending = _pending_vins(session, sorted(homes), now)
        quiet = [row for row in rows if row[0] not in pending] if pending else rows
        rows = [row for row in rows if row[0] in pending] if pending else []
        shared, personal = split_personal(quiet)
        counted = (upsert_count(session, shared) if shared else 0) + (
            count_personal(session, personal, regions) if personal else 0
        )
        if not rows:
            return counted
    shared, personal = split_personal(rows)
    changed = upsert_rows(session, shared) if shared else []
    changed_personal = write_personal(session, personal, regions) if personal else []
    if not changed and not changed_personal:
        return counted
    changed += changed_personal
    converged = converge_pending(session, sorted({vin for vin, _ in changed}), now)
    changes: list[TwinChange] = []
    if wants(session, "reported"):
        by_vin: dict[str, list[str]] = {}
        for vin, path in changed:
            by_vin.setdefault(vin, []).append(path)
        changes += [
            TwinChange("reported", vin, tenants[vin], now, tuple(paths))
            for vin, paths in by_vin.items()
        ]
    changes += _status_changes("converged", converged, tenants, now)
    if changes:
        queue_changes(session, changes)
    return counted + len(changed)


def _status_changes(
    kind: Any, items: Iterable[tuple[str, str, datetime]], tenants: Mapping[str, str],
    now: datetime, detail: Mapping[str, Any] | None = None,
) -> list[TwinChange]:
    by_vin: dict[str, list[str]] = {}
    for vin, path, _set_at in items:
        by_vin.setdefault(vin, []).append(path)
    return [
        TwinChange(kind, vin, tenants[vin], now, tuple(sorted(paths)), detail=detail or {})
        for vin, paths in by_vin.items()
    ]


def record_acks(
    session: Session, vin: str, acks: Sequence[Ack], *, now: datetime | None = None
) -> None:
    """Record the vehicle's acknowledgements of desired-state messages.

    ``applied`` records the highest version the vehicle applied. ``rejected`` fails every
    pending item the rejected message carried (set at or before its version), with the
    vehicle's detail as the reason. Acks of other message kinds are not the twin's business
    and are refused, as is an ack naming a version the twin never had.

    Raises:
        BadInputError: an ack whose ``ref_kind`` is not ``desired_state``, without a version,
            or with a version above the twin's current one (all checked before any change).
        NotFoundError: the vehicle is not registered.
    """
    now = now or datetime.now(UTC)
    row = twin_row(session, vin, tenant=None)
    for ack in acks:
        if ack.ref_kind != "desired_state":
            raise BadInputError(
                f"ack {ack.ref} of {vin}: ref_kind is {ack.ref_kind!r}; expected 'desired_state'"
            )
        if ack.version is None or not 0 <= ack.version <= row.desired_version:
            raise BadInputError(
                f"ack {ack.ref} of {vin}: version {ack.version!r} is not a desired version of "
                f"this twin (current {row.desired_version})"
            )
    changes: list[TwinChange] = []
    for ack in acks:
        if ack.status == "applied":
            if row.acked_version is None or ack.version > row.acked_version:  # type: ignore[operator]
                row.acked_version, row.acked_at = ack.version, now
            changes.append(TwinChange("ack", vin, row.tenant_id, now, version=ack.version))
            continue
        reason = f"rejected by the vehicle: {ack.detail or 'no reason given'}"
        failed = _reject(session, vin, ack, now, reason)
        changes.append(TwinChange(
            "failed", vin, row.tenant_id, now, failed, version=ack.version,
            detail={"reason": reason},
        ))
    session.flush()
    queue_changes(session, changes)


def _reject(
    session: Session, vin: str, ack: Ack, now: datetime, reason: str
) -> tuple[str, ...]:
    """Fail the pending items the rejected message carried, with ``reason`` (stored up to
    2,000 characters); returns their paths."""
    assert ack.version is not None
    paths = rejected_paths(load_items(session, vin), ack.version)
    # On a personal path the vehicle's words go to its region store (keep_reasons).
    kept = keep_reasons(session, vin, dict.fromkeys(paths, reason[:2000]))
    for said in sorted({r for r in kept.values() if r is not None}):
        chosen = [p for p in paths if kept[p] == said]
        session.execute(
            update(DesiredRow)
            .where(DesiredRow.vin == vin, DesiredRow.path.in_(chosen),
                   DesiredRow.status == "pending")
            .values(status="failed", status_at=now, reason=said)
        )
    return paths


def reported_values(
    session: Session, vin: str, paths: Iterable[str] | None = None
) -> dict[str, ReportedRow | PersonalReportedRow]:
    """Stored reported rows of ``vin`` by path (only ``paths`` when given), the personal ones
    from the vehicle's region store."""
    wanted = None if paths is None else list(paths)
    query = select(ReportedRow).where(ReportedRow.vin == vin)
    if wanted is not None:
        query = query.where(ReportedRow.path.in_(wanted))
    found: dict[str, ReportedRow | PersonalReportedRow] = {
        row.path: row for row in session.scalars(query)}
    personal = None if wanted is None else [p for p in wanted if is_personal_path(p)]
    if personal is None or personal:
        region = vehicle_regions(session, [vin]).get(vin)
        if region is not None:
            found.update({row.path: row for row in personal_values(session, vin, region, personal)})
    return found
