"""Entitlements in the twin: signed tokens as desired state, the car's features as reported.

The paths are ``drivetrain.core.entitlement_twin``'s. :func:`set_entitlements` is the only way
a token enters a twin's desired state (the general desired-state write takes VSS actuators
only): each token becomes the desired item ``Entitlement.<feature>.Token`` at a new desired
version, so the reconciler publishes it in the vehicle's signed, retained delta — a
revocation reaches a car that was offline the moment it reconnects. The item converges when
the car reports holding that very token (its ``entitlements.changed`` event, stored as
reported values by ingestion), which is what "confirmed by the car" means.

The twin only carries tokens: it checks that each is shaped like one, never that it grants
anything — the vehicle verifies the signature, VIN, feature and seq itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from drivetrain.cloud.infra import record_audit
from drivetrain.cloud.twins.desired import _bump_version, _upsert_items
from drivetrain.cloud.twins.feed import TwinChange, queue_changes
from drivetrain.cloud.twins.models import DesiredItem, DesiredRow, ItemStatus, ReportedRow
from drivetrain.cloud.twins.reconcile import MAX_TTL_S, effective_items, plan_desired
from drivetrain.cloud.twins.registry import IN_CHUNK, twin_row
from drivetrain.cloud.twins.reported import reported_values
from drivetrain.cloud.twins.rows import load_items
from drivetrain.cloud.twins.values import decode_value
from drivetrain.core.entitlement import FEATURE_CODE, token_key_id
from drivetrain.core.entitlement_twin import PREFIX, feature_of_token_path, token_path
from drivetrain.core.errors import BadInputError, WireFormatError


@dataclass(frozen=True, slots=True)
class DesiredToken:
    """A token the platform wants a vehicle to hold, and until when it is worth delivering
    (its expiry plus grace for a grant; the item then fails if never confirmed)."""

    feature: str
    token: str
    deliver_until: datetime


@dataclass(frozen=True, slots=True)
class TwinEntitlement:
    """One feature in a twin: the desired token and its reconciliation, and what the car
    reports (None where it reported nothing for the feature)."""

    feature: str
    desired_token: str | None
    status: ItemStatus | None
    reason: str | None
    confirmed_at: datetime | None
    reported_token: str | None
    reported_state: str | None
    reported_seq: int | None
    reported_expires_s: int | None
    #: When the car measured its latest report of the feature (ns since the epoch, UTC).
    reported_ts_ns: int | None = None

    @property
    def confirmed(self) -> bool:
        """True when the car reports holding the desired token."""
        return self.status == "converged"


def _checked(tokens: Sequence[DesiredToken]) -> None:
    features = [t.feature for t in tokens]
    for t in tokens:
        if not isinstance(t.feature, str) or not FEATURE_CODE.fullmatch(t.feature):
            raise BadInputError(f"entitlement feature {t.feature!r} is not a feature code")
        try:
            token_key_id(t.token)
        except WireFormatError as e:
            raise BadInputError(f"entitlement {t.feature}: {e}") from e
        if features.count(t.feature) > 1:
            raise BadInputError(f"entitlement {t.feature}: given twice in one write")


def set_entitlements(
    session: Session, vin: str, tokens: Sequence[DesiredToken], *, tenant: str, actor: str,
    now: datetime | None = None,
) -> int:
    """Make ``tokens`` the desired entitlement of their features on ``vin``'s twin (other
    features are left as they are); returns the new desired version. Records
    ``twins.desired.entitlements`` in the audit log (features, not tokens).

    Raises:
        NotFoundError: no such vehicle in ``tenant``.
        BadInputError: a feature that is not a feature code, a value that is not shaped as an
            entitlement token, or a feature twice — nothing is changed.
    """
    now = now or datetime.now(UTC)
    _checked(tokens)
    row = twin_row(session, vin, tenant=tenant)
    version = _bump_version(session, vin, None, now)
    current = {item.path: item for item in load_items(session, vin)}
    paths = [token_path(t.feature) for t in tokens]
    reported = {path: decode_value(r.kind, r.num, r.text)
                for path, r in reported_values(session, vin, paths).items()}
    upserts: list[DesiredItem] = []
    for t in tokens:
        ttl_s = min(MAX_TTL_S, max(1, int((t.deliver_until - now).total_seconds())))
        plan = plan_desired(current, {token_path(t.feature): t.token}, replace_all=False,
                            reported=reported, version=version, now=now, actor=actor,
                            ttl_s=ttl_s)
        upserts.extend(plan.upserts)
    if upserts:
        _upsert_items(session, vin, tuple(upserts))
    record_audit(session, tenant=row.tenant_id, actor=actor, action="twins.desired.entitlements",
                 target=f"vehicle:{vin}",
                 details={"version": version, "features": sorted(t.feature for t in tokens)},
                 now=now)
    session.expire(row)
    changes = [TwinChange("desired", vin, row.tenant_id, now, tuple(sorted(paths)),
                          version=version)]
    converged = tuple(i.path for i in upserts if i.status == "converged")
    if converged:
        changes.append(TwinChange("converged", vin, row.tenant_id, now, converged,
                                  version=version))
    queue_changes(session, changes)
    return version


def twin_entitlements(
    session: Session, vin: str, *, tenant: str, now: datetime | None = None
) -> list[TwinEntitlement]:
    """Every feature ``vin``'s twin knows (desired or reported), by name.

    Raises:
        NotFoundError: no such vehicle in ``tenant``.
    """
    now = now or datetime.now(UTC)
    twin_row(session, vin, tenant=tenant)
    desired: dict[str, DesiredItem] = {}
    for each in effective_items(load_items(session, vin), now):
        feature = feature_of_token_path(each.path)
        if feature is not None:
            desired[feature] = each
    reported: dict[str, dict[str, str | int | float | bool | None]] = {}
    measured: dict[str, int] = {}
    for r in session.scalars(select(ReportedRow).where(
            ReportedRow.vin == vin, ReportedRow.path.like(f"{PREFIX}.%"))):
        parts = r.path.split(".")
        if len(parts) == 3:
            reported.setdefault(parts[1], {})[parts[2]] = decode_value(r.kind, r.num, r.text)
            measured[parts[1]] = max(measured.get(parts[1], 0), r.ts_ns)
    out = []
    for feature in sorted(set(desired) | set(reported)):
        item = desired.get(feature)
        facts = reported.get(feature, {})
        out.append(TwinEntitlement(
            feature=feature,
            desired_token=str(item.value) if item is not None else None,
            status=item.status if item is not None else None,
            reason=item.reason if item is not None else None,
            confirmed_at=item.status_at if item is not None and item.status == "converged"
            else None,
            reported_token=_text(facts.get("Token")),
            reported_state=_text(facts.get("State")),
            reported_seq=_integer(facts.get("Seq")),
            reported_expires_s=_integer(facts.get("Expires")),
            reported_ts_ns=measured.get(feature),
        ))
    return out


def confirmed_tokens(session: Session, vins: Sequence[str]) -> dict[tuple[str, str], str]:
    """(VIN, feature) → the desired token each car confirmed (reports holding), for many
    vehicles at once (callers check the VINs are their tenant's)."""
    out: dict[tuple[str, str], str] = {}
    vins = sorted(set(vins))
    for start in range(0, len(vins), IN_CHUNK):
        rows = session.execute(select(DesiredRow.vin, DesiredRow.path, DesiredRow.text).where(
            DesiredRow.vin.in_(vins[start:start + IN_CHUNK]),
            DesiredRow.path.like(f"{PREFIX}.%.Token"), DesiredRow.status == "converged"))
        for vin, path, text in rows:
            feature = feature_of_token_path(path)
            if feature is not None and text is not None:
                out[(vin, feature)] = text
    return out


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _integer(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value)
