"""The commerce domain's public functions: the catalog, customers' payment methods, and the
life of subscriptions (buy, cancel, pause, resume, refund, resale).

Every function takes an open session and the tenant it acts for: another tenant's
subscription or invoice answers exactly as one that does not exist, and another tenant's
vehicle is an unknown vehicle. Every change is in the audit log and published on the status
bus (domain ``commerce``), which wakes the commerce runner: it issues the vehicle's signed
entitlements and hands them to the dispatcher within a second.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from drivetrain.cloud.commerce import lifecycle
from drivetrain.cloud.commerce.billing import (
    LineDraft,
    PaymentDeclinedError,
    collect,
    issue_invoice,
    list_invoices,
    refund,
)
from drivetrain.cloud.commerce.catalog import FeatureCatalog, Offer
from drivetrain.cloud.commerce.models import AccountRow, CatalogVersionRow, SubscriptionRow
from drivetrain.cloud.commerce.money import prorate
from drivetrain.cloud.commerce.payments import PaymentProvider
from drivetrain.cloud.fleet import get_vehicle
from drivetrain.cloud.infra import record_audit
from drivetrain.cloud.infra.bus import StatusEvent, queue_status
from drivetrain.cloud.twins import select_twins
from drivetrain.core.errors import (
    BadInputError,
    ConflictError,
    NotFoundError,
    StateTransitionError,
)

DOMAIN: Final = "commerce"
ACCOUNT_ID: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@-]{0,63}")
MAX_PAGE: Final = 1000


@dataclass(frozen=True, slots=True)
class Subscription:
    """A subscription as readers see it."""

    subscription_id: str
    vin: str | None
    account_id: str
    offer_id: str
    features: tuple[str, ...]
    billing: str
    region: str
    currency: str
    price_minor: int
    status: str
    period_start: datetime
    period_end: datetime | None
    trial_end: datetime | None
    cancel_at_period_end: bool
    dunning_attempts: int
    next_retry_at: datetime | None
    end_reason: str | None
    created_at: datetime


def _now(now: datetime | None) -> datetime:
    return now or datetime.now(UTC)


def _event(tenant: str, kind: str, subject: str, now: datetime, **data: Any) -> StatusEvent:
    return StatusEvent(DOMAIN, kind, tenant, subject, now, data)


# --- the catalog -------------------------------------------------------------------------------
def put_catalog(session: Session, *, tenant: str, actor: str, document: object,
                now: datetime | None = None, request_id: str | None = None) -> int:
    """Check ``document`` and store it as the tenant's next catalog version; returns it.

    Raises:
        BadInputError: the document is not a valid catalog (the message names the field).
    """
    now = _now(now)
    catalog = FeatureCatalog.from_dict(document)
    latest = session.scalar(select(func.max(CatalogVersionRow.version))
                            .where(CatalogVersionRow.tenant_id == tenant)) or 0
    session.add(CatalogVersionRow(tenant_id=tenant, version=latest + 1,
                                  document=json.dumps(catalog.to_dict(), sort_keys=True),
                                  created_by=actor, created_at=now))
    record_audit(session, tenant=tenant, actor=actor, action="commerce.catalog.put",
                 target=f"catalog:{latest + 1}",
                 details={"features": len(catalog.features), "offers": len(catalog.offers)},
                 request_id=request_id, now=now)
    return latest + 1


def get_catalog(session: Session, tenant: str, version: int | None = None
                ) -> tuple[int, FeatureCatalog]:
    """The catalog in force (or ``version``) and its version.

    Raises:
        NotFoundError: the tenant has no catalog (or no such version).
    """
    query = select(CatalogVersionRow).where(CatalogVersionRow.tenant_id == tenant)
    if version is not None:
        query = query.where(CatalogVersionRow.version == version)
    row = session.scalars(query.order_by(CatalogVersionRow.version.desc()).limit(1)).first()
    if row is None:
        raise NotFoundError(f"tenant {tenant!r} has no feature catalog"
                            + (f" version {version}" if version is not None else
                               " yet; PUT one at /v1/commerce/catalog"))
    return row.version, FeatureCatalog.from_dict(json.loads(row.document))


# --- accounts ----------------------------------------------------------------------------------
def check_account_id(account_id: str) -> str:
    if not isinstance(account_id, str) or not ACCOUNT_ID.fullmatch(account_id):
        raise BadInputError(f"account {account_id!r}; expected 1-64 characters of letters, "
                            "digits and _ . : @ - (e.g. 'driver:alice')")
    return account_id


def set_payment_method(session: Session, *, tenant: str, actor: str, account_id: str,
                       payment_method: str, provider: PaymentProvider,
                       now: datetime | None = None, request_id: str | None = None) -> None:
    """Store the payment method the provider charges for ``account_id``.

    Raises:
        BadInputError: a bad account id, or a method the provider cannot charge.
    """
    now = _now(now)
    check_account_id(account_id)
    provider.check_method(payment_method)
    row = session.get(AccountRow, (tenant, account_id))
    if row is None:
        session.add(AccountRow(tenant_id=tenant, account_id=account_id,
                               payment_method=payment_method, updated_at=now))
    else:
        row.payment_method, row.updated_at = payment_method, now
    record_audit(session, tenant=tenant, actor=actor, action="commerce.account.payment_method",
                 target=f"account:{account_id}", details={"provider": provider.name},
                 request_id=request_id, now=now)


def _payment_method(session: Session, tenant: str, account_id: str) -> str:
    row = session.get(AccountRow, (tenant, account_id))
    if row is None:
        raise BadInputError(f"account {account_id!r} has no payment method; set one first")
    return row.payment_method


# --- subscriptions -----------------------------------------------------------------------------
def _sub_row(session: Session, tenant: str, subscription_id: str) -> SubscriptionRow:
    row = (session.get(SubscriptionRow, subscription_id)
           if isinstance(subscription_id, str) and len(subscription_id) <= 40 else None)
    if row is None or row.tenant_id != tenant:
        raise NotFoundError(f"subscription {subscription_id!r} does not exist")
    return row


def offer_of(session: Session, row: SubscriptionRow) -> Offer:
    """The offer a subscription was bought under (its catalog version)."""
    return get_catalog(session, row.tenant_id, row.catalog_version)[1].offer(row.offer_id)


def state_of(row: SubscriptionRow) -> lifecycle.SubscriptionState:
    return lifecycle.SubscriptionState(
        row.status, row.period_start, row.period_end,  # type: ignore[arg-type]
        row.trial_end, row.cancel_at_period_end, row.dunning_attempts, row.next_retry_at,
        row.paused_at, row.end_reason)


def store_state(row: SubscriptionRow, state: lifecycle.SubscriptionState, now: datetime) -> None:
    row.status, row.period_start, row.period_end = state.status, state.period_start, \
        state.period_end
    row.trial_end, row.cancel_at_period_end = state.trial_end, state.cancel_at_period_end
    row.dunning_attempts, row.next_retry_at = state.dunning_attempts, state.next_retry_at
    row.paused_at, row.end_reason, row.updated_at = state.paused_at, state.end_reason, now


def subscription_of(session: Session, row: SubscriptionRow) -> Subscription:
    offer = offer_of(session, row)
    return Subscription(
        row.subscription_id, row.vin, row.account_id, row.offer_id, offer.features,
        offer.billing, row.region, row.currency, row.price_minor, row.status, row.period_start,
        row.period_end, row.trial_end, row.cancel_at_period_end, row.dunning_attempts,
        row.next_retry_at, row.end_reason, row.created_at)


def _check_vehicle(session: Session, tenant: str, vin: str, catalog: FeatureCatalog,
                   offer: Offer) -> str:
    """The vehicle's region, once it is ``tenant``'s and meets every feature's requirements."""
    vehicle = get_vehicle(session, vin, tenant=tenant)  # NotFoundError for another tenant's
    for code in offer.features:
        requires = catalog.features[code].requires
        if requires and not select_twins(session, tenant, requires, among=[vin]):
            raise ConflictError(f"vehicle {vin} does not meet the requirements of {code}: "
                                f"{requires}")
    return vehicle.region


def _live_for(session: Session, tenant: str, vin: str) -> list[SubscriptionRow]:
    return list(session.scalars(select(SubscriptionRow).where(
        SubscriptionRow.tenant_id == tenant, SubscriptionRow.vin == vin,
        SubscriptionRow.status.in_(sorted(lifecycle.LIVE)))))


def purchase(
    session: Session, *, tenant: str, actor: str, vin: str, account_id: str, offer_id: str,
    provider: PaymentProvider, now: datetime | None = None, request_id: str | None = None,
    replacing: str | None = None,
) -> Subscription:
    """Buy ``offer_id`` for ``vin``: a trial starts free; otherwise the first period (or the
    one-off price) is invoiced and charged now. Usage offers are billed monthly in arrears.

    Raises:
        NotFoundError: ``vin`` is not a vehicle of ``tenant``; the tenant has no catalog.
        BadInputError: an unknown offer, an offer not sold in the vehicle's region, an account
            without a payment method.
        ConflictError: the vehicle does not meet a feature's requirements, or already has a
            live subscription to one of the offer's features.
        PaymentDeclinedError: the charge was declined (nothing is stored).
    """
    now = _now(now)
    check_account_id(account_id)
    version, catalog = get_catalog(session, tenant)
    offer = catalog.offer(offer_id)
    region = _check_vehicle(session, tenant, vin, catalog, offer)
    price = offer.price_in(region)
    method = _payment_method(session, tenant, account_id)
    for live in _live_for(session, tenant, vin):
        if live.subscription_id == replacing:
            continue
        overlap = set(offer_of(session, live).features) & set(offer.features)
        if overlap:
            raise ConflictError(f"vehicle {vin} already has {', '.join(sorted(overlap))} "
                                f"through subscription {live.subscription_id} ({live.status})")
    state = lifecycle.start(offer, now)
    row = SubscriptionRow(
        subscription_id=f"sub-{uuid.uuid4().hex[:12]}", tenant_id=tenant, vin=vin,
        account_id=account_id, offer_id=offer_id, catalog_version=version, region=region,
        currency=price.currency, price_minor=price.amount_minor, created_by=actor,
        created_at=now, status=state.status, period_start=now, cancel_at_period_end=False,
        dunning_attempts=0, updated_at=now)
    store_state(row, state, now)
    session.add(row)
    session.flush()
    if state.status == "active" and offer.billing != "usage":
        invoice = issue_invoice(session, tenant=tenant, account_id=account_id,
                                subscription_id=row.subscription_id, vin=vin, region=region,
                                currency=price.currency, tax_rate=catalog.tax_rate(region),
                                lines=[period_line(catalog, offer, price.amount_minor, state)],
                                now=now)
        outcome = collect(session, provider, invoice, method, 0, now)
        if not outcome.succeeded:
            raise PaymentDeclinedError(f"payment for {offer_id} declined ({outcome.reason}); "
                                       "nothing was bought")
    record_audit(session, tenant=tenant, actor=actor, action="commerce.subscription.create",
                 target=f"subscription:{row.subscription_id}",
                 details={"vin": vin, "account": account_id, "offer": offer_id,
                          "status": row.status, "price_minor": price.amount_minor,
                          "currency": price.currency}, request_id=request_id, now=now)
    queue_status(session, [_event(tenant, "subscription", vin, now, status=row.status,
                                  subscription=row.subscription_id)])
    return subscription_of(session, row)


def period_line(catalog: FeatureCatalog, offer: Offer, amount_minor: int,
                state: lifecycle.SubscriptionState) -> LineDraft:
    """The invoice line of one period (or a one-off purchase) of ``offer``."""
    first = catalog.features[offer.features[0]]
    names = ", ".join(catalog.features[c].name for c in offer.features)
    end = state.period_end.date().isoformat() if state.period_end else "no end"
    return LineDraft(f"{names} ({offer.billing}, {state.period_start.date().isoformat()} to "
                     f"{end})", offer.features[0], 1, amount_minor,
                     first.provider, first.revenue_share)


def _change(session: Session, row: SubscriptionRow, state: lifecycle.SubscriptionState,
            actor: str, action: str, now: datetime, request_id: str | None,
            **details: Any) -> Subscription:
    before = row.status
    store_state(row, state, now)
    record_audit(session, tenant=row.tenant_id, actor=actor,
                 action=f"commerce.subscription.{action}",
                 target=f"subscription:{row.subscription_id}",
                 details={"from": before, "to": row.status, **details},
                 request_id=request_id, now=now)
    queue_status(session, [_event(row.tenant_id, "subscription", row.vin or "", now,
                                  status=row.status, subscription=row.subscription_id)])
    return subscription_of(session, row)


def cancel_subscription(
    session: Session, *, tenant: str, actor: str, subscription_id: str, at_period_end: bool,
    refund_unused: bool = False, provider: PaymentProvider | None = None,
    now: datetime | None = None, request_id: str | None = None,
) -> Subscription:
    """Cancel at the end of the paid period, or now (optionally refunding the unused part of
    the period, prorated to the second; the refund and what was used sum to what was paid).

    Raises:
        NotFoundError: no such subscription of ``tenant``.
        StateTransitionError: it has already ended.
    """
    now = _now(now)
    row = _sub_row(session, tenant, subscription_id)
    state = lifecycle.cancel(state_of(row), now, subscription_id, at_period_end=at_period_end)
    refunded = 0
    if refund_unused and not at_period_end and provider is not None and row.period_end:
        refunded = _refund_unused(session, provider, row, now)
    return _change(session, row, state, actor, "cancel", now, request_id,
                   at_period_end=at_period_end, refunded_minor=refunded)


def _refund_unused(session: Session, provider: PaymentProvider, row: SubscriptionRow,
                   now: datetime) -> int:
    paid = [i for i in list_invoices(session, row.tenant_id, subscription_id=row.subscription_id)
            if i.status == "paid"]
    if not paid or row.period_end is None:
        return 0
    latest = paid[0]
    period_s = int((row.period_end - row.period_start).total_seconds())
    used_s = min(period_s, max(0, int((now - row.period_start).total_seconds())))
    _, unused = prorate(latest.paid_minor - latest.refunded_minor, used_s, period_s)
    if unused:
        refund(session, provider, row.tenant_id, latest.invoice_id, unused, now)
    return unused


def change_offer(
    session: Session, *, tenant: str, actor: str, subscription_id: str, offer_id: str,
    provider: PaymentProvider, now: datetime | None = None, request_id: str | None = None,
) -> Subscription:
    """Upgrade or downgrade: the vehicle moves to ``offer_id`` now. The new offer is bought
    (its first period charged in full, from now); then the unused part of the old period is
    refunded, prorated to the second — what was kept and what is refunded sum exactly to what
    was paid — and the old subscription ends (``changed to <offer>``). A declined charge
    changes nothing.

    Raises:
        NotFoundError: no such subscription of ``tenant``.
        StateTransitionError: the subscription is not active, or has no vehicle.
        BadInputError, ConflictError, PaymentDeclinedError: as :func:`purchase`.
    """
    now = _now(now)
    row = _sub_row(session, tenant, subscription_id)
    if row.status != "active" or row.vin is None:
        raise StateTransitionError(
            f"subscription {subscription_id} is {row.status}"
            + ("" if row.vin else " without a vehicle")
            + "; only an active subscription of a vehicle changes offer")
    if offer_id == row.offer_id:
        raise BadInputError(f"subscription {subscription_id} is already on {offer_id!r}")
    new = purchase(session, tenant=tenant, actor=actor, vin=row.vin, account_id=row.account_id,
                   offer_id=offer_id, provider=provider, now=now, request_id=request_id,
                   replacing=subscription_id)
    refunded = _refund_unused(session, provider, row, now) if row.period_end else 0
    _change(session, row, lifecycle.expire(state_of(row), f"changed to {offer_id}",
                                           subscription_id), actor, "change", now, request_id,
            to_offer=offer_id, new_subscription=new.subscription_id, refunded_minor=refunded)
    return new


def pause_subscription(session: Session, *, tenant: str, actor: str, subscription_id: str,
                       now: datetime | None = None, request_id: str | None = None
                       ) -> Subscription:
    """Pause (the feature goes off; the period stops). Raises ``StateTransitionError``."""
    now = _now(now)
    row = _sub_row(session, tenant, subscription_id)
    return _change(session, row, lifecycle.pause(state_of(row), now, subscription_id), actor,
                   "pause", now, request_id)


def resume_subscription(session: Session, *, tenant: str, actor: str, subscription_id: str,
                        now: datetime | None = None, request_id: str | None = None
                        ) -> Subscription:
    """Resume; the period is extended by the time paused. Raises ``StateTransitionError``."""
    now = _now(now)
    row = _sub_row(session, tenant, subscription_id)
    return _change(session, row, lifecycle.resume(state_of(row), now, subscription_id), actor,
                   "resume", now, request_id)


def transfer_vehicle(
    session: Session, *, tenant: str, actor: str, vin: str, new_account_id: str,
    now: datetime | None = None, request_id: str | None = None,
) -> list[Subscription]:
    """The vehicle is sold to ``new_account_id``: its vehicle-bound subscriptions stay with the
    car and are billed to the new owner from now on; account-bound ones follow the previous
    owner — detached from this car (its entitlement is revoked), still the owner's to attach
    to another vehicle. Returns the subscriptions changed.

    Raises:
        NotFoundError: ``vin`` is not a vehicle of ``tenant``.
        BadInputError: a bad account id.
    """
    now = _now(now)
    check_account_id(new_account_id)
    get_vehicle(session, vin, tenant=tenant)
    changed = []
    for row in _live_for(session, tenant, vin):
        _, catalog = get_catalog(session, tenant, row.catalog_version)
        offer = catalog.offer(row.offer_id)
        bound = {catalog.features[c].binding for c in offer.features}
        before = {"account": row.account_id, "vin": row.vin}
        if bound == {"vehicle"}:
            row.account_id = new_account_id
        else:
            row.vin = None
        row.updated_at = now
        record_audit(session, tenant=tenant, actor=actor, action="commerce.subscription.transfer",
                     target=f"subscription:{row.subscription_id}",
                     details={"before": before, "account": row.account_id, "vin": row.vin,
                              "binding": sorted(bound)}, request_id=request_id, now=now)
        changed.append(subscription_of(session, row))
    queue_status(session, [_event(tenant, "transfer", vin, now, new_account=new_account_id)])
    return changed


def get_subscription(session: Session, tenant: str, subscription_id: str) -> Subscription:
    """Raises ``NotFoundError`` for another tenant's subscription as for none."""
    return subscription_of(session, _sub_row(session, tenant, subscription_id))


def list_subscriptions(
    session: Session, tenant: str, *, vin: str | None = None, account_id: str | None = None,
    status: str | None = None, limit: int = 100,
) -> list[Subscription]:
    """``tenant``'s subscriptions, newest first, filtered.

    Raises:
        BadInputError: an unknown status or a limit outside 1..1000.
    """
    if status is not None and status not in lifecycle.SUBSCRIPTION_STATUSES:
        raise BadInputError(f"status {status!r}; expected one of "
                            f"{lifecycle.SUBSCRIPTION_STATUSES}")
    if isinstance(limit, bool) or not 1 <= limit <= MAX_PAGE:
        raise BadInputError(f"limit {limit!r}; expected 1 to {MAX_PAGE}")
    query = select(SubscriptionRow).where(SubscriptionRow.tenant_id == tenant)
    if vin is not None:
        query = query.where(SubscriptionRow.vin == vin)
    if account_id is not None:
        query = query.where(SubscriptionRow.account_id == account_id)
    if status is not None:
        query = query.where(SubscriptionRow.status == status)
    rows = session.scalars(query.order_by(SubscriptionRow.created_at.desc(),
                                          SubscriptionRow.subscription_id.desc())
                           .limit(limit)).all()
    return [subscription_of(session, r) for r in rows]


def subscription_counts(session: Session, tenant: str) -> Mapping[str, int]:
    """How many subscriptions of the tenant are in each status."""
    rows = session.execute(select(SubscriptionRow.status, func.count())
                           .where(SubscriptionRow.tenant_id == tenant)
                           .group_by(SubscriptionRow.status)).all()
    return {status: int(n) for status, n in rows}
