"""Issuing entitlements: from a vehicle's subscriptions to signed tokens on their way to it.

For one vehicle, :func:`sync_vehicle` compares what its subscriptions entitle it to now with
the newest token issued per feature (``EntitlementRow``) and issues, with the next ``seq``:

- a **grant** for a feature it is entitled to and holds no grant for, or whose grant is
  past half its lease (renewed ahead of time, so a car that is online never lapses);
- a **revocation** for a feature whose subscription ended, was paused, or left with the
  previous owner. A ``past_due`` subscription gets neither: the car keeps its last grant until
  that grant's ``exp`` plus the offer's grace period, then turns the feature off by itself.

A grant is valid until the end of the paid period or the lease (``lease_s`` after issue),
whichever is first: the lease bounds how long a car that went offline keeps a feature the
cloud has since taken away. The vehicle's current tokens travel together, as one signed
``ENTITLEMENTS`` message, through the tenant's continuous dispatcher job (origin
``entitlements``); a newer message supersedes one not yet delivered. Each token issued also
becomes the twin's desired state (``twins.set_entitlements``): the reconciler carries it in
the vehicle's signed, retained desired-state delta — a revocation reaches a car that was
offline the moment it reconnects — and the twin shows it **confirmed** once the car reports
holding that very token. The car verifies every token itself, whichever way it came.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from drivetrain.cloud.commands import (
    DeliveryDraft,
    Payload,
    RolloutPolicy,
    add_deliveries,
    cancel_deliveries,
    create_job,
    get_job,
    latest_deliveries,
)
from drivetrain.cloud.commerce.models import CommerceJobRow, EntitlementRow, SubscriptionRow
from drivetrain.cloud.commerce.service import DOMAIN, offer_of, state_of
from drivetrain.cloud.infra import record_audit
from drivetrain.cloud.infra.bus import StatusEvent, queue_status
from drivetrain.cloud.twins import (
    DesiredToken,
    TwinEntitlement,
    confirmed_tokens,
    set_entitlements,
    twin_entitlements,
)
from drivetrain.core.crypto import SigningKey
from drivetrain.core.entitlement import EntitlementClaims, issue_token
from drivetrain.core.wire import MessageKind

ACTOR: Final = "commerce:entitlements"
ORIGIN: Final = "entitlements"
#: Entitlement messages wait for the vehicle as long as it takes (parked for weeks).
DELIVERY_POLICY: Final = RolloutPolicy(timeout_s=None, freshness_s=30 * 86_400.0)
#: A revocation stays valid (for the vehicle's bookkeeping) this long; it takes effect at once.
REVOCATION_VALID: Final = timedelta(days=3650)


@dataclass(frozen=True, slots=True)
class Entitlement:
    """The newest token issued for one (vehicle, feature), as readers see it."""

    vin: str
    feature: str
    seq: int
    status: str
    subscription_id: str | None
    issued_at: datetime
    expires_at: datetime
    grace_s: int
    token: str


@dataclass(frozen=True, slots=True)
class _Want:
    subscription_id: str
    expires_at: datetime
    grace_s: int


def _wanted(session: Session, tenant: str, vin: str, now: datetime, lease: timedelta
            ) -> tuple[dict[str, _Want], set[str]]:
    """Per feature the grant this vehicle should hold now, and the features held through a
    ``past_due`` subscription (left to lapse on the vehicle)."""
    wanted: dict[str, _Want] = {}
    lapsing: set[str] = set()
    # Locked (PostgreSQL) in one order: two runners syncing the same vehicle take turns, so
    # a seq is never issued twice.
    rows = session.scalars(select(SubscriptionRow).where(
        SubscriptionRow.tenant_id == tenant, SubscriptionRow.vin == vin)
        .order_by(SubscriptionRow.subscription_id).with_for_update()).all()
    for row in rows:
        state = state_of(row)
        offer = offer_of(session, row)
        if state.status == "past_due":
            lapsing.update(offer.features)
        if not state.entitled:
            continue
        until = now + lease
        if state.period_end is not None:
            until = min(until, state.period_end)
        if until <= now:
            continue  # a renewal is due: the runner decides it first
        for feature in offer.features:
            known = wanted.get(feature)
            if known is None or known.expires_at < until:
                wanted[feature] = _Want(row.subscription_id, until, offer.grace_s)
    return wanted, lapsing


def _issue(session: Session, key: SigningKey, tenant: str, vin: str, feature: str,
           held: EntitlementRow | None, status: str, subscription_id: str | None,
           expires_at: datetime, grace_s: int, now: datetime) -> EntitlementRow:
    seq = (held.seq if held is not None else 0) + 1
    issued = int(now.timestamp())
    claims = EntitlementClaims(
        vin=vin, feature=feature, token_id=uuid.uuid4().hex, issued_s=issued,
        not_before_s=issued, expires_s=max(issued, int(expires_at.timestamp())),
        grace_s=grace_s, seq=seq, status=status,  # type: ignore[arg-type]
        tenant=tenant, subscription_id=subscription_id)
    token = issue_token(claims, key)
    if held is None:
        held = EntitlementRow(tenant_id=tenant, vin=vin, feature=feature)
        session.add(held)
    held.seq, held.status, held.token_id, held.token = seq, status, claims.token_id, token
    held.subscription_id, held.issued_at, held.grace_s = subscription_id, now, grace_s
    held.expires_at = expires_at
    return held


def sync_vehicle(session: Session, key: SigningKey, tenant: str, vin: str, now: datetime,
                 lease_s: float) -> int:
    """Issue what ``vin`` needs now (see the module docstring) and send its tokens; returns how
    many tokens were issued (0: nothing to send)."""
    lease = timedelta(seconds=lease_s)
    wanted, lapsing = _wanted(session, tenant, vin, now, lease)
    held = {r.feature: r for r in session.scalars(select(EntitlementRow).where(
        EntitlementRow.tenant_id == tenant, EntitlementRow.vin == vin)
        .order_by(EntitlementRow.feature).with_for_update())}
    issued: list[tuple[str, str]] = []
    for feature, want in sorted(wanted.items()):
        row = held.get(feature)
        fresh = (row is not None and row.status == "grant"
                 and row.subscription_id == want.subscription_id
                 and row.expires_at - now > lease / 2)
        if fresh or (row is not None and row.status == "grant"
                     and row.expires_at >= want.expires_at):
            continue
        held[feature] = _issue(session, key, tenant, vin, feature, row, "grant",
                               want.subscription_id, want.expires_at, want.grace_s, now)
        issued.append((feature, "grant"))
    for feature, row in sorted(held.items()):
        if row.status == "grant" and feature not in wanted and feature not in lapsing:
            held[feature] = _issue(session, key, tenant, vin, feature, row, "revoke", None,
                                   now + REVOCATION_VALID, 0, now)
            issued.append((feature, "revoke"))
    if not issued:
        return 0
    session.flush()
    _send(session, tenant, vin, [r.token for r in held.values()], now)
    set_entitlements(session, vin, [
        DesiredToken(f, held[f].token, held[f].expires_at + timedelta(seconds=held[f].grace_s))
        for f, _ in issued], tenant=tenant, actor=ACTOR, now=now)
    record_audit(session, tenant=tenant, actor=ACTOR, action="commerce.entitlements.issue",
                 target=f"vehicle:{vin}",
                 details={"issued": [f"{f}:{s}" for f, s in issued]}, now=now)
    queue_status(session, [StatusEvent(DOMAIN, "entitlements", tenant, vin, now,
                                       {"issued": len(issued)})])
    return len(issued)


def _job(session: Session, tenant: str, now: datetime) -> CommerceJobRow:
    row = session.get(CommerceJobRow, tenant)
    if row is not None and get_job(session, row.job_id, tenant=tenant).status in (
            "scheduled", "running"):
        return row
    job = create_job(session, tenant=tenant, actor=ACTOR, origin=ORIGIN, name="entitlements",
                     continuous=True, policy=DELIVERY_POLICY, now=now,
                     payload=Payload(MessageKind.ENTITLEMENTS, {"version": 0, "tokens": []}))
    if row is None:
        row = CommerceJobRow(tenant_id=tenant, job_id=job.job_id, wire_version=0)
        session.add(row)
    else:
        row.job_id = job.job_id
    return row


def _send(session: Session, tenant: str, vin: str, tokens: Sequence[str], now: datetime) -> None:
    job = _job(session, tenant, now)
    job.wire_version += 1
    body = {"version": job.wire_version, "tokens": list(tokens)}
    cancel_deliveries(session, job.job_id, [vin], tenant=tenant,
                      reason="superseded by newer entitlements", now=now)
    add_deliveries(session, job.job_id, [DeliveryDraft(vin, "entitlements", body,
                                                        job.wire_version)],
                   tenant=tenant, now=now)


def list_entitlements(session: Session, tenant: str, vin: str | None = None
                      ) -> list[Entitlement]:
    """The newest token issued per (vehicle, feature) of ``tenant``."""
    query = select(EntitlementRow).where(EntitlementRow.tenant_id == tenant)
    if vin is not None:
        query = query.where(EntitlementRow.vin == vin)
    rows = session.scalars(query.order_by(EntitlementRow.vin, EntitlementRow.feature)).all()
    return [Entitlement(r.vin, r.feature, r.seq, r.status, r.subscription_id, r.issued_at,
                        r.expires_at, r.grace_s, r.token) for r in rows]


def delivery_states(session: Session, tenant: str) -> dict[str, tuple[str, str | None]]:
    """Per VIN, the state of the newest entitlements message (``succeeded`` once the vehicle
    acknowledged it) and the vehicle's answer."""
    row = session.get(CommerceJobRow, tenant)
    if row is None:
        return {}
    return {vin: (d.state, d.detail) for vin, d in
            latest_deliveries(session, row.job_id, tenant=tenant).items()}


def due_for_renewal(session: Session, now: datetime, lease_s: float) -> list[tuple[str, str]]:
    """(tenant, VIN) of vehicles holding a grant past half its lease."""
    horizon = now + timedelta(seconds=lease_s / 2)
    rows = session.execute(select(EntitlementRow.tenant_id, EntitlementRow.vin).where(
        EntitlementRow.status == "grant", EntitlementRow.expires_at <= horizon).distinct()).all()
    return [(t, v) for t, v in rows]


@dataclass(frozen=True, slots=True)
class ReportedFeatures:
    """What the vehicle itself last reported running, as its twin holds it."""

    enabled: tuple[str, ...]
    ts_ns: int


def twin_states(session: Session, tenant: str, vin: str, now: datetime | None = None
                ) -> dict[str, TwinEntitlement]:
    """Per feature, the twin's view of ``vin``'s entitlement: the desired token and whether
    the car confirmed it (reports holding it), and the car's own state of the feature."""
    return {t.feature: t for t in twin_entitlements(session, vin, tenant=tenant, now=now)}


def confirmed_features(session: Session, tenant: str, vin: str, subscription_id: str,
                       now: datetime | None = None) -> list[str]:
    """The features of ``subscription_id`` whose newest grant ``vin`` confirmed through its
    twin (it reports holding that very token), by name."""
    return confirmed_by_car(session, tenant, [(subscription_id, vin)]).get(subscription_id, [])


def confirmed_by_car(session: Session, tenant: str,
                     subscriptions: Sequence[tuple[str, str | None]]) -> dict[str, list[str]]:
    """Per subscription id (of ``(subscription_id, vin)`` pairs), the features whose newest
    grant its car confirmed through the twin — in two queries, however many."""
    wanted = {sid: vin for sid, vin in subscriptions if vin}
    out: dict[str, list[str]] = {sid: [] for sid, _ in subscriptions}
    if not wanted:
        return out
    confirmed = confirmed_tokens(session, list(set(wanted.values())))
    rows = session.scalars(select(EntitlementRow).where(
        EntitlementRow.tenant_id == tenant, EntitlementRow.status == "grant",
        EntitlementRow.subscription_id.in_(list(wanted))))
    for r in rows:
        if r.subscription_id is not None and wanted.get(r.subscription_id) == r.vin \
                and confirmed.get((r.vin, r.feature)) == r.token:
            out[r.subscription_id].append(r.feature)
    return {sid: sorted(features) for sid, features in out.items()}


def reported_features(session: Session, tenant: str, vin: str) -> ReportedFeatures | None:
    """The features ``vin`` last reported running (enabled or in grace) to its twin, or None
    when it never reported one."""
    states = [t for t in twin_entitlements(session, vin, tenant=tenant)
              if t.reported_state is not None]
    if not states:
        return None
    enabled = tuple(t.feature for t in states if t.reported_state in ("enabled", "grace"))
    return ReportedFeatures(enabled, max(t.reported_ts_ns or 0 for t in states))
