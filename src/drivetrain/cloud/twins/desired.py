"""Writing desired state: one twin with optimistic concurrency, or every twin a query selects.

Every write bumps the twin's desired version (its ETag) and flags the twin for the
reconciler, which publishes the new delta to the vehicle. A write against a stale version is
refused with :class:`VersionConflictError` naming both versions. The version is bumped with a
compare-and-set ``UPDATE ... WHERE desired_version = :given``, so of two concurrent writers
with the same version exactly one wins, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, exists, literal, or_, select, update
from sqlalchemy.orm import Session

from drivetrain.cloud.infra import record_audit
from drivetrain.cloud.twins.desired_personal import (
    KEPT_IN_REGION,
    delete_desired_values,
    desired_values,
    keep_reasons,
    write_desired_values,
)
from drivetrain.cloud.twins.feed import TwinChange, queue_changes
from drivetrain.cloud.twins.models import (
    DESIRED,
    REPORTED,
    TWINS,
    DesiredItem,
    DesiredRow,
    Scalar,
    Twin,
    TwinRow,
)
from drivetrain.cloud.twins.personal import is_personal_path, personal_predicate
from drivetrain.cloud.twins.query import parse_query
from drivetrain.cloud.twins.query_sql import compile_query
from drivetrain.cloud.twins.reconcile import EXPIRED_REASON, check_ttl, plan_desired
from drivetrain.cloud.twins.registry import IN_CHUNK, dialect_insert, sync_twins, twin_row
from drivetrain.cloud.twins.reported import converge_pending, reported_values, value_matches
from drivetrain.cloud.twins.rows import load_items, load_twin
from drivetrain.cloud.twins.values import (
    EncodedValue,
    as_mapping,
    decode_value,
    encode_value,
    render_reported,
    validate_desired,
    values_equal,
)
from drivetrain.core.entitlement_twin import is_entitlement_path
from drivetrain.core.errors import BadInputError, VersionConflictError
from drivetrain.core.vss import Catalog, builtin_catalog

#: Most paths one write may set.
MAX_VALUES_PER_WRITE = 100


def _validated(
    catalog: Catalog, values: Mapping[str, object], *, allow_remove: bool
) -> dict[str, Scalar | None]:
    values = as_mapping(values, where="desired values")
    if len(values) > MAX_VALUES_PER_WRITE:
        raise BadInputError(
            f"desired values: {len(values)} paths in one write; at most {MAX_VALUES_PER_WRITE}"
        )
    out: dict[str, Scalar | None] = {}
    for path, value in values.items():
        if value is None and allow_remove:
            catalog.get(path)  # removing still names a real signal
            out[path] = None
        else:
            out[path] = validate_desired(catalog, path, value)
    return out


def _bump_version(session: Session, vin: str, if_match: int | None, now: datetime) -> int:
    condition = [TwinRow.vin == vin]
    if if_match is not None:
        condition.append(TwinRow.desired_version == if_match)
    statement = (
        update(TWINS)
        .where(*condition)
        .values(
            desired_version=TWINS.c.desired_version + 1,
            desired_updated_at=now,
            send_pending=True,
        )
        .returning(TWINS.c.desired_version)
    )
    version = session.connection().execute(statement).scalar()
    if version is None:
        current = session.connection().execute(
            select(TWINS.c.desired_version).where(TWINS.c.vin == vin)
        ).scalar()
        raise VersionConflictError(
            f"desired state of {vin} is at version {current}, not {if_match}: it changed since "
            f"you read it; read it again (GET its twin) and retry with If-Match: \"{current}\"",
            current=current,
            given=if_match,
        )
    return int(version)


def _row_values(vin: str, item: DesiredItem) -> dict[str, Any]:
    encoded = encode_value(item.value, where=f"desired {vin} {item.path!r}")
    return {
        "vin": vin, "path": item.path, "kind": encoded.kind, "num": encoded.num,
        "text": encoded.text, "set_version": item.set_version, "set_at": item.set_at,
        "set_by": item.set_by, "expires_at": item.expires_at, "status": item.status,
        "status_at": item.status_at, "reason": item.reason,
    }


def _upsert_items(session: Session, vin: str, items: tuple[DesiredItem, ...]) -> None:
    rows = [_row_values(vin, item) for item in items]
    # A personal path's value goes to the region store; its item keeps num and text empty.
    write_desired_values(session, [
        (vin, row["path"], row["kind"], row["num"], row["text"])
        for row in rows if is_personal_path(row["path"])
    ])
    # So does the vehicle's reason for rejecting it; the item says it is kept there.
    reasons = keep_reasons(session, vin, {row["path"]: row["reason"] for row in rows})
    for row in rows:
        row["reason"] = reasons[row["path"]]
        if is_personal_path(row["path"]):
            row.update(num=None, text=None)
    statement = dialect_insert(session, DESIRED)
    columns = ("kind", "num", "text", "set_version", "set_at", "set_by", "expires_at",
               "status", "status_at", "reason")
    statement = statement.on_conflict_do_update(
        index_elements=["vin", "path"],
        set_={name: getattr(statement.excluded, name) for name in columns},
    )
    session.connection().execute(statement, rows)


def audited_values(values: Mapping[str, Scalar | None]) -> dict[str, object]:
    """``values`` as an audit entry records them: a personal path's value is kept only in
    the vehicle's region store, so the entry (in the state database) names the path alone."""
    return {p: KEPT_IN_REGION if is_personal_path(p) and v is not None else v
            for p, v in values.items()}


def set_desired(
    session: Session,
    vin: str,
    values: Mapping[str, object],
    *,
    tenant: str,
    if_match: int | None,
    actor: str,
    replace: bool = False,
    ttl_s: int | None = None,
    now: datetime | None = None,
    catalog: Catalog | None = None,
    request_id: str | None = None,
) -> Twin:
    """Change ``vin``'s desired state and return the twin at its new version.

    ``values`` maps VSS actuator paths to values; a None value removes the path. With
    ``replace`` the document becomes exactly ``values`` (other paths are removed, except the
    entitlement tokens ``set_entitlements`` keeps there). ``if_match``
    is the version the change is based on (None: whatever is current). ``ttl_s`` is how long
    the new values are wanted (default 7 days). Records ``twins.desired.set`` in the audit log.

    Raises:
        NotFoundError: no such vehicle in ``tenant``.
        VersionConflictError: ``if_match`` is not the current version (carries both).
        BadInputError: a path that is not a scalar actuator, a value that does not fit it, too
            many values, or a bad TTL — nothing is changed.
    """
    catalog = catalog or builtin_catalog()
    now = now or datetime.now(UTC)
    checked = _validated(catalog, values, allow_remove=True)
    ttl = check_ttl(ttl_s)
    row = twin_row(session, vin, tenant=tenant)
    version = _bump_version(session, vin, if_match, now)
    # Entitlement tokens are set by set_entitlements alone: a replace leaves them be.
    current = {item.path: item for item in load_items(session, vin)
               if not is_entitlement_path(item.path)}
    reported = {
        path: render_reported(catalog, path, r.kind, r.num, r.text)
        for path, r in reported_values(session, vin, checked).items()
    }
    plan = plan_desired(
        current, checked, replace_all=replace, reported=reported, version=version, now=now,
        actor=actor, ttl_s=ttl,
    )
    if plan.upserts:
        _upsert_items(session, vin, plan.upserts)
    if plan.deletes:
        session.execute(
            delete(DesiredRow).where(DesiredRow.vin == vin, DesiredRow.path.in_(plan.deletes))
        )
        delete_desired_values(session, vin, plan.deletes)
    record_audit(
        session, tenant=row.tenant_id, actor=actor, action="twins.desired.set",
        target=f"vehicle:{vin}",
        details={
            "version": version, "replace": replace, "ttl_s": ttl,
            "values": audited_values(checked),
        },
        request_id=request_id, now=now,
    )
    session.expire(row)
    changed = tuple(sorted({i.path for i in plan.upserts} | set(plan.deletes)))
    changes = [TwinChange("desired", vin, row.tenant_id, now, changed, version=version)]
    converged = tuple(i.path for i in plan.upserts if i.status == "converged")
    if converged:
        changes.append(TwinChange("converged", vin, row.tenant_id, now, converged, version=version))
    queue_changes(session, changes)
    return load_twin(session, row, catalog)


@dataclass(frozen=True, slots=True)
class BulkDesiredResult:
    """The outcome of a desired-state write by query."""

    matched: int
    values: Mapping[str, Scalar]
    set_at: datetime


def set_desired_by_query(
    session: Session,
    query: str,
    values: Mapping[str, object],
    *,
    tenant: str,
    actor: str,
    ttl_s: int | None = None,
    now: datetime | None = None,
    catalog: Catalog | None = None,
    request_id: str | None = None,
) -> BulkDesiredResult:
    """Set ``values`` on every twin of ``tenant`` that ``query`` selects (set-based SQL).

    Each selected twin gets a new desired version and the values as new items (an item that
    already holds the same value is kept as a single write keeps it, see ``reconcile``); items
    the vehicle already reports are converged at once. One ``twins.desired.set_by_query`` audit
    entry records the query, the values and how many twins matched.

    Raises:
        QuerySyntaxError: the query does not parse.
        BadInputError: a path that is not a scalar actuator, a value that does not fit it,
            no values, or a bad TTL — nothing is changed.
    """
    catalog = catalog or builtin_catalog()
    now = now or datetime.now(UTC)
    checked = _validated(catalog, values, allow_remove=False)
    if not checked:
        raise BadInputError("desired values: none given; expected at least one path")
    ttl = check_ttl(ttl_s)
    condition = compile_query(parse_query(query, catalog), personal_predicate(session, tenant))
    sync_twins(session, tenant, force=True)  # a write must reach every registered vehicle
    twins = TWINS
    selected = [
        vin for (vin,) in session.execute(
            select(twins.c.vin).where(twins.c.tenant_id == tenant, condition).order_by(twins.c.vin)
        )
    ]
    versions: dict[str, int] = {}
    for start in range(0, len(selected), IN_CHUNK):
        chunk = selected[start : start + IN_CHUNK]
        bumped = session.connection().execute(
            update(twins).where(twins.c.vin.in_(chunk)).values(
                desired_version=twins.c.desired_version + 1, desired_updated_at=now,
                send_pending=True,
            ).returning(twins.c.vin, twins.c.desired_version)
        )
        versions.update({vin: int(version) for vin, version in bumped})
        for path, value in checked.items():
            assert value is not None
            _insert_selected(session, chunk, path, value, actor, now, ttl)
    converged = converge_pending(session, selected, now, paths=list(checked))
    record_audit(
        session, tenant=tenant, actor=actor, action="twins.desired.set_by_query",
        target=f"query:{query[:200]}",
        details={"query": query, "matched": len(selected), "ttl_s": ttl,
                 "values": audited_values(checked)},
        request_id=request_id, now=now,
    )
    changes = [
        TwinChange("desired", vin, tenant, now, tuple(sorted(checked)), version=versions.get(vin))
        for vin in selected
    ]
    by_vin: dict[str, list[str]] = {}
    for vin, path, _ in converged:
        by_vin.setdefault(vin, []).append(path)
    changes += [TwinChange("converged", v, tenant, now, tuple(p)) for v, p in by_vin.items()]
    queue_changes(session, changes)
    return BulkDesiredResult(
        matched=len(selected), values={p: v for p, v in checked.items() if v is not None},
        set_at=now,
    )


def _insert_selected(
    session: Session, vins: list[str], path: str, value: Scalar, actor: str, now: datetime,
    ttl_s: int,
) -> None:
    """INSERT ... SELECT one desired item per twin of ``vins`` at the twin's new version."""
    encoded = encode_value(value, where=f"desired {path!r}")
    personal = is_personal_path(path)
    if personal:
        return _insert_selected_personal(session, vins, path, encoded, actor, now, ttl_s)
    twins = TWINS
    source = select(
        twins.c.vin, literal(path), literal(encoded.kind), literal(encoded.num),
        literal(encoded.text), twins.c.desired_version, literal(now, type_=DesiredRow.set_at.type),
        literal(actor), literal(now + timedelta(seconds=ttl_s), type_=DesiredRow.set_at.type),
        literal("pending"), literal(None, type_=DesiredRow.set_at.type), literal(None),
    ).where(twins.c.vin.in_(vins))
    statement = dialect_insert(session, DESIRED).from_select(
        ["vin", "path", "kind", "num", "text", "set_version", "set_at", "set_by", "expires_at",
         "status", "status_at", "reason"],
        source,
    )
    existing = DESIRED.c
    excluded = statement.excluded
    reported = REPORTED.c
    still_reported = exists().where(
        reported.vin == existing.vin, reported.path == existing.path,
        value_matches(reported, existing),
    )
    changed_value = or_(
        existing.status == "failed",
        existing.kind != excluded.kind,
        existing.num.is_distinct_from(excluded.num),
        existing.text.is_distinct_from(excluded.text),
        and_(existing.status == "converged", ~still_reported),  # drifted: re-assert it
    )
    statement = statement.on_conflict_do_update(
        index_elements=["vin", "path"],
        set_={name: getattr(excluded, name) for name in (
            "kind", "num", "text", "set_version", "set_at", "set_by", "expires_at", "status",
            "status_at", "reason",
        )},
        where=changed_value,
    )
    session.connection().execute(statement)


def _insert_selected_personal(
    session: Session, vins: list[str], path: str, encoded: EncodedValue, actor: str,
    now: datetime, ttl_s: int,
) -> None:
    """As :func:`_insert_selected` for a personal ``path``: the value goes to each vehicle's
    region store, the item (num and text empty) to ``twin_desired``. Which items keep their
    state is decided here, as SQL cannot compare with the stores: an item already asking for
    this value, not failed, is kept unless it converged and the vehicle no longer reports it
    (drifted); reported values are compared by ``converge_pending`` afterwards."""
    wanted = decode_value(encoded.kind, encoded.num, encoded.text)
    current = desired_values(session, vins, [path])
    items: dict[str, str] = {vin: status for vin, status in session.execute(
        select(DESIRED.c.vin, DESIRED.c.status).where(DESIRED.c.vin.in_(vins), DESIRED.c.path == path)
    )}
    reported = {
        vin: decode_value(r.kind, r.num, r.text)
        for vin in vins if items.get(vin) == "converged"
        for r in reported_values(session, vin, [path]).values()
    }
    changed: list[str] = []
    for vin in vins:
        stored = current.get((vin, path))
        same = stored is not None and wanted is not None and values_equal(
            decode_value(*stored), wanted)
        status = items.get(vin)
        drifted = status == "converged" and not (
            vin in reported and wanted is not None and values_equal(reported[vin], wanted))
        if status is None or status == "failed" or not same or drifted:
            changed.append(vin)
    if not changed:
        return
    write_desired_values(session, [
        (vin, path, encoded.kind, encoded.num, encoded.text) for vin in changed
    ])
    versions: dict[str, int] = {vin: version for vin, version in session.execute(
        select(TWINS.c.vin, TWINS.c.desired_version).where(TWINS.c.vin.in_(changed))
    )}
    statement = dialect_insert(session, DESIRED)
    statement = statement.on_conflict_do_update(
        index_elements=["vin", "path"],
        set_={name: getattr(statement.excluded, name) for name in (
            "kind", "num", "text", "set_version", "set_at", "set_by", "expires_at", "status",
            "status_at", "reason",
        )},
    )
    session.connection().execute(statement, [
        {"vin": vin, "path": path, "kind": encoded.kind, "num": None, "text": None,
         "set_version": versions[vin], "set_at": now, "set_by": actor,
         "expires_at": now + timedelta(seconds=ttl_s), "status": "pending", "status_at": None,
         "reason": None}
        for vin in changed
    ])


def expire_due(session: Session, now: datetime | None = None) -> list[tuple[str, str, str]]:
    """Fail every pending item whose expiry has passed; flag its twin for re-sending (so the
    published delta stops carrying it). Returns (vin, tenant, path) of each."""
    now = now or datetime.now(UTC)
    desired = DESIRED.c
    expired = session.connection().execute(
        update(DESIRED)
        .where(desired.status == "pending", desired.expires_at <= now)
        .values(status="failed", status_at=desired.expires_at, reason=EXPIRED_REASON)
        .returning(desired.vin, desired.path)
    ).all()
    if not expired:
        return []
    vins = sorted({vin for vin, _ in expired})
    twins = TWINS
    tenants: dict[str, str] = {}
    for start in range(0, len(vins), IN_CHUNK):
        chunk = vins[start : start + IN_CHUNK]
        session.connection().execute(
            update(twins).where(twins.c.vin.in_(chunk)).values(send_pending=True)
        )
        tenants.update(session.execute(
            select(twins.c.vin, twins.c.tenant_id).where(twins.c.vin.in_(chunk))
        ).all())
    by_vin: dict[str, list[str]] = {}
    for vin, path in expired:
        by_vin.setdefault(vin, []).append(path)
    queue_changes(session, [
        TwinChange("failed", vin, tenants[vin], now, tuple(sorted(paths)),
                   detail={"reason": EXPIRED_REASON})
        for vin, paths in by_vin.items()
    ])
    return [(vin, tenants[vin], path) for vin, path in expired]
