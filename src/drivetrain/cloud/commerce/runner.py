"""The commerce runner: renews and dunns subscriptions on time and keeps every vehicle's
entitlements true.

Each round, in transactions of its own:

1. **billing**: every subscription whose period (or trial) ended, or whose dunning retry is
   due, is renewed (``lifecycle.renew``): the next period — or, for pay-per-use, the period's
   metered usage — is invoiced and charged through the payment provider; a declined charge
   makes it ``past_due`` with a retry scheduled, the last failed retry ends it (its unpaid
   invoice is voided by a credit note); one cancelled
   at period end, or a one-off term that ended, expires;
2. **entitlements**: every vehicle whose subscriptions changed since the last round, and every
   vehicle holding a grant past half its lease, is synced (``entitlements.sync_vehicle``): new
   grants, renewed grants, revocations — signed and handed to the dispatcher.

A status event of the ``commerce`` domain (a purchase, a cancellation) wakes it at once, so a
purchase reaches the car within seconds.

Several runners may run at once (one per API process, say): each renewal is claimed with a
conditional ``UPDATE`` that matches only while it is still due, so exactly one runner invoices
and charges a period; the others find it renewed and move on. Entitlement syncs of one vehicle
lock its subscription and entitlement rows, so a token ``seq`` is issued once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.orm import Session

from drivetrain.cloud.commerce import lifecycle
from drivetrain.cloud.commerce.billing import LineDraft, collect, issue_invoice, void_invoice
from drivetrain.cloud.commerce.entitlements import due_for_renewal, sync_vehicle
from drivetrain.cloud.commerce.models import (
    AccountRow,
    EntitlementRow,
    InvoiceRow,
    SubscriptionRow,
)
from drivetrain.cloud.commerce.payments import PaymentProvider
from drivetrain.cloud.commerce.service import (
    DOMAIN,
    get_catalog,
    period_line,
    state_of,
    store_state,
)
from drivetrain.cloud.commerce.usage import mark_invoiced, uninvoiced_quantity
from drivetrain.cloud.infra import Database, record_audit
from drivetrain.cloud.infra.bus import StatusEvent, queue_status
from drivetrain.cloud.infra.round_loop import RoundLoop
from drivetrain.core.crypto import SigningKey
from drivetrain.core.errors import DrivetrainError

log = logging.getLogger(__name__)

ACTOR: Final = "commerce:billing"
#: Default entitlement lease: how long a grant is valid before the cloud renews it.
DEFAULT_LEASE_S: Final = 7 * 86_400.0


@dataclass(frozen=True, slots=True)
class CommerceRound:
    """What one round did."""

    renewed: int
    declined: int
    expired: int
    vehicles_synced: int
    tokens_issued: int


def _open_invoice(session: Session, row: SubscriptionRow) -> InvoiceRow | None:
    return session.scalars(select(InvoiceRow).where(
        InvoiceRow.tenant_id == row.tenant_id, InvoiceRow.subscription_id == row.subscription_id,
        InvoiceRow.status == "open").order_by(InvoiceRow.issued_at.desc()).limit(1)).first()


def _renewal_due(now: datetime) -> ColumnElement[bool]:
    """SQL: a subscription whose period (or trial) ended, or whose dunning retry is due."""
    s = SubscriptionRow
    return or_(
        s.status.in_(("trialing", "active")) & (s.period_end <= now),
        (s.status == "past_due") & (s.next_retry_at <= now),
    )


def _claim(session: Session, subscription_id: str, now: datetime) -> bool:
    """Claim a due renewal for this transaction: a conditional ``UPDATE`` that matches only
    while the subscription is still due. It locks the row (PostgreSQL; SQLite takes its
    writer lock), so a second runner deciding the same renewal waits for the first to
    commit, then finds it no longer due and charges nothing."""
    claimed = session.execute(
        update(SubscriptionRow)
        .where(SubscriptionRow.subscription_id == subscription_id, _renewal_due(now))
        .values(updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(claimed.rowcount)  # type: ignore[attr-defined]


def renew_subscription(database: Database, provider: PaymentProvider, subscription_id: str,
                       now: datetime) -> str:
    """Decide one due renewal (its own transaction); returns the new status (the current
    one when it was not due, or another runner decided it first; ``missing`` when there is
    no such subscription). Safe with many runners at once: the renewal is claimed first
    (:func:`_claim`), so one period is invoiced and charged once, and the charge's
    idempotency key names the period besides."""
    decided = _renew(database, provider, subscription_id, now)
    if decided is not None:
        return decided
    with database.session() as session:
        row = session.get(SubscriptionRow, subscription_id)
        return "missing" if row is None else row.status


def _renew(database: Database, provider: PaymentProvider, subscription_id: str,
           now: datetime) -> str | None:
    """The new status, or None when this caller did not renew (not due, or not claimed)."""
    with database.session() as session:
        if not _claim(session, subscription_id, now):
            return None
        row = session.get(SubscriptionRow, subscription_id)
        if row is None:
            return None
        state = state_of(row)
        if not lifecycle.renewal_due(state, now):
            return None
        _, catalog = get_catalog(session, row.tenant_id, row.catalog_version)
        offer = catalog.offer(row.offer_id)
        paid = True
        if not lifecycle.ends_at_renewal(state, offer):
            invoice = _open_invoice(session, row) if state.status == "past_due" else None
            if invoice is None:
                assert state.period_end is not None
                if offer.billing == "usage":
                    used = uninvoiced_quantity(session, row.tenant_id, row.subscription_id,
                                               state.period_end)
                    first = catalog.features[offer.features[0]]
                    line = LineDraft(f"{first.name}: {used} {offer.unit} used to "
                                     f"{state.period_end.date().isoformat()}", first.code,
                                     used, row.price_minor, first.provider, first.revenue_share)
                else:
                    nxt = lifecycle.SubscriptionState(
                        "active", state.period_end,
                        lifecycle.add_period(state.period_end, offer.billing))
                    line = period_line(catalog, offer, row.price_minor, nxt)
                invoice = issue_invoice(
                    session, tenant=row.tenant_id, account_id=row.account_id,
                    subscription_id=row.subscription_id, vin=row.vin, region=row.region,
                    currency=row.currency, tax_rate=catalog.tax_rate(row.region), lines=[line],
                    now=now)
                if offer.billing == "usage":
                    mark_invoiced(session, row.tenant_id, row.subscription_id, state.period_end,
                                  invoice.invoice_id)
            account = session.get(AccountRow, (row.tenant_id, row.account_id))
            method = account.payment_method if account is not None else ""
            attempt = state.dunning_attempts + 1
            # One charge per (subscription, period, attempt), whichever runner asks.
            key = (f"{row.tenant_id}:{row.subscription_id}:renewal:"
                   f"{state.period_end.isoformat() if state.period_end else '-'}:{attempt}")
            paid = collect(session, provider, invoice, method, attempt, now, key).succeeded
        before = row.status
        store_state(row, lifecycle.renew(state, offer, paid, now), now)
        if row.status == "expired" and not paid:
            unpaid = _open_invoice(session, row)
            if unpaid is not None:
                void_invoice(session, unpaid, now)
        record_audit(session, tenant=row.tenant_id, actor=ACTOR,
                     action="commerce.subscription.renew",
                     target=f"subscription:{row.subscription_id}",
                     details={"from": before, "to": row.status, "paid": paid,
                              "dunning_attempts": row.dunning_attempts}, now=now)
        queue_status(session, [StatusEvent(DOMAIN, "renewal", row.tenant_id, row.vin or "",
                                           now, {"status": row.status})])
        return row.status


def run_commerce(database: Database, key: SigningKey, provider: PaymentProvider, *,
                 now: datetime | None = None, since: datetime | None = None,
                 lease_s: float = DEFAULT_LEASE_S) -> CommerceRound:
    """One round (see the module docstring). ``since``: sync the vehicles whose subscriptions
    changed at or after this time (None: every vehicle with a subscription)."""
    now = now or datetime.now(UTC)
    renewed = declined = expired = 0
    with database.session() as session:
        due = session.scalars(select(SubscriptionRow.subscription_id).where(
            _renewal_due(now))).all()
    for subscription_id in due:
        try:
            status = _renew(database, provider, subscription_id, now)
        except DrivetrainError as e:
            log.warning("subscription %s: renewal failed: %s", subscription_id, e)
            continue
        renewed += status == "active"
        declined += status == "past_due"
        expired += status == "expired"
    with database.session() as session:
        query = select(SubscriptionRow.tenant_id, SubscriptionRow.vin).where(
            SubscriptionRow.vin.is_not(None))
        if since is not None:
            query = query.where(SubscriptionRow.updated_at >= since)
        vehicles = {(t, v) for t, v in session.execute(query.distinct()).all() if v}
        vehicles |= set(due_for_renewal(session, now, lease_s))
        vehicles |= _detached_holders(session)
    issued = 0
    for tenant, vin in sorted(vehicles):
        try:
            with database.session() as session:
                issued += sync_vehicle(session, key, tenant, vin, now, lease_s)
        except DrivetrainError as e:
            log.warning("entitlements of %s/%s: sync failed: %s", tenant, vin, e)
    return CommerceRound(renewed, declined, expired, len(vehicles), issued)


def _detached_holders(session: Session) -> set[tuple[str, str]]:
    """Vehicles holding a grant whose subscription moved away (a resale): they need a
    revocation even though no subscription of theirs changed."""
    e, s = EntitlementRow, SubscriptionRow
    rows = session.execute(select(e.tenant_id, e.vin).join(
        s, s.subscription_id == e.subscription_id).where(
        e.status == "grant", or_(s.vin.is_(None), s.vin != e.vin))).all()
    return {(t, v) for t, v in rows}


class CommerceRunner(RoundLoop):
    """Runs commerce rounds on a background thread (see the module docstring).

    Args:
        database: the state database.
        key: the cloud signing key (entitlement tokens are signed with it).
        provider: the payment provider renewals charge.
        lease_s: how long a grant is valid before it is renewed.
        poll_interval_s: longest wait between rounds; a commerce status event wakes it.
    """

    def __init__(self, database: Database, key: SigningKey, provider: PaymentProvider, *,
                 lease_s: float = DEFAULT_LEASE_S, poll_interval_s: float = 1.0) -> None:
        super().__init__(database, domain=DOMAIN, thread_name="drivetrain-commerce",
                         poll_interval_s=poll_interval_s)
        self.key = key
        self.provider = provider
        self.lease_s = lease_s
        self._since: datetime | None = None

    def run_once(self, now: datetime | None = None) -> CommerceRound:
        """One round on the caller's thread."""
        now = now or datetime.now(UTC)
        result = run_commerce(self.database, self.key, self.provider, now=now,
                              since=self._since, lease_s=self.lease_s)
        # Overlap the windows: a change committed just after this round read is seen next time
        # (syncing a vehicle twice issues nothing new).
        self._since = now - timedelta(seconds=30)
        self.rounds += 1
        return result
